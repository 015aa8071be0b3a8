"""Thin Flax encoders and decoders, and the papers' architecture presets."""
import dataclasses
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'tanh': jnp.tanh, 'relu': nn.relu, 'elu': nn.elu, 'softplus': nn.softplus,
}


@dataclasses.dataclass(frozen=True)
class Architecture:
  """MLP encoder/decoder sizes. `hidden` is used mirrored in the decoder."""
  hidden: tuple[int, ...]
  latent_dim: int
  activation: str = 'tanh'


PRESETS: dict[str, Architecture] = {
    # Burda et al. 2016, one stochastic layer: 784-200-200-50 tanh.
    'burda': Architecture(hidden=(200, 200), latent_dim=50),
    # Dieng & Paisley 2019, Section 4: 2x200 tanh, 20-d latent.
    'rem': Architecture(hidden=(200, 200), latent_dim=20),
    # Huang et al. 2018, Section 5.4 (amortized): 2x300, 40-d latent.
    'avo': Architecture(hidden=(300, 300), latent_dim=40, activation='elu'),
}


class MLP(nn.Module):
  """Dense layers with an activation after each."""
  features: Sequence[int]
  activation: str = 'tanh'

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    for width in self.features:
      h = act(nn.Dense(width)(h))
    return h


class GaussianEncoder(nn.Module):
  """q(z | x) = N(mean(x), diag(scale(x)^2)); returns (mean, scale), each `[..., D]`."""
  hidden: Sequence[int]
  latent_dim: int
  activation: str = 'tanh'

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = MLP(self.hidden, self.activation)(x)
    mean = nn.Dense(self.latent_dim, name='mean')(h)
    # exp(log-std) as in Burda et al.
    scale = jnp.exp(nn.Dense(self.latent_dim, name='log_scale')(h))
    return mean, scale


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
  """An encoder/decoder pair; `encode` and `decode` are what the methods call."""
  arch: Architecture
  data_dim: int

  def setup(self):
    self.encoder = GaussianEncoder(self.arch.hidden, self.arch.latent_dim, self.arch.activation)
    self.decoder = BernoulliDecoder(tuple(reversed(self.arch.hidden)), self.data_dim,
                                    self.arch.activation)

  def __call__(self, x: jax.Array) -> jax.Array:
    mean, _ = self.encode(x)
    return self.decode(mean)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.encoder(x)

  def decode(self, z: jax.Array) -> jax.Array:
    return self.decoder(z)


def logit_of_mean(train_x: np.ndarray, clip: float = 1e-3) -> np.ndarray:
  """logit of the per-pixel training mean, clipped to [clip, 1 - clip]. `[N, P] -> [P]`."""
  p = np.clip(np.asarray(train_x, np.float64).mean(0), clip, 1.0 - clip)
  return np.log(p / (1.0 - p)).astype(np.float32)


def init_vae(key: jax.Array, arch: Architecture, train_x: np.ndarray) -> tuple[VAE, dict]:
  """Builds a VAE for `train_x` `[N, P]` and its params, decoder bias = logit of the data mean."""
  model = VAE(arch, train_x.shape[-1])
  params = model.init(key, jnp.zeros((1, train_x.shape[-1]), jnp.float32))
  bias = jnp.asarray(logit_of_mean(train_x))
  params = jax.tree_util.tree_map_with_path(
      lambda path, p: bias if _is_output_bias(path) else p, params)
  return model, params


def _is_output_bias(path) -> bool:
  names = [getattr(k, 'key', None) for k in path]
  return names[-3:] == ['decoder', 'logits', 'bias']
