import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avi import bounds
from avi import gaussian_model as gm


@pytest.fixture(scope='module')
def problem():
  return gm.make_problem(jax.random.key(0), dim=3, num_data=16, offset_std=0.5)


def test_problem_shapes_and_offset():
  p = gm.make_problem(jax.random.key(1), dim=4, num_data=32, offset_std=0.0)
  chex.assert_shape(p.x, (32, 4))
  chex.assert_trees_all_close(p.params, gm.optimum(p.x))
  for kwargs, message in (({'dim': 0}, 'dim'), ({'num_data': 0}, 'num_data'),
                          ({'offset_std': -1.0}, 'offset_std'), ({'proposal_var': 0.0}, 'var')):
    with pytest.raises(ValueError, match=message):
      gm.make_problem(jax.random.key(0), **kwargs)


def test_log_px_and_its_gradient():
  # p(x) = N(mu, 2I): compare with a large-K importance-sampling estimate and jax.grad, near
  # the optimum where q is close to the posterior and the estimate converges.
  problem = gm.make_problem(jax.random.key(7), dim=3, num_data=16, offset_std=0.01)
  log_w = gm.log_weights(problem.params, problem.x, jax.random.key(2), 200_000)
  np.testing.assert_allclose(bounds.iwae(log_w), gm.log_px(problem.params, problem.x), atol=0.06)
  auto = jax.grad(lambda mu: jnp.mean(gm.log_px({**problem.params, 'mu': mu}, problem.x)))(
      problem.params['mu'])
  np.testing.assert_allclose(gm.grad_mu_log_px(problem.params, problem.x), auto, rtol=1e-5)


def test_expected_elbo_closed_form(problem):
  log_w = gm.log_weights(problem.params, problem.x, jax.random.key(3), 200_000)
  np.testing.assert_allclose(bounds.elbo(log_w), gm.expected_elbo(problem.params, problem.x),
                             atol=0.06)  # ~4 MC standard errors


def test_exact_posterior_weights_are_constant():
  p = gm.make_problem(jax.random.key(4), dim=2, num_data=5, offset_std=0.0, proposal_var=0.5)
  log_w = gm.log_weights(p.params, p.x, jax.random.key(5), 9, proposal_var=0.5)
  np.testing.assert_allclose(log_w, jnp.broadcast_to(gm.log_px(p.params, p.x), log_w.shape),
                             atol=1e-4)


def test_optimum_is_stationary_for_the_elbo():
  p = gm.make_problem(jax.random.key(6), dim=3, num_data=64, offset_std=0.0)
  grads = jax.grad(lambda q: jnp.mean(gm.expected_elbo(q, p.x)))(p.params)
  chex.assert_trees_all_close(grads, jax.tree.map(jnp.zeros_like, grads), atol=1e-5)
