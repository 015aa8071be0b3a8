import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avi import bounds
from avi import estimators
from avi import gaussian_model as gm
from avi import gradients


def test_objective_special_cases():
  log_w = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 5)))
  np.testing.assert_allclose(estimators.miwae(log_w[:1])[0], bounds.iwae(log_w[0]), rtol=1e-6)
  np.testing.assert_allclose(estimators.miwae(log_w[:, :1])[1], bounds.elbo(log_w[:, 0]),
                             rtol=1e-6)
  model, inference = estimators.piwae(log_w)
  np.testing.assert_allclose(model, bounds.iwae(log_w.reshape(12, 5)), rtol=1e-6)
  np.testing.assert_allclose(inference, bounds.miwae(log_w), rtol=1e-6)
  c = estimators.ciwae(log_w[0], 0.25)[0]
  np.testing.assert_allclose(c, 0.25 * bounds.elbo(log_w[0]) + 0.75 * bounds.iwae(log_w[0]),
                             rtol=1e-6)
  np.testing.assert_allclose(estimators.ciwae(log_w[0], 1.0)[0], bounds.elbo(log_w[0]), rtol=1e-6)
  with pytest.raises(ValueError, match='beta'):
    estimators.ciwae(log_w[0], 1.5)


def _phi_grad(surrogate, problem, k):
  def fn(params, key):
    if surrogate is None:
      return jax.grad(lambda p: jnp.mean(bounds.iwae(gm.log_weights(p, problem.x, key, k))))(
          params)
    return jax.grad(lambda p: jnp.mean(surrogate(
        gm.log_weights(p, problem.x, key, k, stop_q_grad=True))))(params)
  return fn


def test_dreg_is_unbiased_for_the_iwae_inference_gradient():
  problem = gm.make_problem(jax.random.key(0), dim=2, num_data=8, offset_std=0.5)
  draws = {name: gradients.sample(_phi_grad(s, problem, 8), problem.params, jax.random.key(i),
                                  20_000, 2000)
           for i, (name, s) in enumerate((('iwae', None), ('dreg', estimators.dreg_inference)))}
  for leaf in ('A', 'b'):
    mean_i, mean_d = draws['iwae'][leaf].mean(0), draws['dreg'][leaf].mean(0)
    stderr = jnp.sqrt(draws['iwae'][leaf].var(0) / 20_000 + draws['dreg'][leaf].var(0) / 20_000)
    assert np.all(np.abs(mean_i - mean_d) < 4 * stderr + 1e-6), (leaf, mean_i, mean_d)
    # ... and less noisy, as Tucker et al. report.
    assert np.all(draws['dreg'][leaf].std(0) < draws['iwae'][leaf].std(0))


def test_stl_and_dreg_vanish_at_the_exact_posterior():
  p = gm.make_problem(jax.random.key(1), dim=2, num_data=4, offset_std=0.0, proposal_var=0.5)
  for surrogate in (estimators.stl_inference, estimators.dreg_inference):
    grads = jax.grad(lambda q: jnp.mean(surrogate(
        gm.log_weights(q, p.x, jax.random.key(2), 5, proposal_var=0.5, stop_q_grad=True))))(
            p.params)
    np.testing.assert_allclose(grads['A'], 0.0, atol=1e-4)
    np.testing.assert_allclose(grads['b'], 0.0, atol=1e-4)
