import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import avi
from avi import config as config_lib
from avi import distributions as dist
from avi import methods
from avi import models
from avi import networks


def test_moment_match_matches_direct_computation():
  rng = np.random.default_rng(0)
  z, log_w = rng.normal(size=(7, 3, 4)), rng.normal(size=(7, 3))
  mean, cov = avi.moment_match(jnp.asarray(z), jnp.asarray(log_w), 0.1)
  assert mean.shape == (3, 4) and cov.shape == (3, 4, 4)
  for b in range(3):
    a = np.exp(log_w[:, b] - log_w[:, b].max())
    a /= a.sum()
    m = (a[:, None] * z[:, b]).sum(0)
    c = sum(a[k] * np.outer(z[k, b] - m, z[k, b] - m) for k in range(7)) + 0.1 * np.eye(4)
    np.testing.assert_allclose(mean[b], m, rtol=1e-5)
    np.testing.assert_allclose(cov[b], c, rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match='eps > 0'):
    avi.moment_match(jnp.asarray(z), jnp.asarray(log_w), 0.0)
  # The authors' code: unweighted covariance about the weighted mean.
  _, cov_u = avi.moment_match(jnp.asarray(z), jnp.asarray(log_w), 0.1, weighted_covariance=False)
  a = np.exp(log_w[:, 0] - log_w[:, 0].max())
  m = (a[:, None] * z[:, 0]).sum(0) / a.sum()
  np.testing.assert_allclose(cov_u[0], (z[:, 0] - m).T @ (z[:, 0] - m) / 7 + 0.1 * np.eye(4),
                             rtol=1e-4, atol=1e-6)


def test_moment_match_recovers_true_moments():
  true_mean = jnp.array([1.0, -2.0])
  true_cov = jnp.array([[1.0, 0.6], [0.6, 0.5]])
  chol = jnp.linalg.cholesky(true_cov)[None]
  # Exact samples with equal weights ...
  z = dist.full_gaussian_sample(jax.random.key(0), true_mean[None], chol, 200_000)
  mean, cov = avi.moment_match(z, jnp.zeros(z.shape[:2]), 1e-6)
  np.testing.assert_allclose(mean[0], true_mean, atol=0.01)
  np.testing.assert_allclose(cov[0], true_cov, atol=0.01)
  # ... and importance samples from a wide proposal, weighted by target / proposal.
  z = 3.0 * jax.random.normal(jax.random.key(1), (400_000, 1, 2))
  log_w = (dist.full_gaussian_log_prob(z, true_mean[None], chol)
           - dist.diag_gaussian_log_prob(z, jnp.zeros(2), 3.0 * jnp.ones(2)))
  mean, cov = avi.moment_match(z, log_w, 1e-6)
  np.testing.assert_allclose(mean[0], true_mean, atol=0.03)
  np.testing.assert_allclose(cov[0], true_cov, atol=0.03)


def test_full_gaussian_log_prob_matches_scipy():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(2, 3, 3))
  cov = a @ np.transpose(a, (0, 2, 1)) + np.eye(3)
  mean, z = rng.normal(size=(2, 3)), rng.normal(size=(5, 2, 3))
  out = dist.full_gaussian_log_prob(jnp.asarray(z), jnp.asarray(mean),
                                    jnp.linalg.cholesky(jnp.asarray(cov)))
  for b in range(2):
    np.testing.assert_allclose(out[:, b], stats.multivariate_normal.logpdf(z[:, b], mean[b],
                                                                          cov[b]), rtol=1e-4)


def _setup(k=6, eps=1e-3):
  rng = np.random.default_rng(0)
  x = (rng.random((8, 20)) < 0.3).astype(np.float32)
  model, params = models.init_vae(jax.random.key(0), networks.Architecture((10,), 3), x)
  return model, params, jnp.asarray(x), config_lib.from_dict(
      {'k': k, 'num_samples': 1, 'rem': {'eps': eps, 'covariance': 'weighted'}})


def _grad(name, model, params, x, config, key):
  return jax.grad(lambda p: methods.build(name, model, config)(p, x, key)[0])(params)


