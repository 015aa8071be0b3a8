import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avi import config as config_lib
from avi import methods
from avi import models
from avi import networks


def _setup(max_norm=0.0):
  rng = np.random.default_rng(0)
  x = (rng.random((8, 20)) < 0.3).astype(np.float32)
  arch = networks.Architecture((10,), 3, encoder_max_norm=max_norm)
  model, params = models.init_vae(jax.random.key(0), arch, x)
  return model, params, jnp.asarray(x)


def _config(**kw):
  c = {'k': 4, 'num_samples': 2, 'denoise_sigma': 0.3, 'denoise_alpha': 0.5}
  c.update(kw)
  return config_lib.from_dict(c)


def test_alpha_zero_is_exactly_vae_and_iwae():
  model, params, x = _setup()
  key = jax.random.key(1)
  clean_key = jax.random.split(key, 3)[0]
  config = _config(denoise_alpha=0.0)
  for denoised, plain in (('dvae', 'vae'), ('diwae', 'iwae')):
    got = methods.build(denoised, model, config)(params, x, key)[0]
    want = methods.build(plain, model, config)(params, x, clean_key)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_noisy_term_is_the_bound_with_a_noisy_encoder_input():
  from avi import bounds  # pylint: disable=g-import-not-at-top
  model, params, x = _setup()
  key = jax.random.key(2)
  _, key_noisy, key_eps = jax.random.split(key, 3)
  noisy_x = x + 0.3 * jax.random.normal(key_eps, x.shape)
  expected = -jnp.mean(bounds.iwae(model.log_weights(params, x, key_noisy, 4,
                                                   x_encoder=noisy_x)[0]))
  full = methods.build('diwae', model, _config(denoise_alpha=1.0))(params, x, key)[0]
  np.testing.assert_allclose(full, expected, rtol=1e-6)
  none = methods.build('diwae', model, _config(denoise_alpha=0.0))(params, x, key)[0]
  half = methods.build('diwae', model, _config(denoise_alpha=0.5))(params, x, key)[0]
  np.testing.assert_allclose(half, 0.5 * (full + none), rtol=1e-5)


@pytest.mark.parametrize('kw, message', [
    ({'denoise_sigma': -0.1}, 'denoise_sigma must be >= 0'),
    ({'denoise_alpha': 1.5}, r'denoise_alpha must lie in \[0, 1\]'),
])
def test_bad_denoising_settings(kw, message):
  model, _, _ = _setup()
  with pytest.raises(ValueError, match=message):
    methods.build('dvae', model, _config(**kw))


def test_weight_norm_bound_holds_for_any_parameters():
  model, params, x = _setup(max_norm=0.7)
  enc = params['params']['encoder']
  assert set(enc['MLP_0']['Dense_0']) == {'v', 'u', 'bias'}
  rng = np.random.default_rng(3)
  for _ in range(5):  # arbitrary, even extreme, parameters
    v = jnp.asarray(rng.normal(size=(20, 10)) * rng.uniform(0.01, 100))
    u = jnp.asarray(rng.normal(size=10) * 50)
    w = networks.BoundedWeightNormDense.kernel(v, u, 0.7)
    assert np.all(np.linalg.norm(w, axis=0) <= 0.7 + 1e-5)
  mean, scale = model.encode(params, x)[:2]
  assert mean.shape == (8, 3) and np.all(np.isfinite(scale))
  with pytest.raises(ValueError, match='encoder_max_norm H must be > 0'):
    _setup(max_norm=-1.0)


@pytest.mark.parametrize('activation', ['tanh', 'gated'])
def test_every_encoder_kernel_is_bounded_for_random_parameters(activation):
  """Every encoder layer, hidden, gates and both heads, has column norms <= H (eq. 18)."""
  x = (np.random.default_rng(0).random((8, 20)) < 0.3).astype(np.float32)
  arch = networks.Architecture((10, 7), 3, activation=activation, encoder_max_norm=0.7)
  _, params = models.init_vae(jax.random.key(0), arch, x)
  layers = {}

  def collect(path, tree):
    if 'kernel' in tree:  # a plain Dense inside the encoder would be unbounded
      raise AssertionError(f'encoder layer {path} is not weight-normalized')
    if 'v' in tree:
      layers[path] = tree
    else:
      for name, sub in tree.items():
        collect(f'{path}/{name}', sub)

  collect('encoder', params['params']['encoder'])
  expected = 2 * 2 + 2 if activation == 'gated' else 2 + 2  # hidden (and gates), mean, log_scale
  assert len(layers) == expected, sorted(layers)
  rng = np.random.default_rng(3)
  for path, layer in layers.items():
    v = rng.normal(size=layer['v'].shape) * rng.uniform(0.01, 100)
    u = rng.normal(size=layer['u'].shape) * 50
    norms = np.linalg.norm(networks.BoundedWeightNormDense.kernel(v, u, 0.7), axis=0)
    assert np.all(norms <= 0.7 + 1e-5), path
