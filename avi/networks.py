"""Thin Flax encoders and decoders, and the papers' architecture presets."""
import dataclasses
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from avi import hvi

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'tanh': jnp.tanh, 'relu': nn.relu, 'elu': nn.elu, 'softplus': nn.softplus,
}


@dataclasses.dataclass(frozen=True)
class Architecture:
  """MLP encoder/decoder sizes. `hidden` is used mirrored in the decoder.

  `encoder_max_norm` H > 0 makes every encoder layer a `BoundedWeightNormDense`
  (weight-normalized inference, Shu et al. 2018); 0 leaves it plain.
  `num_transitions` T > 0 refines the encoder's q_0(z_0 | x) by T stochastic
  transitions conditioned on x (hierarchical VI, Huang et al. 2018, Sec. 4.2),
  each with `transition_hidden` ELU units, starting as `transition_start` with std
  `transition_init_scale` (floored at `transition_min_scale`), conditioned on the encoder's
  last hidden layer through rank-`transition_context_rank` maps (0: full rank;
  `hvi.Refinement`).
  """
  hidden: tuple[int, ...]
  latent_dim: int
  activation: str = 'tanh'
  encoder_max_norm: float = 0.0
  num_transitions: int = 0
  transition_hidden: int = 100
  transition_start: str = 'identity'
  transition_init_scale: float = 0.01
  transition_context_rank: int = 32
  transition_min_scale: float = 1e-3


PRESETS: dict[str, Architecture] = {
    # Burda et al. 2016, one stochastic layer: 784-200-200-50 tanh.
    'burda': Architecture(hidden=(200, 200), latent_dim=50),
    # Dieng & Paisley 2019, Section 4: 2x200 tanh, 20-d latent.
    'rem': Architecture(hidden=(200, 200), latent_dim=20),
    # Huang et al. 2018, Section 5.4 (amortized): gated 2x300 MLPs, 40-d latent.
    'avo': Architecture(hidden=(300, 300), latent_dim=40, activation='gated'),
}


class BoundedWeightNormDense(nn.Module):
  """Dense layer whose weight columns have norm at most `max_norm` (Shu et al. 2018, eqs. 17-18).

  w_i = v_i / ||v_i|| * s_i with s_i = min(||v_i||, H sigmoid(u_i)), so ||w_i|| <= H
  for any parameters.
  """
  features: int
  max_norm: float

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    v = self.param('v', nn.initializers.lecun_normal(), (h.shape[-1], self.features))
    u = self.param('u', nn.initializers.zeros, (self.features,))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    return h @ self.kernel(v, u, self.max_norm) + bias

  @staticmethod
  def kernel(v: jax.Array, u: jax.Array, max_norm: float) -> jax.Array:
    """The effective `[in, out]` weight matrix."""
    norm = jnp.linalg.norm(v, axis=0)
    scale = jnp.minimum(norm, max_norm * jax.nn.sigmoid(u))
    return v / norm * scale


def dense(features: int, max_norm: float = 0.0, name: str | None = None) -> nn.Module:
  """A plain `nn.Dense`, or a `BoundedWeightNormDense` when max_norm > 0."""
  if max_norm > 0:
    return BoundedWeightNormDense(features, max_norm, name=name)
  return nn.Dense(features, name=name)


class MLP(nn.Module):
  """Dense layers with an activation after each. `gated`: h = (W h + b) * sigmoid(V h + c)
  (Tomczak & Welling 2016)."""
  features: Sequence[int]
  activation: str = 'tanh'
  max_norm: float = 0.0

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    for i, width in enumerate(self.features):
      pre = dense(width, self.max_norm, name=f'Dense_{i}')(h)
      if self.activation == 'gated':
        h = pre * jax.nn.sigmoid(dense(width, self.max_norm, name=f'Gate_{i}')(h))
      else:
        h = ACTIVATIONS[self.activation](pre)
    return h


