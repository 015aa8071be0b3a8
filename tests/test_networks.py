import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avi import models
from avi import networks


def test_presets_match_the_papers():
  assert networks.PRESETS['burda'] == networks.Architecture((200, 200), 50, 'tanh')
  assert networks.PRESETS['rem'] == networks.Architecture((200, 200), 20, 'tanh')
  assert networks.PRESETS['avo'].hidden == (300, 300) and networks.PRESETS['avo'].latent_dim == 40


def test_shapes_and_output_bias_initialization():
  rng = np.random.default_rng(0)
  train_x = (rng.random((64, 12)) < np.linspace(0.0, 1.0, 12)).astype(np.float32)
  arch = networks.Architecture(hidden=(8, 6), latent_dim=3, activation='relu')
  model, params = models.init_vae(jax.random.key(0), arch, train_x)
  mean, scale = model.encode(params, train_x[:5])[:2]
  chex.assert_shape([mean, scale], (5, 3))
  assert np.all(scale > 0)
  logits = model.logits(params, jnp.zeros((7, 5, 3)))
  chex.assert_shape(logits, (7, 5, 12))
  p = np.clip(train_x.mean(0), 1e-3, 1 - 1e-3)
  np.testing.assert_allclose(params['params']['decoder']['logits']['bias'],
                             np.log(p / (1 - p)), rtol=1e-5)
  # Encoder/decoder hidden widths: decoder mirrors the encoder.
  assert params['params']['decoder']['MLP_0']['Dense_0']['kernel'].shape == (3, 6)
  assert params['params']['encoder']['MLP_0']['Dense_0']['kernel'].shape == (12, 8)


def test_negative_transitions_and_norm_bound_are_refused():
  x = np.zeros((4, 6), np.float32)
  with pytest.raises(ValueError, match='num_transitions T must be >= 0, got -1'):
    models.init_vae(jax.random.key(0), networks.Architecture((4,), 2, num_transitions=-1), x)
  with pytest.raises(ValueError, match='encoder_max_norm H must be > 0'):
    models.init_vae(jax.random.key(0), networks.Architecture((4,), 2, encoder_max_norm=-1.0),
                      x)
