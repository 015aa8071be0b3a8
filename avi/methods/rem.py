"""Reweighted EM (Dieng & Paisley 2019) and reweighted wake-sleep (Bornschein & Bengio 2015).

Notation of the paper: r_eta(z | x) is the recognition network (our encoder),
p_theta(x, z) the model (decoder and prior). One step, for K particles:

  z_k ~ r_eta(z | x),  alpha = normalize(p(x, z_k) / r(z_k | x))          (eq. 9)
  s = N(mu, Sigma), (mu, Sigma) = moment_match(z, alpha, eps)              (eqs. 22-23)
  z'_k ~ s,            beta  = normalize(p(x, z'_k) / s(z'_k))            (eq. 14)

- model (theta):   REM v1 and RWS: -sum_k alpha_k log p(x, z_k)   (the IWAE update, eq. 9)
                   REM v2:         -sum_k beta_k log p(x, z'_k)   (eq. 24)
- recognition (eta): REM: -sum_k beta_k log r_eta(z'_k | x)       (inclusive KL, eq. 14)
                   RWS (wake-phi): -sum_k alpha_k log r_eta(z_k | x), the same loss with
                   r_eta itself as the proposal: the hyperproposal is the whole difference.

Weights, particles and the hyperproposal are computed with theta_t and eta_t held
fixed (`stop_gradient`). K must be well above the latent dimension: with K <= D the
weighted covariance has rank < D, s shrinks to eps I in the missing directions, the
inclusive-KL update shrinks r with it and the bound falls (seen with K = 3, D = 50).
Config fields: `k` (K >= 2 for REM), `rem.eps`,
`rem.covariance` ('weighted', eq. 22, or 'unweighted', as in the authors' code).
"""
import warnings

import jax
import jax.numpy as jnp

from avi import distributions as dist
from avi.methods import check_num_samples
from avi.methods import refuse_transitions
from avi.methods import register
from avi.methods import route
from avi.methods import Terms
from avi.models import GENERATIVE
from avi.models import INFERENCE

sg = jax.lax.stop_gradient


def _rem_terms(model, params, x, rng, num_particles: int, eps: float, weighted: bool):
  """Particles from r and from s, their log p(x, z) (differentiable in theta) and weights.

  Returns `[K, B]` arrays (log p(x, z_k), alpha, log p(x, z'_k), beta), the
  particles z' `[K, B, D]`, the log-weights log p(x, z_k) - log r(z_k | x) and the
  `[B]` Cholesky failures.
  """
  key_r, key_s = jax.random.split(rng)
  mean, scale, _ = sg(model.encode(params, x))
  z = sg(dist.diag_gaussian_sample(key_r, mean, scale, num_particles))
  log_joint_r = model.log_joint(params, x, z)
  log_w = sg(log_joint_r) - dist.diag_gaussian_log_prob(z, mean, scale)
  s_mean, s_cov = dist.moment_match(z, log_w, eps, weighted)
  chol = jnp.linalg.cholesky(s_cov)
  diag = jnp.diagonal(chol, axis1=-2, axis2=-1)
  failed = ~(jnp.all(jnp.isfinite(chol), axis=(-2, -1)) & jnp.all(diag > 0, axis=-1))  # [B]
  z_s = sg(dist.full_gaussian_sample(key_s, s_mean, chol, num_particles))
  log_joint_s = model.log_joint(params, x, z_s)
  log_v = sg(log_joint_s) - dist.full_gaussian_log_prob(z_s, s_mean, chol)
  return (log_joint_r, jax.nn.softmax(log_w, 0), log_joint_s, jax.nn.softmax(log_v, 0), z_s,
          log_w, failed)


_Q0_ONLY = ('its particles, weights and recognition update use q_0(z_0 | x) only, so the '
            'transitions would get no gradient while the evaluator scores q_T through them')


def _log_r(model, params, x, z):
  """log r_eta(z | x) of the Gaussian recognition network, `[K, B]`."""
  mean, scale, _ = model.encode(params, x)
  return dist.diag_gaussian_log_prob(z, mean, scale)


def _make(model, config, version: str):
  refuse_transitions(model, f'rem_{version}', _Q0_ONLY)
  num_particles = check_num_samples(config.k, 'k (K)')
  if num_particles < 2:
    raise ValueError(f'REM needs K >= 2 particles to moment-match a covariance, got K={config.k}')
  latent_dim = getattr(model, 'latent_dim', 0)
  if num_particles <= latent_dim:
    warnings.warn(f'REM with K={num_particles} <= the latent dimension {latent_dim}: the '
                  'moment-matched covariance is rank-deficient and REM collapses (see '
                  'avi.methods.rem)', stacklevel=4)
  eps = float(config.rem.eps)
  if eps <= 0:
    raise ValueError(f'rem.eps must be > 0, got {eps}')
  if config.rem.covariance not in ('weighted', 'unweighted'):
    raise ValueError(f"rem.covariance must be 'weighted' or 'unweighted', "
                     f'got {config.rem.covariance!r}')
  weighted = config.rem.covariance == 'weighted'

  def terms_fn(params, batch, rng, step):
    log_joint_r, alpha, log_joint_s, beta, z_s, log_w, failed = _rem_terms(
        model, params, batch, rng, num_particles, eps, weighted)
    if version == 'v1':
      model_loss = -jnp.sum(alpha * log_joint_r, 0)
    else:
      model_loss = -jnp.sum(beta * log_joint_s, 0)
    recognition_loss = -jnp.sum(beta * _log_r(model, params, batch, z_s), 0)
    # A failed Cholesky (NaN factor) must stop training, not leak into the update.
    nan_if_failed = jnp.where(jnp.any(failed), jnp.nan, 0.0)
    objective = jax.nn.logsumexp(log_w, 0) - jnp.log(num_particles)
    return Terms(objective, {GENERATIVE: model_loss + nan_if_failed,
                             INFERENCE: recognition_loss + nan_if_failed},
                 {f'iwae{num_particles}': jnp.mean(objective),
                  'cholesky_failures': jnp.sum(failed).astype(jnp.float32)})

  return route(model, terms_fn, (GENERATIVE, INFERENCE), f'rem_{version}')


@register('rem_v1')
def make_rem_v1(model, config):
  """Algorithm 1: IWAE/EM update for theta, moment-matched inclusive KL for eta."""
  return _make(model, config, 'v1')


@register('rem_v2')
def make_rem_v2(model, config):
  """Algorithm 2: theta and eta both learn from the hyperproposal's particles."""
  return _make(model, config, 'v2')


@register('rws')
def make_rws(model, config):
  """Reweighted wake-sleep: wake-theta (eq. 9) and wake-phi with r_eta as its own proposal."""
  refuse_transitions(model, 'rws', _Q0_ONLY)
  num_particles = check_num_samples(config.k, 'k (K)')

  def terms_fn(params, batch, rng, step):
    mean, scale, _ = model.encode(params, batch)
    z = sg(dist.diag_gaussian_sample(rng, mean, scale, num_particles))
    log_joint = model.log_joint(params, batch, z)
    log_r = dist.diag_gaussian_log_prob(z, mean, scale)
    log_w = sg(log_joint - log_r)
    alpha = jax.nn.softmax(log_w, 0)
    objective = jax.nn.logsumexp(log_w, 0) - jnp.log(num_particles)
    return Terms(objective, {GENERATIVE: -jnp.sum(alpha * log_joint, 0),
                             INFERENCE: -jnp.sum(alpha * log_r, 0)},
                 {f'iwae{num_particles}': jnp.mean(objective)})

  return route(model, terms_fn, (GENERATIVE, INFERENCE), 'rws')
