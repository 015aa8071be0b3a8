import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from avi import bounds
from linear_gaussian import LinearGaussian


class ReductionsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_log_mean_exp_matches_scipy(self):
    x = np.random.default_rng(0).normal(size=(7, 5)) * 50
    out = self.variant(bounds.log_mean_exp, static_argnums=1)(jnp.asarray(x), 0)
    chex.assert_shape(out, (5,))
    np.testing.assert_allclose(out, special.logsumexp(x, axis=0) - np.log(7), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_log_mean_exp_with_neg_inf(self):
    x = jnp.array([[-jnp.inf, -jnp.inf], [0.0, -jnp.inf], [np.log(3.0), -jnp.inf]])
    out = self.variant(bounds.log_mean_exp)(x)
    np.testing.assert_allclose(out[0], np.log(4.0 / 3.0), rtol=1e-6)
    assert out[1] == -jnp.inf and not jnp.isnan(out[1])

  def test_log_mean_exp_gradient_finite_with_neg_inf(self):
    g = jax.grad(lambda x: bounds.log_mean_exp(x))(jnp.array([-jnp.inf, 0.0, 1.0]))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, jax.nn.softmax(jnp.array([-jnp.inf, 0.0, 1.0])), rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_normalized_weights_and_ess(self):
    log_w = jnp.asarray(np.random.default_rng(1).normal(size=(6, 4)))
    w = self.variant(bounds.normalized_weights)(log_w)
    np.testing.assert_allclose(w.sum(0), 1.0, rtol=1e-6)
    ess = self.variant(bounds.effective_sample_size)(log_w)
    w_np = np.exp(np.asarray(log_w))
    np.testing.assert_allclose(ess, w_np.sum(0)**2 / (w_np**2).sum(0), rtol=1e-5)
    np.testing.assert_allclose(bounds.effective_sample_size(jnp.zeros((6, 2))), 6.0, rtol=1e-6)
    one_hot = jnp.array([[0.0], [-1e4], [-1e4]])
    np.testing.assert_allclose(bounds.effective_sample_size(one_hot), 1.0, rtol=1e-6)
    # Far from 0 in float32: large negative log-weights, and five equal weights of 1e150.
    far = jnp.asarray(np.random.default_rng(2).normal(size=(6, 4)), jnp.float32) - 1e6
    w64 = np.exp(np.asarray(far, np.float64) - np.asarray(far, np.float64).max(0))
    np.testing.assert_allclose(bounds.effective_sample_size(far),
                               w64.sum(0)**2 / (w64**2).sum(0), rtol=1e-5)
    equal = jnp.full((5, 1), 150 * np.log(10), jnp.float32)
    np.testing.assert_allclose(bounds.effective_sample_size(equal), 5.0, rtol=1e-6)

  def test_elbo_iwae_of_constant_weights(self):
    log_w = jnp.full((9, 3), -2.5)
    np.testing.assert_allclose(bounds.elbo(log_w), -2.5)
    np.testing.assert_allclose(bounds.iwae(log_w), -2.5, rtol=1e-6)

  def test_jensen_per_draw(self):
    log_w = jnp.asarray(np.random.default_rng(2).normal(size=(20, 10)) * 3)
    assert np.all(bounds.elbo(log_w) <= bounds.iwae(log_w) + 1e-6)

  def test_miwae_special_cases(self):
    log_w = jnp.asarray(np.random.default_rng(3).normal(size=(4, 6, 5)))
    np.testing.assert_allclose(bounds.miwae(log_w[:1]), bounds.iwae(log_w[0]), rtol=1e-6)
    np.testing.assert_allclose(bounds.miwae(log_w[:, :1]), bounds.elbo(log_w[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(
        bounds.grouped_iwae(log_w.reshape(24, 5), 6), bounds.miwae(log_w), rtol=1e-6)
    with pytest.raises(ValueError, match='not divisible'):
      bounds.grouped_iwae(log_w.reshape(24, 5), 5)


def test_iwae_gradient_is_normalized_weight_form():
  """grad L_K = sum_k w~_k grad log w_k, with w~ held fixed (weights differentiated once)."""
  rng = np.random.default_rng(0)
  eps = jnp.asarray(rng.normal(size=(8, 3, 2)))
  x = jnp.asarray(rng.normal(size=(3, 2)))

  def log_w(theta):  # [K, B], a smooth reparameterized log-weight
    z = theta['m'] + jnp.exp(theta['s']) * eps
    return (-0.5 * jnp.sum((x - z * theta['a'])**2, -1) - 0.5 * jnp.sum(z**2, -1)
            + jnp.sum(theta['s']) + 0.5 * jnp.sum(eps**2, -1))

  theta = {'m': jnp.array([0.3, -0.2]), 's': jnp.array([-0.5, 0.1]), 'a': jnp.array(1.3)}
  grad_iwae = jax.grad(lambda t: jnp.sum(bounds.iwae(log_w(t))))(theta)
  w = jax.lax.stop_gradient(bounds.normalized_weights(log_w(theta)))
  grad_form = jax.grad(lambda t: jnp.sum(w * log_w(t)))(theta)
  chex.assert_trees_all_close(grad_iwae, grad_form, rtol=1e-5)
  # A double-differentiated weight would add a second term; make sure it differs.
  wrong = jax.grad(lambda t: jnp.sum(bounds.normalized_weights(log_w(t)) * log_w(t)))(theta)
  assert not np.allclose(wrong['m'], grad_iwae['m'], rtol=1e-3)


class LinearGaussianBoundsTest(chex.TestCase):
  """ELBO <= E[L_k] <= E[L_2k] <= log p(x), against the closed forms."""

  def setUp(self):
    super().setUp()
    self.model = LinearGaussian(seed=0)
    self.x = self.model.sample_x(jax.random.key(0), 4)
    post_mean, _ = self.model.posterior(self.x)
    # A deliberately poor diagonal proposal: shifted mean, too narrow.
    self.mean = post_mean + 0.5
    self.scale = jnp.full_like(post_mean, 0.4)

  def _bounds(self, k, reps=4000):
    keys = jax.random.split(jax.random.key(1), reps)
    lw = jax.vmap(lambda key: self.model.log_weights(key, self.x, k, self.mean, self.scale))(keys)
    iw = jax.vmap(bounds.iwae)(lw)
    return iw.mean(0), iw.std(0) / np.sqrt(reps), jax.vmap(bounds.elbo)(lw).mean(0)

  def test_elbo_matches_closed_form(self):
    _, _, elbo_mc = self._bounds(1, reps=20000)
    np.testing.assert_allclose(
        elbo_mc, self.model.expected_elbo(self.x, self.mean, self.scale), atol=0.05)

  def test_bounds_increase_with_k_towards_log_px(self):
    log_px = self.model.log_px(self.x)
    previous = self.model.expected_elbo(self.x, self.mean, self.scale)
    for k in (1, 4, 16, 64):
      mean, stderr, _ = self._bounds(k)
      assert np.all(mean >= previous - 3 * stderr - 1e-3), (k, mean, previous)
      assert np.all(mean <= log_px + 3 * stderr), (k, mean, log_px)
      previous = mean
    big, stderr, _ = self._bounds(20000, reps=8)
    np.testing.assert_allclose(big, log_px, atol=max(0.02, 5 * float(stderr.max())))

  def test_exact_posterior_gives_log_px_for_every_draw(self):
    model = LinearGaussian(seed=1, latent_dim=1, data_dim=1)
    x = model.sample_x(jax.random.key(2), 5)
    mean, cov = model.posterior(x)
    lw = model.log_weights(jax.random.key(3), x, 7, mean, jnp.sqrt(jnp.diag(cov)))
    np.testing.assert_allclose(lw, jnp.broadcast_to(model.log_px(x), lw.shape), atol=1e-4)
