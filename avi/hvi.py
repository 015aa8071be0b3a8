"""Hierarchical VI with Gaussian refinement transitions (Huang et al. 2018, Sec. 3.1, 4.2).

The chain z_0 ~ q_0, z_t ~ q_t(z_t | z_{t-1}) (t = 1..T) has backward transitions
r_t(z_{t-1} | z_t). Every transition is a `Refinement` operator; the T forward
and T backward operators' parameters are stacked on a leading `[T]` axis, so the
chain is one `lax.scan` over t and every sample is vectorized over particles and
examples (`[K, B, D]`, particles first).

Everything a transition computes from its parameters and the context alone (the
normalized weights and the conditional scales and biases of every layer) is
computed for all T transitions before the scan (`Refinement.condition`), so the scan
body is the two matmuls per transition that depend on z; the forward scan is unrolled
(T is small), which lets XLA fuse across transitions.
"""
import math
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from avi import distributions as dist

INITS = ('identity', 'stationary')


class Affine(NamedTuple):
  """An affine map h -> (h @ kernel) * scale + bias with a per-example scale and bias
  (`[B, out]`, conditioned on the context) or a plain one (scale None, bias `[out]`)."""
  kernel: jax.Array
  scale: Optional[jax.Array]
  bias: jax.Array

  def __call__(self, h: jax.Array) -> jax.Array:
    y = h @ self.kernel
    return (y if self.scale is None else y * self.scale) + self.bias


class Dense(nn.Module):
  """A plain dense layer's parameters (the names and init of `nn.Dense`) as an `Affine`."""
  features: int
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: float | tuple[float, ...] = 0.0  # a tuple: one per output

  @nn.compact
  def __call__(self, in_features: int, context: None = None) -> Affine:
    kernel = self.param('kernel', self.kernel_init, (in_features, self.features))
    bias = self.param('bias', nn.initializers.constant(jnp.asarray(self.bias_init)), (self.features,))
    return Affine(kernel, None, bias)


class ConditionalDense(nn.Module):
  """Conditional weight normalization (Krueger et al. 2017): y = (h @ v / ||v||) * s(c) + b(c).

  The per-unit scale s and bias b are linear in the context c `[B, C]`. s starts
  at 1, or at 0 with `zero_init` (the output is then b(c) = bias_init until
  training moves it). Returns the `Affine` of context c, for inputs of `in_features`.
  """
  features: int
  bias_init: float | tuple[float, ...] = 0.0  # a tuple: one per output
  zero_init: bool = False

  @nn.compact
  def __call__(self, in_features: int, context: jax.Array) -> Affine:
    v = self.param('v', nn.initializers.lecun_normal(), (in_features, self.features))
    scale = nn.Dense(self.features, kernel_init=nn.initializers.zeros,
                     bias_init=nn.initializers.zeros if self.zero_init else nn.initializers.ones,
                     name='scale')(context)
    bias = nn.Dense(self.features, kernel_init=nn.initializers.zeros,
                    bias_init=nn.initializers.constant(jnp.asarray(self.bias_init)), name='bias')(context)
    return Affine(v / jnp.linalg.norm(v, axis=0), scale, bias)


