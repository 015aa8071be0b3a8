import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avi import iw_svi
from avi import models
from linear_gaussian import LinearGaussian


class _Adapter(models.LatentVariableModel):
  """A closed-form joint and a fixed Gaussian proposal behind the model interface (no params)."""

  def __init__(self, log_joint, encode):
    self._log_joint, self._encode = log_joint, encode

  def log_joint(self, params, x, z):
    return self._log_joint(x, z)

  def encode(self, params, x):
    return (*self._encode(x), None)


def _setup():
  model = LinearGaussian(seed=4, latent_dim=2, data_dim=4)
  x = model.sample_x(jax.random.key(0), 12)

  def encode(xx):  # a poor amortized proposal: shifted and too narrow
    mean, _ = model.posterior(xx)
    return mean + 1.0, jnp.full_like(mean, 0.2)

  return model, x, encode


def test_refinement_raises_the_bound_and_converges_to_log_px():
  model, x, encode = _setup()
  mean, scale = encode(x)
  _, _, trace = iw_svi.refine(model.log_joint, x, mean, scale, jax.random.key(1), steps=400,
                              k=10, learning_rate=5e-2)
  assert trace[-20:].mean() > trace[:20].mean() + 1.0
  # Near convergence the IWAE-10 bound is within a few hundredths of log p(x).
  np.testing.assert_allclose(trace[-50:].mean(), model.log_px(x).mean(), atol=0.05)


def test_more_steps_never_lower_the_estimate_on_average():
  model, x, encode = _setup()
  estimates = {}
  for steps in (0, 30, 300):
    out = iw_svi.log_likelihood(_Adapter(model.log_joint, encode), None, np.asarray(x),
                                jax.random.key(2), steps=steps, k=10, learning_rate=5e-2,
                                num_samples=20, batch_size=6, chunk_size=20)
    assert not out['nonfinite'].any()
    estimates[steps] = out['log_px'].mean()
  assert estimates[0] <= estimates[30] + 0.01 <= estimates[300] + 0.02
  np.testing.assert_allclose(estimates[300], model.log_px(x).mean(), atol=0.05)
  np.testing.assert_allclose(out['inference_gap'], out['log_px'] - out['elbo'])
  assert np.all(out['inference_gap'] > 0)


def test_the_amortized_estimate_has_its_own_number_of_particles():
  model, x, encode = _setup()
  run = lambda **kw: iw_svi.log_likelihood(
      _Adapter(model.log_joint, encode), None, np.asarray(x), jax.random.key(2), steps=5, k=4,
      batch_size=6, chunk_size=20, **kw)
  mixed, small, large = (run(num_samples=20, amortized_num_samples=40), run(num_samples=20),
                         run(num_samples=40))
  np.testing.assert_array_equal(mixed['log_px'], small['log_px'])
  for name in ('amortized_log_px', 'elbo'):
    np.testing.assert_array_equal(mixed[name], large[name])
  assert not np.array_equal(mixed['amortized_log_px'], small['amortized_log_px'])


def test_nonfinite_refinement_is_reported_per_example():
  model, x, encode = _setup()

  def log_joint(xx, z):  # NaN for the first example only (keyed on its data: refine vmaps)
    value = model.log_joint(xx, z)
    return jnp.where(jnp.all(xx == x[0], axis=-1), jnp.nan, value)

  out = iw_svi.log_likelihood(_Adapter(log_joint, encode), None, np.asarray(x),
                              jax.random.key(3), steps=5, k=4, num_samples=8, batch_size=12,
                              chunk_size=8)
  assert out['nonfinite'][0] and not out['nonfinite'][1:].any()
  assert np.isnan(out['log_px'][0]) and np.all(np.isfinite(out['log_px'][1:]))
  summary = iw_svi.summarize(out)  # the NaN example is reported, not averaged in
  assert summary['nonfinite_examples'] == [0]
  for name in ('log_px', 'amortized_log_px'):
    if name in out:
      assert summary[name]['num'] == len(x) - 1 and summary[name]['num_nonfinite'] == 0
      np.testing.assert_allclose(summary[name]['mean'], np.mean(out[name][1:]), rtol=1e-6)


@pytest.mark.parametrize('kw, message', [({'steps': -1}, 'steps must be >= 0'),
                                         ({'k': 0}, 'k must be >= 1'),
                                         ({'learning_rate': 0.0}, 'learning_rate must be > 0')])
def test_bad_settings(kw, message):
  model, x, encode = _setup()
  mean, scale = encode(x)
  with pytest.raises(ValueError, match=message):
    iw_svi.refine(model.log_joint, x, mean, scale, jax.random.key(0), **kw)


def test_a_ragged_last_batch_is_padded_and_calls_reuse_one_compiled_program():
  model, x, encode = _setup()
  adapter = _Adapter(model.log_joint, encode)
  run = lambda: iw_svi.log_likelihood(adapter, None, np.asarray(x), jax.random.key(2), steps=300,
                                      k=10, learning_rate=5e-2, num_samples=200, batch_size=5,
                                      chunk_size=10)
  out = run()  # batches of 5, 5 and 2 (padded to 5)
  compiled = iw_svi._batch_estimates._cache_size()
  assert all(v.shape == (len(x),) for v in out.values())
  assert not out['nonfinite'].any()
  np.testing.assert_allclose(out['log_px'].mean(), model.log_px(x).mean(), atol=0.05)
  run()
  assert iw_svi._batch_estimates._cache_size() == compiled
