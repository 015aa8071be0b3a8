"""Hierarchical VI with Gaussian refinement transitions (Huang et al. 2018, Sec. 3.1, 4.2).

The chain z_0 ~ q_0, z_t ~ q_t(z_t | z_{t-1}) (t = 1..T) has backward transitions
r_t(z_{t-1} | z_t). Every transition is a `Refinement` operator; the T forward
and T backward operators' parameters are stacked on a leading `[T]` axis, so the
chain is one `lax.scan` over t and every sample is vectorized over particles and
examples (`[K, B, D]`, particles first).
"""
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from avi import distributions as dist

_SOFTPLUS_INV_HALF = -0.4328521  # softplus^{-1}(0.5): initial transition std
_GATE_BIAS = -2.0  # initial gate sigmoid(-2) = 0.12


class ConditionalDense(nn.Module):
  """Conditional weight normalization (Krueger et al. 2017): y = (h @ v / ||v||) * s(c) + b(c).

  The per-unit scale s and bias b are linear in the context c `[B, C]`; h is
  `[..., B, in]` (leading particle axes broadcast). s starts at 1, or at 0 with
  `zero_init` (the output is then b(c) = bias_init until training moves it).
  """
  features: int
  bias_init: float = 0.0
  zero_init: bool = False

  @nn.compact
  def __call__(self, h: jax.Array, context: jax.Array) -> jax.Array:
    v = self.param('v', nn.initializers.lecun_normal(), (h.shape[-1], self.features))
    direction = v / jnp.linalg.norm(v, axis=0)
    scale = nn.Dense(self.features, kernel_init=nn.initializers.zeros,
                     bias_init=nn.initializers.zeros if self.zero_init else nn.initializers.ones,
                     name='scale')(context)
    bias = nn.Dense(self.features, kernel_init=nn.initializers.zeros,
                    bias_init=nn.initializers.constant(self.bias_init), name='bias')(context)
    return (h @ direction) * scale + bias


class Refinement(nn.Module):
  """N(mu(z), diag sigma(z)^2), the stochastic refinement operator of Sec. 4.2.

  mu = g * m + (1 - g) * z, sigma = softplus(W_s h + b_s) + min_scale, g = sigmoid(W_g h + b_g),
  m = W_m h + b_m, h = act(W_h z + b_h). With a context (amortized VI) every
  dense layer is a `ConditionalDense` on it. Returns (mean, scale), each like z.

  The output layers start at zero weight, so every transition starts as the
  same contraction toward the identity, mean = 0.88 z and std 0.501, whatever z:
  a random init of m and sigma compounds over T transitions (samples of 1e4
  and log-densities of -1e11 at T = 10 in some seeds).
  """
  hidden: int = 64
  activation: str = 'relu'  # a jax.nn function: relu for energies, elu amortized
  # A floor on sigma: with beta-annealing (beta << 1) a near-deterministic forward and a
  # sharpening backward transition send log q_t and log r_t to +inf together (inf - inf).
  min_scale: float = 1e-3

  @nn.compact
  def __call__(self, z: jax.Array, context: Optional[jax.Array] = None,
               ) -> tuple[jax.Array, jax.Array]:
    def layer(features, name, bias_init=0.0, zero_init=True):
      if context is None:
        kernel_init = nn.initializers.zeros if zero_init else nn.initializers.lecun_normal()
        return lambda h: nn.Dense(features, kernel_init=kernel_init,
                                  bias_init=nn.initializers.constant(bias_init), name=name)(h)
      return lambda h: ConditionalDense(features, bias_init, zero_init, name=name)(h, context)

    d = z.shape[-1]
    h = getattr(jax.nn, self.activation)(layer(self.hidden, 'hidden', zero_init=False)(z))
    gate = jax.nn.sigmoid(layer(d, 'gate', _GATE_BIAS)(h))
    mean = gate * layer(d, 'm')(h) + (1.0 - gate) * z
    scale = jax.nn.softplus(layer(d, 'scale', _SOFTPLUS_INV_HALF)(h)) + self.min_scale
    return mean, scale


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
  num_transitions = jax.tree.leaves(params['forward'])[0].shape[0]
  eps = jax.random.normal(key, (num_transitions, *z0.shape), z0.dtype)

  def step(z_prev, inputs):
    forward, backward, noise = inputs
    if cut_gradients:
      z_prev = jax.lax.stop_gradient(z_prev)
    mean, scale = op.apply(forward, z_prev, context)
    z = mean + scale * noise
    r_mean, r_scale = op.apply(backward, z, context)
    return z, (z, dist.diag_gaussian_log_prob(z, mean, scale),
               dist.diag_gaussian_log_prob(z_prev, r_mean, r_scale))

  _, (zs, log_q, log_r) = jax.lax.scan(step, z0, (params['forward'], params['backward'], eps))
  return Chain(jnp.concatenate([z0[None], zs]), log_q, log_r)


def backward_log_weights(op: Refinement, params: dict, z_T: jax.Array, key: jax.Array,
                         num_samples: int, log_q0_fn, context: Optional[jax.Array] = None,
                         ) -> jax.Array:
  """log [q(z_0..z_T) / r(z_0..z_{T-1} | z_T)] for K backward chains from z_T `[B, D]`; `[K, B]`.

  Their log-mean-exp estimates log q_T(z_T) (Huang et al., Appendix C;
  `evaluation.hvi_log_marginal`).
  `log_q0_fn(z_0 [K, B, D]) -> [K, B]` is the initial density.
  """
  num_transitions = jax.tree.leaves(params['forward'])[0].shape[0]
  z = jnp.broadcast_to(z_T, (num_samples, *z_T.shape))
  eps = jax.random.normal(key, (num_transitions, *z.shape), z.dtype)

  def step(carry, inputs):  # t = T..1: z_{t-1} ~ r_t(. | z_t)
    z_t, log_ratio = carry
    forward, backward, noise = inputs
    r_mean, r_scale = op.apply(backward, z_t, context)
    z_prev = r_mean + r_scale * noise
    mean, scale = op.apply(forward, z_prev, context)
    log_ratio += (dist.diag_gaussian_log_prob(z_t, mean, scale)
                  - dist.diag_gaussian_log_prob(z_prev, r_mean, r_scale))
    return (z_prev, log_ratio), None

  (z0, log_ratio), _ = jax.lax.scan(step, (z, jnp.zeros(z.shape[:-1], z.dtype)),
                                    (params['forward'], params['backward'], eps), reverse=True)
  return log_ratio + log_q0_fn(z0)
