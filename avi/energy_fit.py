"""Fitting HVI to a toy energy with the ELBO or AVO (Huang et al. 2018, Sec. 5.2-5.3).

q_0 = f_0 = N(0, I); T refinement transitions (`avi.hvi`); Adam on the batch
mean of the chosen objective, beta-annealed. `fit` is a pure function of its key
and annealing fraction, so seeds and schedules vmap into one compiled sweep.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from avi import avo
from avi import distributions as dist
from avi import energies
from avi import evaluation
from avi import fitting
from avi import hvi

OBJECTIVES = ('elbo', 'avo')


class Settings(NamedTuple):
  energy: str = 'd'
  objective: str = 'avo'
  num_transitions: int = 10
  steps: int = 2000
  batch_size: int = 64
  learning_rate: float = 1e-3
  hidden: int = 64


def check(settings: Settings, anneal_fraction: float = 0.0) -> None:
  energies.check_name(settings.energy)
  if settings.objective not in OBJECTIVES:
    raise ValueError(f'unknown objective {settings.objective!r}; use elbo or avo')
  hvi.check_num_transitions(settings.num_transitions)
  for name in ('steps', 'batch_size', 'hidden'):
    if getattr(settings, name) < 1:
      raise ValueError(f'{name} must be >= 1, got {getattr(settings, name)}')
  if settings.learning_rate <= 0:
    raise ValueError(f'learning_rate must be > 0, got {settings.learning_rate}')
  avo.check_fraction(anneal_fraction, 'the beta-annealing fraction')


def operator(settings: Settings) -> hvi.Refinement:
  # q_0 = N(0, I): the 'stationary' start keeps q_t ~ N(0, I) with forward and backward
  # transitions each other's reverse, spread over the prior as in Figures 3-4.
  return hvi.Refinement(settings.hidden, 'relu', 'stationary', 0.5)


def loss_fn(settings: Settings, params: dict, key: jax.Array, beta) -> jax.Array:
  """Minus the batch mean of the objective (for AVO: the sum over transitions)."""
  log_f = functools.partial(energies.log_density, settings.energy)
  key_0, key_chain = jax.random.split(key)
  z0 = jax.random.normal(key_0, (settings.batch_size, 1, 2))  # [K, B = 1, 2]
  log_q0 = dist.standard_normal_log_prob(z0)
  chain = hvi.sample_chain(operator(settings), params, z0, key_chain,
                           cut_gradients=settings.objective == 'avo')
  if settings.objective == 'avo':
    terms = avo.avo_objectives(chain, log_q0, dist.standard_normal_log_prob, log_f, beta)
    return -jnp.mean(jnp.sum(terms, axis=0))
  return -jnp.mean(avo.hvi_elbo(chain, log_q0, log_f(chain.zs[-1]), beta))


def init(settings: Settings, key: jax.Array) -> dict:
  return hvi.init_transitions(key, operator(settings), settings.num_transitions,
                              jnp.zeros((1, 1, 2)))


def fit(settings: Settings, key: jax.Array, anneal_fraction=0.0) -> tuple[dict, jax.Array]:
  """Trains from key; returns the transition params and the loss per step `[steps]`."""
  key_init, key_train = jax.random.split(key)
  beta_fn = avo.beta_schedule(anneal_fraction, settings.steps)
  return fitting.fit_adam(
      lambda params, t: loss_fn(settings, params, jax.random.fold_in(key_train, t), beta_fn(t)),
      init(settings, key_init), settings.steps, settings.learning_rate)


def sample(settings: Settings, params: dict, key: jax.Array, num: int) -> jax.Array:
  """z_0..z_T of `num` chains, `[T + 1, num, 2]`."""
  key_0, key_chain = jax.random.split(key)
  z0 = jax.random.normal(key_0, (1, num, 2))
  return hvi.sample_chain(operator(settings), params, z0, key_chain).zs[:, 0]


def kl_estimate(settings: Settings, params: dict, z_T: jax.Array, key: jax.Array,
                num_inner: int = 2000, chunk_size: int = 500) -> dict[str, float]:
  """KL(q_T || f_T / Z) = E_q[log q_T(z_T) - log f_T(z_T)] + log Z (Appendix C) over
  samples z_T `[N, 2]`; log q_T by importance sampling with `num_inner` backward
  chains each, so the estimate is biased low (tight as num_inner grows).

  Returns the absolute `kl` with its standard error and the log normalizer used.
  """
  log_q = evaluation.hvi_log_marginal(operator(settings), params, z_T, key, num_inner,
                                        chunk_size=chunk_size)
  values = np.asarray(log_q - energies.log_density(settings.energy, z_T))
  log_z = energies.log_normalizer(settings.energy)
  summary = evaluation.mean_and_stderr(values + log_z)
  return {'kl': summary['mean'], 'kl_stderr': summary['stderr'], 'log_normalizer': log_z,
          'num_samples': int(len(values)), 'num_inner': num_inner}


def mode_coverage(samples: np.ndarray, radius: float = 1.0) -> np.ndarray:
  """Fraction of samples `[N, 2]` within `radius` of each mixture mean of energy (d); `[4]`."""
  means = np.asarray(energies.MIXTURE_MEANS)
  dist_to = np.linalg.norm(np.asarray(samples)[:, None, :] - means, axis=-1)
  return (dist_to < radius).mean(0)