class Refinement(nn.Module):
  """N(mu(z), diag sigma(z)^2), the stochastic refinement operator of Sec. 4.2.

  mu = g * m + (1 - g) * z, sigma = softplus(W_s h + b_s) + min_scale, g = sigmoid(W_g h + b_g),
  h = act(W_h z + b_h). With a context (amortized VI) every dense layer is a
  `ConditionalDense` on it. Returns (mean, scale), each like z.

  The output layers start at zero weight, so every transition starts as the same
  map whatever z (a random init of m and sigma compounds over T transitions:
  samples of 1e4 and log-densities of -1e11 at T = 10 in some seeds). `start` picks it:

  - 'identity' (amortized VI): m = z + W_m h + b_m, so mu = z + g (W_m h + b_m) is the
    paper's family with the proposal's own point as m's origin; mu = z and
    sigma = init_scale + min_scale at init. Forward and backward transitions are then
    the same symmetric random walk, each the other's reverse: log r_t - log q_t = 0 and
    the HVI bound at init is the ELBO of q_0 with z_T a slightly blurred z_0, so a
    trained encoder keeps its bound under fresh transitions.
  - 'stationary' (the toy energies, q_0 = N(0, I)): m = W_m h + b_m with gate bias
    -2, so mu = 0.88 z and sigma = init_scale + min_scale (0.5 there): an AR(1) step
    with 0.88^2 + 0.5^2 ~ 1 that leaves N(0, I) nearly invariant and is its own
    reverse under it. It starts the chain spread over the prior's support, which
    Figures 3-4 were reproduced with; under a narrow q_0 its backward chain does not
    undo the forward one (a trained VAE's test ELBO fell from -112 to -410 nats).
  """
  hidden: int = 64
  activation: str = 'relu'  # a jax.nn function: relu for energies, elu amortized
  start: str = 'identity'  # the map at init: one of INITS
  init_scale: float = 0.01
  # > 0: the context enters through a linear projection to this many features, i.e. each
  # conditional head's [C, F] kernel is factored through rank `context_rank`. At full
  # rank the heads of a 300-unit context cost twice the MLP VAE's FLOPs (T = 5), and on
  # MNIST they train worse models than rank 32 at learning rate 1e-3 (their context weights
  # move too fast under Adam; docs/avo.md, "The context's rank").
  context_rank: int = 0
  # A floor on sigma: with beta-annealing (beta << 1) a near-deterministic forward and a
  # sharpening backward transition send log q_t and log r_t to +inf together (inf - inf).
  min_scale: float = 1e-3

  def __call__(self, z: jax.Array, context: Optional[jax.Array] = None,
               ) -> tuple[jax.Array, jax.Array]:
    return transition(self, self.condition(z.shape[-1], context), z)

  @nn.compact
  def condition(self, dim: int, context: Optional[jax.Array] = None) -> dict[str, Affine]:
    """The layers' `Affine` maps for latents of size `dim` and the context `[B, C]`."""
    if self.start not in INITS:
      raise ValueError(f'unknown transition init {self.start!r}; known: {", ".join(INITS)}')
    if self.init_scale <= 0:
      raise ValueError(f'the initial transition std init_scale must be > 0, got '
                       f'{self.init_scale}')

    def layer(features, name, bias_init=0.0, zero_init=True):
      if context is None:
        kernel_init = nn.initializers.zeros if zero_init else nn.initializers.lecun_normal()
        return Dense(features, kernel_init, bias_init, name=name)
      return ConditionalDense(features, bias_init, zero_init, name=name)

    if context is not None and self.context_rank:
      context = nn.Dense(self.context_rank, name='context')(context)
    gate_bias = -2.0 if self.start == 'stationary' else 0.0
    # The gate, m and sigma heads are one layer of 3 D outputs (one matmul, not three).
    out_bias = (gate_bias,) * dim + (0.0,) * dim + (math.log(math.expm1(self.init_scale)),) * dim
    return {'hidden': layer(self.hidden, 'hidden', zero_init=False)(dim, context),
            'out': layer(3 * dim, 'out', out_bias)(self.hidden, context)}


def transition(op: Refinement, layers: dict[str, Affine], z: jax.Array,
               ) -> tuple[jax.Array, jax.Array]:
  """(mean, scale) of `op`'s transition from z `[..., B, D]`, given its conditioned layers."""
  h = getattr(jax.nn, op.activation)(layers['hidden'](z))
  gate_logit, m, scale_logit = jnp.split(layers['out'](h), 3, axis=-1)
  gate = jax.nn.sigmoid(gate_logit)
  if op.start == 'identity':
    m = m + z
  mean = gate * m + (1.0 - gate) * z
  return mean, jax.nn.softplus(scale_logit) + op.min_scale


def condition_all(op: Refinement, params: dict, dim: int, context: Optional[jax.Array] = None,
                  ) -> dict[str, Affine]:
  """`op.condition` for every transition of stacked params `[T, ...]`: Affines `[T, ...]`."""
  return jax.vmap(lambda p: op.apply(p, dim, context, method='condition'))(params)


