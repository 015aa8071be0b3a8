"""Config files, the deprecated flat keys and what locks a workdir."""
import importlib

import numpy as np
import pytest

from avi import config as config_lib
from avi import methods
from avi import models

CONFIG_FILES = ('quickstart', 'iwae_mnist', 'rem_mnist', 'air_caltech', 'avo_mnist')


@pytest.mark.parametrize('name', CONFIG_FILES)
def test_every_config_file_builds_its_model_and_method(name):
  config = importlib.import_module(f'experiments.configs.{name}').get_config()
  x = (np.random.default_rng(0).random((4, 784)) < 0.3).astype(np.float32)
  model, _ = models.from_config(config, x)
  methods.build(config.method, model, config)
  assert set(config_lib.get_config().keys()) == set(config.keys())  # no field of its own


def test_old_flat_keys_load_into_the_sub_configs():
  saved = {'method': 'rem_v1', 'rem_eps': 0.5, 'rem_covariance': 'unweighted',
           'num_transitions': 2, 'avo_a': 0.1, 'denoise_sigma': 0.3, 'encoder_max_norm': 2.0,
           'ciwae_beta': 0.2, 'eval': {'num_samples': 7, 'iwae_ks': [5]}}
  config = config_lib.from_dict(saved)
  assert (config.rem.eps, config.rem.covariance) == (0.5, 'unweighted')
  assert (config.hvi.num_transitions, config.hvi.avo_a, config.ciwae.beta) == (2, 0.1, 0.2)
  assert (config.air.denoise_sigma, config.air.encoder_max_norm) == (0.3, 2.0)
  assert config.eval.num_samples == 7 and config.eval.iwae_ks == (5,)
  assert config.eval.chunk_size == config_lib.get_config().eval.chunk_size  # default kept
  assert config_lib.from_dict(config.to_dict()) == config


def test_the_trajectory_leaves_out_epochs_and_evaluation_except_under_cosine():
  config = config_lib.get_config()
  keys = config_lib.trajectory(config)
  assert 'epochs' not in keys and not any(k.startswith('eval.') for k in keys)
  assert {'method', 'k', 'seed', 'rem.eps', 'hvi.num_transitions', 'learning_rate'} <= set(keys)
  config.schedule = 'cosine'
  assert 'epochs' in config_lib.trajectory(config)
