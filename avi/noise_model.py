"""The biased noise model of Huang et al. (2018), Sec. 5.1: how the proposal biases the model.

Data: z ~ N(0, 1), x = [sin(pi tanh(eta z)), cos(pi tanh(eta z))] + N(0, noise_std^2 I),
eta = 0.75: a 2-d arc whose ends (large |z| of either sign) meet near x = [0, -1],
where the true posterior is bimodal. Every model has the decoder mean of that form
with a learned eta and a learned std MLP(z); they differ in the proposal:

- `iwae_prior`: IWAE with the prior as proposal (K = 500 in the paper);
- `vae`: a Gaussian encoder q(z | x), ELBO;
- `hvi_avo`: q_0(z_0 | x) refined by T transitions conditioned on x, trained with
  loss-calibrated AVO (`avo_a`).

Each trains through the registered method of the same name (`iwae`, `vae`,
`hvi_avo`) on `NoiseModel`, the `models.LatentVariableModel` of this decoder.

The latent is 1-d, so log p(x) and p(z | x) of a learned model are exact by
quadrature on a grid of z (`log_px`, `posterior`).
"""
import dataclasses
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from avi import avo
from avi import distributions as dist
from avi import fitting
from avi import hvi
from avi import methods
from avi import models

MODELS = ('iwae_prior', 'vae', 'hvi_avo')


def sample_data(key: jax.Array, num: int, eta: float = 0.75, noise_std: float = 0.1,
                ) -> jax.Array:
  """`[num, 2]` draws of the data distribution."""
  key_z, key_eps = jax.random.split(key)
  z = jax.random.normal(key_z, (num, 1))
  return arc(z, eta) + noise_std * jax.random.normal(key_eps, (num, 2))


def arc(z: jax.Array, eta) -> jax.Array:
  angle = jnp.pi * jnp.tanh(eta * z[..., 0])
  return jnp.stack([jnp.sin(angle), jnp.cos(angle)], -1)


class Settings(NamedTuple):
  model: str = 'hvi_avo'
  num_particles: int = 1  # K of iwae_prior (the paper: 500); M chains otherwise
  num_transitions: int = 10
  avo_a: float = 0.5
  decoder_steps: str = 'all'  # hvi_avo: also 'elbo' (AVO steps train only the transitions)
  # The transitions (`hvi.Refinement`): identity start, std 0.1 + a floor of 0.05. With the
  # 1e-3 floor AVO's loss spikes to 1e6-1e8 within 5,000 steps, and a std of 0.01 stalls
  # even plain HVI in this 1-d model (docs/avo.md).
  start: str = 'identity'
  init_scale: float = 0.1
  min_scale: float = 0.05
  hidden: int = 64
  steps: int = 5000
  batch_size: int = 128
  learning_rate: float = 1e-3