class GaussianEncoder(nn.Module):
  """q(z | x) = N(mean(x), diag(scale(x)^2)); returns (mean, scale), each `[..., D]`."""
  hidden: Sequence[int]
  latent_dim: int
  activation: str = 'tanh'
  max_norm: float = 0.0  # > 0: weight-normalized inference with ||w_i|| <= max_norm

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(mean, scale, features): the last hidden layer `[..., hidden[-1]]` is the
    context of conditioned transitions."""
    h = MLP(self.hidden, self.activation, self.max_norm)(x)
    mean = dense(self.latent_dim, self.max_norm, name='mean')(h)
    # exp(log-std) as in Burda et al.
    scale = jnp.exp(dense(self.latent_dim, self.max_norm, name='log_scale')(h))
    return mean, scale, h


class BernoulliDecoder(nn.Module):
  """p(x | z) = Bernoulli(sigmoid(logits(z))); returns logits `[..., data_dim]`."""
  hidden: Sequence[int]
  data_dim: int
  activation: str = 'tanh'

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = MLP(self.hidden, self.activation)(z)
    return nn.Dense(self.data_dim, name='logits')(h)


class VAE(nn.Module):
  """An encoder/decoder pair; `encode` and `decode` are what the methods call.

  With `arch.num_transitions` T > 0 it also holds the T forward and T backward
  refinement transitions (stacked, see `avi.hvi`); `refine` runs them.
  """
  arch: Architecture
  data_dim: int

  def setup(self):
    if self.arch.encoder_max_norm < 0:
      raise ValueError(f'encoder_max_norm H must be > 0 (or 0 for a plain encoder), '
                       f'got {self.arch.encoder_max_norm}')
    if self.arch.num_transitions < 0:
      raise ValueError(f'num_transitions T must be >= 0, got {self.arch.num_transitions}')
    if self.arch.num_transitions and self.arch.transition_hidden < 1:
      raise ValueError(f'the transitions need >= 1 hidden unit, got {self.arch.transition_hidden}')
    self.encoder = GaussianEncoder(self.arch.hidden, self.arch.latent_dim, self.arch.activation,
                                   self.arch.encoder_max_norm)
    self.decoder = BernoulliDecoder(tuple(reversed(self.arch.hidden)), self.data_dim,
                                    self.arch.activation)
    if self.arch.num_transitions:
      z = jnp.zeros((1, 1, self.arch.latent_dim))
      context = jnp.zeros((1, self.arch.hidden[-1]))
      self.transitions = self.param('transitions', lambda key: hvi.init_transitions(
          key, self._transition_op(), self.arch.num_transitions, z, context))

  def _transition_op(self) -> hvi.Refinement:
    # Unbound (parent=None): the stacked parameters are applied to it inside lax.scan.
    return hvi.Refinement(self.arch.transition_hidden, 'elu', self.arch.transition_start,
                          self.arch.transition_init_scale, self.arch.transition_context_rank,
                          self.arch.transition_min_scale, parent=None)

  def __call__(self, x: jax.Array) -> jax.Array:
    mean, _ = self.encode(x)
    return self.decode(mean)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, scale) of q(z | x), or of q_0(z_0 | x) with transitions."""
    return self.encoder(x)[:2]

  def encode_with_context(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    return self.encoder(x)

  def refine(self, z0: jax.Array, context: jax.Array, key: jax.Array,
             cut_gradients: bool = False):
    """The `hvi.Chain` of the transitions from z_0 `[K, B, D]` given context `[B, C]`."""
    return hvi.sample_chain(self._transition_op(), self.transitions, z0, key, context,
                            cut_gradients)

  def backward_log_weights(self, z_T: jax.Array, context: jax.Array, key: jax.Array,
                           num_chains: int, log_q0_fn) -> jax.Array:
    """`hvi.backward_log_weights` of the transitions from z_T `[B, D]`: `[num_chains, B]`."""
    return hvi.backward_log_weights(self._transition_op(), self.transitions, z_T, key,
                                    num_chains, log_q0_fn, context)

  def decode(self, z: jax.Array) -> jax.Array:
    return self.decoder(z)


def logit_of_mean(train_x: np.ndarray, clip: float = 1e-3) -> np.ndarray:
  """logit of the per-pixel training mean, clipped to [clip, 1 - clip]. `[N, P] -> [P]`."""
  p = np.clip(np.asarray(train_x, np.float64).mean(0), clip, 1.0 - clip)
  return np.log(p / (1.0 - p)).astype(np.float32)
