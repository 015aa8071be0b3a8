"""The biased noise model of Huang et al. (2018), Sec. 5.1."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avi import noise_model as nm


def test_data_lies_on_the_arc():
  x = nm.sample_data(jax.random.key(0), 4000, noise_std=0.0)
  np.testing.assert_allclose(jnp.linalg.norm(x, axis=-1), 1.0, atol=1e-5)
  # The arc's two ends meet near [0, -1]: cos(pi tanh(0.75 z)) -> -1 as |z| grows.
  assert float(x[:, 1].min()) < -0.9 and float(jnp.abs(x[:, 0]).max()) > 0.99


def test_quadrature_log_px_matches_importance_sampling_from_the_prior():
  settings = nm.Settings(model='vae', steps=1)
  model = nm.NoiseModel(nm.NoiseVAE(settings))
  x = nm.sample_data(jax.random.key(1), 5)
  params = model.module.init(jax.random.key(2), x)
  z = jax.random.normal(jax.random.key(3), (200000, 5, 1))
  is_estimate = jax.nn.logsumexp(model.log_likelihood(params, x, z), 0) - np.log(200000)
  np.testing.assert_allclose(nm.log_px(model, params, x), is_estimate, atol=0.01)
  grid, density = nm.posterior(model, params, x[0])
  np.testing.assert_allclose(float(jnp.sum(density) * (grid[1] - grid[0])), 1.0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize('model', nm.MODELS)
def test_every_model_trains(model):
  settings = nm.Settings(model=model, num_particles=5 if model == 'iwae_prior' else 1,
                         num_transitions=2, steps=300, batch_size=32)
  data = nm.sample_data(jax.random.key(4), 1000)
  fitted, params, losses = nm.fit(settings, data, jax.random.key(5))
  assert np.all(np.isfinite(losses)) and float(losses[-50:].mean()) < float(losses[:50].mean())
  assert nm.proposal_samples(fitted, params, jnp.array([0.0, -1.0]), jax.random.key(6),
                             10).shape == (10,)
  assert nm.sample_x(fitted, params, jax.random.key(7), 10).shape == (10, 2)


@pytest.mark.parametrize('settings, message', [
    (nm.Settings(model='flow'), "unknown model 'flow'"),
    (nm.Settings(num_particles=0), 'num_particles must be >= 1'),
    (nm.Settings(num_transitions=0), 'T must be >= 1'),
    (nm.Settings(avo_a=-0.5), r'avo_a .* must lie in \[0, 1\]'),
])
def test_bad_input(settings, message):
  with pytest.raises(ValueError, match=message):
    nm.check(settings)


@pytest.mark.parametrize('model', nm.MODELS)
def test_each_model_trains_every_declared_group_through_its_registered_method(model):
  settings = nm.Settings(model=model, num_particles=3, num_transitions=2, avo_a=0.5)
  noise = nm.NoiseModel(nm.NoiseVAE(settings))
  x = nm.sample_data(jax.random.key(8), 16)
  params = noise.module.init(jax.random.key(9), x)
  leaves, tree = jax.tree.flatten(params)  # away from the zero-initialized transition outputs
  keys = jax.random.split(jax.random.key(10), len(leaves))
  params = jax.tree.unflatten(tree, [p + 0.1 * jax.random.normal(k, jnp.shape(p))
                                     for p, k in zip(leaves, keys)])
  expected = {'iwae_prior': {'decoder'}, 'vae': {'decoder', 'encoder'},
              'hvi_avo': {'decoder', 'encoder', 'forward', 'backward'}}[model]
  assert set(noise.groups) == expected
  loss_fn = nm.make_loss(settings, noise)
  grad_fn = jax.jit(jax.grad(lambda p, key: loss_fn(p, x, key)[0]))
  grads = [grad_fn(params, jax.random.key(i)) for i in range(4)]  # AVO and ELBO steps
  total = jax.tree.map(lambda *g: sum(np.abs(np.asarray(v)) for v in g), *grads)
  for path, g in jax.tree_util.tree_leaves_with_path(total):
    assert np.all(np.isfinite(g)) and np.any(g > 0), jax.tree_util.keystr(path)