class NoiseVAE(nn.Module):
  """Decoder N(arc(z; eta), diag std(z)^2) with learned eta; an encoder (not for
  `iwae_prior`) and, for `hvi_avo`, the transitions."""
  settings: Settings

  def setup(self):
    s = self.settings
    self.log_eta = self.param('log_eta', nn.initializers.constant(jnp.log(0.3)), ())
    self.std_hidden = nn.Dense(s.hidden)
    self.std_out = nn.Dense(2)
    if s.model != 'iwae_prior':
      self.enc_hidden = [nn.Dense(s.hidden), nn.Dense(s.hidden)]
      self.enc_mean, self.enc_log_scale = nn.Dense(1), nn.Dense(1)
    if s.model == 'hvi_avo':
      self.transitions = self.param('transitions', lambda key: hvi.init_transitions(
          key, self._op(), s.num_transitions, jnp.zeros((1, 1, 1)), jnp.zeros((1, s.hidden))))

  def _op(self) -> hvi.Refinement:
    s = self.settings
    return hvi.Refinement(s.hidden, 'elu', s.start, s.init_scale, min_scale=s.min_scale,
                          parent=None)

  def __call__(self, x):
    if self.settings.model == 'iwae_prior':
      return self.log_likelihood(x, jnp.zeros((1, *x.shape[:-1], 1)))
    mean, _, _ = self.encode(x)
    return self.log_likelihood(x, mean[None])

  def decode(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and std of p(x | z), each `[..., 2]`, for z `[..., 1]`."""
    std = jax.nn.softplus(self.std_out(jnp.tanh(self.std_hidden(z)))) + 1e-3
    return arc(z, jnp.exp(self.log_eta)), std

  def log_likelihood(self, x: jax.Array, z: jax.Array) -> jax.Array:
    """log p(x | z) for x `[B, 2]`, z `[K, B, 1]`; `[K, B]`."""
    return dist.diag_gaussian_log_prob(x, *self.decode(z))

  def encode(self, x: jax.Array):
    h = x
    for layer in self.enc_hidden:
      h = jnp.tanh(layer(h))
    return self.enc_mean(h), jnp.exp(self.enc_log_scale(h)), h

  def refine(self, z0, context, key, cut_gradients=False):
    return hvi.sample_chain(self._op(), self.transitions, z0, key, context, cut_gradients)


@dataclasses.dataclass(frozen=True)
class NoiseModel(models.LatentVariableModel):
  """`NoiseVAE` behind the model interface; `iwae_prior` proposes from the prior."""
  module: NoiseVAE

  @property
  def num_transitions(self) -> int:
    s = self.module.settings
    return s.num_transitions if s.model == 'hvi_avo' else 0

  @property
  def groups(self) -> dict[str, models.Group]:
    groups = {'decoder': models.Group(models.GENERATIVE,
                                      (('log_eta',), ('std_hidden',), ('std_out',)))}
    if self.module.settings.model != 'iwae_prior':
      groups['encoder'] = models.Group(models.INFERENCE, (
          ('enc_hidden_0',), ('enc_hidden_1',), ('enc_mean',), ('enc_log_scale',)))
    if self.num_transitions:
      groups['forward'] = models.Group(models.INFERENCE, (('transitions', 'forward'),))
      groups['backward'] = models.Group(models.INFERENCE, (('transitions', 'backward'),))
    return groups

  def log_likelihood(self, params, x, z):
    return self.module.apply(params, x, z, method='log_likelihood')

  def encode(self, params, x):
    return self.module.apply(params, x, method='encode')

  def refine(self, params, z0, context, key, cut_gradients=False):
    return self.module.apply(params, z0, context, key, cut_gradients, method='refine')

  def propose(self, params, x, key, num_samples, **options):
    if self.module.settings.model != 'iwae_prior':
      return super().propose(params, x, key, num_samples, **options)
    z = jax.random.normal(key, (num_samples, x.shape[0], 1))
    return models.Proposal(z, self.log_prior(z), self.log_prior(z))


def check(settings: Settings) -> None:
  if settings.model not in MODELS:
    raise ValueError(f'unknown model {settings.model!r}; known: {", ".join(MODELS)}')
  if settings.num_particles < 1:
    raise ValueError(f'num_particles must be >= 1, got {settings.num_particles}')
  if settings.model == 'hvi_avo':
    hvi.check_num_transitions(settings.num_transitions)
  avo.check_fraction(settings.avo_a, 'avo_a (the probability of an AVO step)')


def make_loss(settings: Settings, model: NoiseModel) -> methods.LossFn:
  """The registered method of `settings.model`: IWAE-K from the prior, the M-sample ELBO,
  or loss-calibrated HVI-AVO with M chains."""
  config = ml_collections.ConfigDict({
      'k': settings.num_particles, 'num_samples': settings.num_particles,
      'hvi': {'avo_a': settings.avo_a, 'decoder_steps': settings.decoder_steps}})
  name = {'iwae_prior': 'iwae', 'vae': 'vae', 'hvi_avo': 'hvi_avo'}[settings.model]
  return methods.build(name, model, config)


def fit(settings: Settings, data: jax.Array, key: jax.Array):
  """Adam on minibatches of `data` `[N, 2]`; returns (model, params, losses `[steps]`)."""
  check(settings)
  model = NoiseModel(NoiseVAE(settings))
  key_init, key_train = jax.random.split(key)
  params = model.module.init(key_init, data[:2])
  loss_fn = make_loss(settings, model)

  def batch_loss(params, t):
    key_batch, key_loss = jax.random.split(jax.random.fold_in(key_train, t))
    idx = jax.random.randint(key_batch, (settings.batch_size,), 0, data.shape[0])
    return loss_fn(params, data[idx], key_loss, t)[0]

  params, losses = jax.jit(lambda p: fitting.fit_adam(batch_loss, p, settings.steps,
                                                      settings.learning_rate))(params)
  return model, params, losses


def _grid(half_width: float = 8.0, num: int = 4001) -> tuple[jax.Array, float]:
  z = jnp.linspace(-half_width, half_width, num)
  return z[:, None, None], float(z[1] - z[0])  # [G, 1, 1]


def log_px(model: NoiseModel, params, x: jax.Array) -> jax.Array:
  """Exact (quadrature) log p(x) of the learned model for x `[B, 2]`; `[B]`."""
  z, dz = _grid()
  log_joint = model.log_joint(params, x, jnp.broadcast_to(z, (z.shape[0], x.shape[0], 1)))
  return jax.nn.logsumexp(log_joint, axis=0) + jnp.log(dz)


def posterior(model: NoiseModel, params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The model's p(z | x) on a grid for one x `[2]`: (z `[G]`, density `[G]`)."""
  z, dz = _grid()
  log_joint = model.log_joint(params, x[None], z)[:, 0]
  return z[:, 0, 0], jnp.exp(log_joint - jax.nn.logsumexp(log_joint) - jnp.log(dz))


def sample_x(model: NoiseModel, params, key: jax.Array, num: int) -> jax.Array:
  """`[num, 2]` draws of the learned p(x)."""
  key_z, key_x = jax.random.split(key)
  mean, std = model.module.apply(params, jax.random.normal(key_z, (num, 1)), method='decode')
  return mean + std * jax.random.normal(key_x, mean.shape)


def proposal_samples(model: NoiseModel, params, x: jax.Array, key: jax.Array,
                     num: int) -> jax.Array:
  """`num` draws of the model's approximate posterior at one x `[2]` (z_T for HVI); `[num]`."""
  return model.propose(params, x[None], key, num).z[:, 0, 0]
