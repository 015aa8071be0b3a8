import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avi import gradients


def test_sample_matches_explicit_keys_and_chunks():
  grad_fn = lambda p, k: {'a': p * jax.random.normal(k, (3,)), 'b': jax.random.uniform(k)}
  draws = gradients.sample(grad_fn, 2.0, jax.random.key(0), num_draws=7, chunk_size=3)
  assert draws['a'].shape == (7, 3) and draws['b'].shape == (7,)
  for r in (0, 4, 6):
    expected = grad_fn(2.0, jax.random.fold_in(jax.random.key(0), r))
    np.testing.assert_allclose(draws['a'][r], expected['a'], rtol=1e-6)
  with pytest.raises(ValueError, match='num_draws'):
    gradients.sample(grad_fn, 2.0, jax.random.key(0), num_draws=0)


def test_snr_of_known_gaussian():
  g = 0.5 + 2.0 * jax.random.normal(jax.random.key(1), (200_000, 2))
  np.testing.assert_allclose(gradients.snr(g), [0.25, 0.25], rtol=0.03)


def test_dsnr_limits():
  # Draws along one direction with tiny orthogonal noise: very large DSNR.
  u = jnp.array([1.0, 0.0, 0.0])
  g = u + 1e-3 * jax.random.normal(jax.random.key(2), (1000, 3))
  assert gradients.dsnr(g)['dsnr'] > 100
  # Isotropic noise around zero: DSNR of a random vector, E|g1| / E||g_perp|| in 3-d.
  noise = jax.random.normal(jax.random.key(3), (100_000, 3))
  rand = gradients.dsnr(noise, direction=u)
  assert rand['q1'] < rand['median'] < rand['q3']
  np.testing.assert_allclose(rand['dsnr'], gradients.random_dsnr(3, jax.random.key(4)), rtol=0.05)
  # E[|N(0,1)| / chi_2] = sqrt(2/pi) * sqrt(pi/2) = 1 in three dimensions.
  np.testing.assert_allclose(rand['dsnr'], 1.0, rtol=0.05)


def test_rmse_and_slope():
  g = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  np.testing.assert_allclose(gradients.rmse({'g': g}, {'g': jnp.zeros(2)})['g'], 1.0)
  budgets = np.array([1, 10, 100, 1000])
  values = np.stack([3.0 * budgets**-0.5, 0.2 * budgets**1.0], -1)
  np.testing.assert_allclose(gradients.loglog_slope(budgets, values), [-0.5, 1.0], rtol=1e-6)