def test_bad_configs_refused():
  model, _, _, config = _setup(k=1)
  for name in ('rem_v1', 'rem_v2'):
    with pytest.raises(ValueError, match='K >= 2'):
      methods.build(name, model, config)
  model, _, _, config = _setup(eps=0.0)
  with pytest.raises(ValueError, match='rem.eps must be > 0'):
    methods.build('rem_v1', model, config)
  model, _, _, config = _setup()
  config.rem.covariance = 'full'
  with pytest.raises(ValueError, match='rem.covariance must be'):
    methods.build('rem_v1', model, config)


def test_rem_v1_and_rws_model_update_is_the_iwae_update():
  model, params, x, config = _setup()
  key = jax.random.key(3)
  iwae = _grad('iwae', model, params, x, config, jax.random.split(key)[0])
  rem = _grad('rem_v1', model, params, x, config, key)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               rem['params']['decoder'], iwae['params']['decoder'])
  rws = _grad('rws', model, params, x, config, jax.random.split(key)[0])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               rws['params']['decoder'], iwae['params']['decoder'])


@pytest.mark.parametrize('covariance', ['weighted', 'unweighted'])
def test_rem_recognition_update_against_direct_computation(covariance):
  model, params, x, config = _setup()
  config.rem.covariance = covariance
  key = jax.random.key(4)
  key_r, key_s = jax.random.split(key)
  log_w, z = model.log_weights(params, x, key_r, 6)
  # eqs. 22-23 written out: weighted mean; weighted (paper) or 1/K (authors' code) covariance.
  alpha = jax.nn.softmax(log_w, 0)
  mean_s = jnp.einsum('kb,kbd->bd', alpha, z)
  cov_weights = alpha if covariance == 'weighted' else jnp.full_like(alpha, 1 / 6)
  cov_s = (jnp.einsum('kb,kbi,kbj->bij', cov_weights, z - mean_s, z - mean_s)
           + 1e-3 * jnp.eye(3))
  chol = jnp.linalg.cholesky(cov_s)
  z_s = dist.full_gaussian_sample(key_s, mean_s, chol, 6)
  logits = model.logits(params, z_s)
  log_v = (dist.bernoulli_log_prob(x, logits) + dist.standard_normal_log_prob(z_s)
           - dist.full_gaussian_log_prob(z_s, mean_s, chol))
  beta = jax.nn.softmax(log_v, 0)

  def recognition_loss(p):
    m, s = model.encode(p, x)[:2]
    return jnp.mean(-jnp.sum(beta * dist.diag_gaussian_log_prob(z_s, m, s), 0))

  expected = jax.grad(recognition_loss)(params)['params']['encoder']
  for name in ('rem_v1', 'rem_v2'):
    got = _grad(name, model, params, x, config, key)['params']['encoder']
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5), got,
                 expected)
  # v2's model update uses the hyperproposal's particles and weights (eq. 24).
  def model_loss(p):
    lg = model.logits(p, z_s)
    return jnp.mean(-jnp.sum(beta * dist.bernoulli_log_prob(x, lg), 0))
  v2 = _grad('rem_v2', model, params, x, config, key)['params']['decoder']
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5), v2,
               jax.grad(model_loss)(params)['params']['decoder'])


def test_failed_cholesky_is_reported_not_propagated():
  model, params, x, config = _setup(k=2, eps=1e-30)  # rank-1 covariance, eps lost in float32
  loss, metrics = methods.build('rem_v1', model, config)(params, x, jax.random.key(5))
  assert np.isnan(loss) and metrics['cholesky_failures'] > 0


def test_rem_warns_when_k_does_not_exceed_the_latent_dimension():
  model, _, _, config = _setup(k=3)  # latent dimension 3: the covariance has rank <= 2
  for name in ('rem_v1', 'rem_v2'):
    with pytest.warns(UserWarning, match=r'REM with K=3 <= the latent dimension 3'):
      methods.build(name, model, config)
  model, _, _, config = _setup(k=4)
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    methods.build('rem_v1', model, config)
