import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from avi import distributions as dist


def test_diag_gaussian_log_prob_matches_scipy():
  rng = np.random.default_rng(0)
  z, mean, scale = rng.normal(size=(4, 3, 5)), rng.normal(size=(3, 5)), rng.uniform(.2, 2, (3, 5))
  expected = stats.norm.logpdf(z, mean, scale).sum(-1)
  np.testing.assert_allclose(dist.diag_gaussian_log_prob(z, mean, scale), expected, rtol=1e-5)
  np.testing.assert_allclose(dist.standard_normal_log_prob(z),
                             stats.norm.logpdf(z).sum(-1), rtol=1e-5)


def test_sample_shape_moments_and_reparameterization():
  mean, scale = jnp.array([[1.0, -2.0]]), jnp.array([[0.5, 3.0]])
  z = dist.diag_gaussian_sample(jax.random.key(0), mean, scale, 100_000)
  assert z.shape == (100_000, 1, 2)
  np.testing.assert_allclose(z.mean(0), mean, atol=0.03)
  np.testing.assert_allclose(z.std(0), scale, rtol=0.01)
  grad = jax.grad(lambda m: dist.diag_gaussian_sample(jax.random.key(0), m, scale, 3).sum())(mean)
  np.testing.assert_allclose(grad, 3.0)


def test_bernoulli_log_prob_matches_direct_and_is_stable():
  logits = jnp.array([[-3.0, 0.0, 2.0, 40.0, -40.0]])
  x = jnp.array([[0.0, 1.0, 1.0, 0.0, 0.0]])
  l64 = np.asarray(logits, np.float64)
  expected = np.sum(np.where(x == 1, -np.logaddexp(0, -l64), -np.logaddexp(0, l64)))
  np.testing.assert_allclose(dist.bernoulli_log_prob(x, logits), [expected], rtol=1e-6)
  grad = jax.grad(lambda l: dist.bernoulli_log_prob(x, l).sum())(logits)
  np.testing.assert_allclose(grad, x - jax.nn.sigmoid(logits), atol=1e-6)
  assert np.all(np.isfinite(dist.bernoulli_log_prob(x, logits * 100)))


def test_kl_to_standard_matches_monte_carlo():
  mean, scale = jnp.array([0.3, -1.0]), jnp.array([0.5, 1.7])
  z = dist.diag_gaussian_sample(jax.random.key(1), mean, scale, 400_000)
  mc = jnp.mean(dist.diag_gaussian_log_prob(z, mean, scale) - dist.standard_normal_log_prob(z))
  np.testing.assert_allclose(dist.diag_gaussian_kl_to_standard(mean, scale), mc, atol=0.01)


def test_bernoulli_sample_mean():
  x = dist.bernoulli_sample(jax.random.key(0), jnp.full((50_000,), 0.3))
  assert set(np.unique(x)) <= {0.0, 1.0}
  np.testing.assert_allclose(x.mean(), 0.3, atol=0.01)
