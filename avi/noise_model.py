"""The biased noise model of Huang et al. (2018), Sec. 5.1: how the proposal biases the model.

Data: z ~ N(0, 1), x = [sin(pi tanh(eta z)), cos(pi tanh(eta z))] + N(0, noise_std^2 I),
eta = 0.75: a 2-d arc whose ends (large |z| of either sign) meet near x = [0, -1],
where the true posterior is bimodal. Every model has the decoder mean of that form
with a learned eta and a learned std MLP(z); they differ in the proposal:

- `iwae_prior`: IWAE with the prior as proposal (K = 500 in the paper);
- `vae`: a Gaussian encoder q(z | x), ELBO;
- `hvi_avo`: q_0(z_0 | x) refined by T transitions conditioned on x, trained with
  loss-calibrated AVO (`avo_a`).

The latent is 1-d, so log p(x) and p(z | x) of a learned model are exact by
quadrature on a grid of z (`log_px`, `posterior`).
"""
import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from avi import avo
from avi import bounds
from avi import distributions as dist
from avi import hvi

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
  hidden: int = 64
  steps: int = 5000
  batch_size: int = 128
  learning_rate: float = 1e-3


class NoiseVAE(nn.Module):
  """Decoder N(arc(z; eta), diag std(z)^2) with learned eta; an encoder and transitions."""
  settings: Settings

  def setup(self):
    s = self.settings
    self.log_eta = self.param('log_eta', nn.initializers.constant(jnp.log(0.3)), ())
    self.std_hidden = nn.Dense(s.hidden)
    self.std_out = nn.Dense(2)
    self.enc_hidden = [nn.Dense(s.hidden), nn.Dense(s.hidden)]
    self.enc_mean, self.enc_log_scale = nn.Dense(1), nn.Dense(1)
    if s.model == 'hvi_avo':
      self.transitions = self.param('transitions', lambda key: hvi.init_transitions(
          key, self._op(), s.num_transitions, jnp.zeros((1, 1, 1)), jnp.zeros((1, s.hidden))))

  def _op(self) -> hvi.Refinement:
    return hvi.Refinement(self.settings.hidden, 'elu', parent=None)

  def __call__(self, x):
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


def check(settings: Settings) -> None:
  if settings.model not in MODELS:
    raise ValueError(f'unknown model {settings.model!r}; known: {", ".join(MODELS)}')
  if settings.num_particles < 1:
    raise ValueError(f'num_particles must be >= 1, got {settings.num_particles}')
  if settings.model == 'hvi_avo':
    hvi.check_num_transitions(settings.num_transitions)
  avo.check_fraction(settings.avo_a, 'avo_a (the probability of an AVO step)')


def loss_fn(model: NoiseVAE, params, x: jax.Array, key: jax.Array) -> jax.Array:
  """Minus the batch mean of the model's objective."""
  s = model.settings
  apply = functools.partial(model.apply, params)
  if s.model == 'iwae_prior':
    z = jax.random.normal(key, (s.num_particles, x.shape[0], 1))
    return -jnp.mean(bounds.iwae(apply(x, z, method='log_likelihood')))
  key_0, key_chain, key_choice = jax.random.split(key, 3)
  mean, scale, context = apply(x, method='encode')
  z0 = dist.diag_gaussian_sample(key_0, mean, scale, s.num_particles)
  log_q0 = dist.diag_gaussian_log_prob(z0, mean, scale)
  log_joint = lambda z: apply(x, z, method='log_likelihood') + dist.standard_normal_log_prob(z)
  if s.model == 'vae':
    return -jnp.mean(log_joint(z0) - log_q0)

  def elbo_loss():
    chain = apply(z0, context, key_chain, method='refine')
    return -jnp.mean(avo.hvi_elbo(chain, log_q0, log_joint(chain.zs[-1])))

  def avo_loss():
    chain = apply(z0, context, key_chain, True, method='refine')
    terms = avo.avo_objectives(chain, log_q0,
                               dist.standard_normal_log_prob, log_joint)
    return -jnp.mean(jnp.sum(terms, axis=0))

  return jax.lax.cond(jax.random.uniform(key_choice) < s.avo_a, avo_loss, elbo_loss)


def fit(settings: Settings, data: jax.Array, key: jax.Array):
  """Adam on minibatches of `data` `[N, 2]`; returns (model, params, losses `[steps]`)."""
  check(settings)
  model = NoiseVAE(settings)
  key_init, key_train = jax.random.split(key)
  params = model.init(key_init, data[:2])
  tx = optax.adam(settings.learning_rate)

  def step(carry, t):
    params, opt_state = carry
    key_batch, key_loss = jax.random.split(jax.random.fold_in(key_train, t))
    idx = jax.random.randint(key_batch, (settings.batch_size,), 0, data.shape[0])
    loss, grads = jax.value_and_grad(functools.partial(loss_fn, model))(
        params, data[idx], key_loss)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, _), losses = jax.jit(lambda p: jax.lax.scan(
      step, (p, tx.init(p)), jnp.arange(settings.steps)))(params)
  return model, params, losses


def _grid(half_width: float = 8.0, num: int = 4001) -> tuple[jax.Array, float]:
  z = jnp.linspace(-half_width, half_width, num)
  return z[:, None, None], float(z[1] - z[0])  # [G, 1, 1]


def log_px(model: NoiseVAE, params, x: jax.Array) -> jax.Array:
  """Exact (quadrature) log p(x) of the learned model for x `[B, 2]`; `[B]`."""
  z, dz = _grid()
  log_joint = (model.apply(params, x, jnp.broadcast_to(z, (z.shape[0], x.shape[0], 1)),
                           method='log_likelihood') + dist.standard_normal_log_prob(z))
  return jax.nn.logsumexp(log_joint, axis=0) + jnp.log(dz)


def posterior(model: NoiseVAE, params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The model's p(z | x) on a grid for one x `[2]`: (z `[G]`, density `[G]`)."""
  z, dz = _grid()
  log_joint = (model.apply(params, x[None], z, method='log_likelihood')
               + dist.standard_normal_log_prob(z))[:, 0]
  return z[:, 0, 0], jnp.exp(log_joint - jax.nn.logsumexp(log_joint) - jnp.log(dz))


def sample_x(model: NoiseVAE, params, key: jax.Array, num: int) -> jax.Array:
  """`[num, 2]` draws of the learned p(x)."""
  key_z, key_x = jax.random.split(key)
  mean, std = model.apply(params, jax.random.normal(key_z, (num, 1)), method='decode')
  return mean + std * jax.random.normal(key_x, mean.shape)


def proposal_samples(model: NoiseVAE, params, x: jax.Array, key: jax.Array,
                     num: int) -> jax.Array:
  """`num` draws of the model's approximate posterior at one x `[2]` (z_T for HVI); `[num]`."""
  s = model.settings
  key_0, key_chain = jax.random.split(key)
  if s.model == 'iwae_prior':
    return jax.random.normal(key_0, (num,))
  mean, scale, context = model.apply(params, x[None], method='encode')
  z = dist.diag_gaussian_sample(key_0, mean, scale, num)
  if s.model == 'hvi_avo':
    z = model.apply(params, z, context, key_chain, method='refine').zs[-1]
  return z[:, 0, 0]
