r"""Trains a deep latent-variable model and evaluates its log-likelihood.

  python -m experiments.train                     # quick start: IWAE-5 on the embedded subset
  python -m experiments.train --config=experiments/configs/iwae_mnist.py \
      --config.seed=1 --workdir=runs/iwae5_mnist_s1

`--config` is a config file (`experiments/configs/`, default the quick start) and
`--config.FIELD=VALUE` overrides any field, e.g. `--config.rem.eps=1e-2`. Re-running
with the same --workdir resumes; a raised `--config.epochs` trains the extra epochs
only; another `--config.eval.*` re-evaluates without training.

The flat flags of earlier releases (--method, --k, --rem_eps, --eval_k, ...) still
work for this release as aliases of the config fields; they override the config file.
"""
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from avi import config as config_lib
from avi import reporting
from avi import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), 'configs', 'quickstart.py'),
    'A config file; override its fields with --config.FIELD=VALUE.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/quickstart', 'Checkpoints, TensorBoard, results.')

# Deprecated aliases: flag -> config field.
_ALIASES = {name: name for name in (
    'method', 'k', 'num_samples', 'dataset', 'data_dir', 'architecture', 'epochs', 'batch_size',
    'learning_rate', 'schedule', 'seed', 'num_devices', 'checkpoint_every_steps',
    'eval_every_epochs')}
_ALIASES.update(config_lib.ALIASES)
_ALIASES['eval_k'] = 'eval.num_samples'
_TYPES = {'method': str, 'dataset': str, 'data_dir': str, 'architecture': str, 'schedule': str,
          'rem_covariance': str, 'k': int, 'num_samples': int, 'epochs': int, 'batch_size': int,
          'seed': int, 'num_devices': int, 'checkpoint_every_steps': int,
          'eval_every_epochs': int, 'num_transitions': int, 'eval_k': int}
_FLAGS = {}
for _name, _field in _ALIASES.items():
  _kind = _TYPES.get(_name, float)
  _define = {str: flags.DEFINE_string, int: flags.DEFINE_integer,
             float: flags.DEFINE_float}[_kind]
  _FLAGS[_name] = _define(_name, None, f'Deprecated alias of --config.{_field}.')


def get_config():
  """The config file with its --config.* overrides, then the deprecated flat flags."""
  config = _CONFIG.value
  for name, flag in _FLAGS.items():
    if flag.value is not None:
      logging.warning('--%s is deprecated: use --config.%s', name, _ALIASES[name])
      config_lib.set_field(config, _ALIASES[name], flag.value)
  return config


def main(argv):
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  results = train.train_and_evaluate(get_config(), _WORKDIR.value)
  print(reporting.results_table(results))
  print(f'train {results["train_seconds"]:.1f} s, evaluation {results["eval_seconds"]:.1f} s; '
        f'{_WORKDIR.value}/results.json')


if __name__ == '__main__':
  app.run(main)