def init_transitions(key: jax.Array, op: Refinement, num_transitions: int, z: jax.Array,
                     context: Optional[jax.Array] = None) -> dict:
  """Parameters {'forward', 'backward'}: T independently initialized `op`s each,
  stacked `[T, ...]`."""
  check_num_transitions(num_transitions)
  keys = jax.random.split(key, 2 * num_transitions).reshape(2, num_transitions)
  init = jax.vmap(lambda k: op.init(k, z, context))
  return {'forward': init(keys[0]), 'backward': init(keys[1])}


def check_num_transitions(num_transitions: int) -> None:
  if num_transitions < 1:
    raise ValueError(f'the number of transitions T must be >= 1, got {num_transitions}')


class Chain(NamedTuple):
  """A forward sample. zs `[T + 1, K, B, D]` (z_0..z_T); log_q `[T, K, B]` holds
  log q_t(z_t | z_{t-1}) and log_r `[T, K, B]` log r_t(z_{t-1} | z_t), t = 1..T."""
  zs: jax.Array
  log_q: jax.Array
  log_r: jax.Array


def sample_chain(op: Refinement, params: dict, z0: jax.Array, key: jax.Array,
                 context: Optional[jax.Array] = None, cut_gradients: bool = False) -> Chain:
  """Runs the forward transitions from z0 `[K, B, D]`, scoring each backward one.

  With `cut_gradients` each transition's input z_{t-1} is a constant (AVO,
  footnote 5): transition t's parameters then get gradient only through z_t.
  """
  forward = condition_all(op, params['forward'], z0.shape[-1], context)
  backward = condition_all(op, params['backward'], z0.shape[-1], context)
  num_transitions = forward['out'].bias.shape[0]
  eps = jax.random.normal(key, (num_transitions, *z0.shape), z0.dtype)

  def step(z_prev, inputs):
    forward, backward, noise = inputs
    if cut_gradients:
      z_prev = jax.lax.stop_gradient(z_prev)
    mean, scale = transition(op, forward, z_prev)
    z = mean + scale * noise
    r_mean, r_scale = transition(op, backward, z)
    return z, (z, dist.diag_gaussian_log_prob(z, mean, scale),
               dist.diag_gaussian_log_prob(z_prev, r_mean, r_scale))

  _, (zs, log_q, log_r) = jax.lax.scan(step, z0, (forward, backward, eps), unroll=True)
  return Chain(jnp.concatenate([z0[None], zs]), log_q, log_r)


def backward_log_weights(op: Refinement, params: dict, z_T: jax.Array, key: jax.Array,
                         num_samples: int, log_q0_fn, context: Optional[jax.Array] = None,
                         ) -> jax.Array:
  """log [q(z_0..z_T) / r(z_0..z_{T-1} | z_T)] for K backward chains from z_T `[B, D]`; `[K, B]`.

  Their log-mean-exp estimates log q_T(z_T) (Huang et al., Appendix C;
  `evaluation.hvi_log_marginal`).
  `log_q0_fn(z_0 [K, B, D]) -> [K, B]` is the initial density.
  """
  forward = condition_all(op, params['forward'], z_T.shape[-1], context)
  backward = condition_all(op, params['backward'], z_T.shape[-1], context)
  num_transitions = forward['out'].bias.shape[0]
  z = jnp.broadcast_to(z_T, (num_samples, *z_T.shape))
  eps = jax.random.normal(key, (num_transitions, *z.shape), z.dtype)

  def step(carry, inputs):  # t = T..1: z_{t-1} ~ r_t(. | z_t)
    z_t, log_ratio = carry
    forward, backward, noise = inputs
    r_mean, r_scale = transition(op, backward, z_t)
    z_prev = r_mean + r_scale * noise
    mean, scale = transition(op, forward, z_prev)
    log_ratio += (dist.diag_gaussian_log_prob(z_t, mean, scale)
                  - dist.diag_gaussian_log_prob(z_prev, r_mean, r_scale))
    return (z_prev, log_ratio), None

  (z0, log_ratio), _ = jax.lax.scan(step, (z, jnp.zeros(z.shape[:-1], z.dtype)),
                                    (forward, backward, eps), reverse=True)
  return log_ratio + log_q0_fn(z0)
