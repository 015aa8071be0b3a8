import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avi import bounds
from avi import distributions as dist
from avi import evaluation
from avi import models
from avi import networks
from linear_gaussian import LinearGaussian


def _model_and_proposal():
  model = LinearGaussian(seed=3)
  x = model.sample_x(jax.random.key(0), 6)
  mean, _ = model.posterior(x)
  return model, x, mean + 0.3, jnp.full_like(mean, 0.6)


def test_chunked_equals_independent_computation():
  model, x, mean, scale = _model_and_proposal()
  fn = lambda key, xx, n: model.log_weights(key, xx, n, mean, scale)
  key = jax.random.key(1)
  out = evaluation.chunked_estimates(fn, x, key, num_samples=250, chunk_size=100, iwae_ks=(5, 20))
  parts = [fn(jax.random.fold_in(key, i), x, 100) for i in range(2)] + [
      fn(jax.random.fold_in(key, 2), x, 50)]
  log_w = jnp.concatenate(parts)
  np.testing.assert_allclose(out['log_px'], bounds.iwae(log_w), rtol=1e-5)
  np.testing.assert_allclose(out['elbo'], bounds.elbo(log_w), rtol=1e-5)
  np.testing.assert_allclose(out['iwae5'], bounds.grouped_iwae(log_w[:200], 5), rtol=1e-5)
  with pytest.raises(ValueError, match='divide'):
    evaluation.chunked_estimates(fn, x, key, num_samples=250, chunk_size=100, iwae_ks=(3,))


def test_dataset_estimate_matches_log_px_and_ordering():
  model, x, mean, scale = _model_and_proposal()
  data = np.asarray(model.sample_x(jax.random.key(7), 13))
  post_mean, post_cov = model.posterior(data)
  scale = 1.5 * jnp.sqrt(jnp.diag(post_cov))  # overdispersed: low-variance weights

  def fn(key, xx, n):  # proposal depends on x through the posterior mean
    m, _ = model.posterior(xx)
    return model.log_weights(key, xx, n, m + 0.3, jnp.broadcast_to(scale, m.shape))

  out = evaluation.evaluate_dataset(fn, data, jax.random.key(2), num_samples=5000,
                                    batch_size=5, chunk_size=500, iwae_ks=(1, 10))
  assert out['log_px'].shape == (13,)  # padded last batch dropped
  # Per-point Monte Carlo std is ~0.02 nats here (measured over seeds): 4 sigma per point,
  # and the mean error over the 13 points within 3 sigma of its own spread.
  error = out['log_px'] - model.log_px(data)
  assert np.all(np.abs(error) < 0.08), error
  assert abs(error.mean()) < 0.02, error
  expected_elbo = model.expected_elbo(data, post_mean + 0.3,
                                      jnp.broadcast_to(scale, post_mean.shape))
  # log-weights have std ~12 under this overdispersed proposal: ELBO stderr ~0.17 per point.
  np.testing.assert_allclose(out['elbo'], expected_elbo, atol=0.8)
  assert abs(np.mean(out['elbo'] - expected_elbo)) < 0.2
  np.testing.assert_allclose(out['iwae1'], out['elbo'], rtol=1e-5)
  assert np.all(out['elbo'] < out['iwae10']) and np.all(out['iwae10'] < out['log_px'] + 0.01)
  np.testing.assert_allclose(out['inference_gap'], out['log_px'] - out['elbo'])


def test_mean_and_stderr_counts_nonfinite():
  s = evaluation.mean_and_stderr(np.array([1.0, 3.0, np.nan]))
  assert s['num_nonfinite'] == 1 and math.isnan(s['mean'])
  s = evaluation.mean_and_stderr(np.array([1.0, 3.0]))
  assert s['mean'] == 2.0 and np.isclose(s['stderr'], np.std([1.0, 3.0], ddof=1) / np.sqrt(2))


def test_encoder_statistics_active_units_and_kl():
  data = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)

  def encode(x):  # unit 0 follows the data (var 1), unit 1 barely (var 0.0025), unit 2 constant
    mean = jnp.stack([x[:, 0], 0.05 * x[:, 1], jnp.zeros(len(x))], -1)
    return mean, jnp.ones_like(mean)

  s = evaluation.encoder_statistics(encode, data, batch_size=128)
  assert s['active_units'] == 1 and s['latent_dim'] == 3
  expected_kl = 0.5 * np.mean(data[:, 0]**2 + (0.05 * data[:, 1])**2)
  np.testing.assert_allclose(s['kl_to_prior'], expected_kl, rtol=1e-4)


def test_evaluate_model_report():
  x = (np.random.default_rng(0).random((30, 16)) < 0.4).astype(np.float32)
  model, params = models.init_vae(jax.random.key(0), networks.Architecture((8,), 3), x)
  report = evaluation.evaluate_model(model, params, x, jax.random.key(1), num_samples=200,
                                   batch_size=8, chunk_size=50, iwae_ks=(5,))
  s = report['summary']
  assert s['log_px']['num'] == 30 and s['latent_dim'] == 3
  assert s['elbo']['mean'] < s['iwae5']['mean'] < s['log_px']['mean']
  assert s['inference_gap']['mean'] > 0


def test_evaluate_model_compiles_once_for_new_params_and_splits():
  """Params are an argument of the compiled evaluator, not constants baked into it: a new
  checkpoint or another split of the same shape reuses the program, and its estimates are
  those of `evaluate_dataset` with the params closed over."""
  x = (np.random.default_rng(0).random((30, 16)) < 0.4).astype(np.float32)
  model, params = models.init_vae(jax.random.key(0), networks.Architecture((8,), 3), x)
  other = jax.tree.map(lambda p: p + 0.1, params)
  settings = {'num_samples': 40, 'batch_size': 8, 'chunk_size': 20}
  evaluation.evaluate_model(model, params, x, jax.random.key(1), **settings)
  compiled = evaluation._model_estimates._cache_size()
  report = evaluation.evaluate_model(model, other, x[:12], jax.random.key(2), **settings)
  assert evaluation._model_estimates._cache_size() == compiled
  expected = evaluation.evaluate_dataset(
      lambda k, xx, n: model.log_weights(other, xx, k, n)[0], x[:12], jax.random.key(2),
      **settings)
  for name in ('log_px', 'elbo', 'inference_gap'):
    np.testing.assert_allclose(report['per_example'][name], expected[name], rtol=1e-5)
  moments = model.encode(other, jnp.asarray(x[:12]))[:2]
  assert report['summary']['kl_to_prior'] == pytest.approx(float(jnp.mean(
      dist.diag_gaussian_kl_to_standard(*moments))), rel=1e-5)


def test_evaluator_memory_does_not_grow_with_k():
  """The compiled evaluator holds one `[chunk, B]` chunk whatever K (online log-sum-exp)."""
  x = jnp.zeros((8, 5))

  def log_weights_fn(key, xx, n):
    return jax.random.normal(key, (n, xx.shape[0])) + xx.sum(-1)

  def temp_bytes(num_samples):
    fn = jax.jit(lambda key: evaluation.chunked_estimates(log_weights_fn, x, key, num_samples,
                                                          500, iwae_ks=(10,)))
    return fn.lower(jax.random.key(0)).compile().memory_analysis().temp_size_in_bytes

  small, large = temp_bytes(1_000), temp_bytes(100_000)
  # The same up to the scan's bookkeeping, and far below one float32 [K, B] array at K = 10^5.
  assert abs(large - small) < 0.02 * small and large < 100_000 * 8 * 4 / 10
