r"""Trains a deep latent-variable model and evaluates its log-likelihood.

  python -m experiments.train                      # quick start: IWAE-5 on the embedded subset
  python -m experiments.train --method=iwae --k=5 --dataset=binarized_mnist \
      --data_dir=../shared/data --epochs=10 --batch_size=100 --learning_rate=1e-3 \
      --seed=0 --workdir=runs/iwae5_mnist

Re-running with the same --workdir resumes from its last checkpoint.
"""
from absl import app
from absl import flags
from absl import logging

from avi import config as config_lib
from avi import train

_DEFAULTS = config_lib.get_config()
_WORKDIR = flags.DEFINE_string('workdir', 'runs/quickstart', 'Checkpoints, TensorBoard, results.')
_OVERRIDES = {
    'method': flags.DEFINE_string('method', None, f'Training objective [{_DEFAULTS.method}].'),
    'k': flags.DEFINE_integer('k', None, f'Particles K of the IWAE bound [{_DEFAULTS.k}].'),
    'num_samples': flags.DEFINE_integer('num_samples', None,
                                        'M: samples of the VAE ELBO, outer M of MIWAE/PIWAE [1].'),
    'ciwae_beta': flags.DEFINE_float('ciwae_beta', None, 'CIWAE weight on the ELBO [0.5].'),
    'rem_eps': flags.DEFINE_float('rem_eps', None, 'REM: eps I added to the covariance [1e-3].'),
    'rem_covariance': flags.DEFINE_enum('rem_covariance', None, ['weighted', 'unweighted'],
                                        'REM covariance: eq. 22 or the authors\' code.'),
    'denoise_sigma': flags.DEFINE_float('denoise_sigma', None, 'DVAE/DIWAE noise std [0].'),
    'denoise_alpha': flags.DEFINE_float('denoise_alpha', None, 'DVAE/DIWAE mixing alpha [1].'),
    'num_transitions': flags.DEFINE_integer('num_transitions', None,
                                            'HVI refinement transitions T, 0 = off [0].'),
    'avo_a': flags.DEFINE_float('avo_a', None, 'hvi_avo: probability of an AVO step [0.5].'),
    'encoder_max_norm': flags.DEFINE_float('encoder_max_norm', None,
                                           'WNI bound H on encoder weight norms, 0 = off.'),
    'dataset': flags.DEFINE_string('dataset', None, 'Dataset name or .npz path [embedded].'),
    'data_dir': flags.DEFINE_string('data_dir', None, 'Local data files [$AVI_DATA_DIR].'),
    'architecture': flags.DEFINE_string('architecture', None, 'burda | rem | avo [burda].'),
    'epochs': flags.DEFINE_integer('epochs', None, f'Epochs [{_DEFAULTS.epochs}].'),
    'batch_size': flags.DEFINE_integer('batch_size', None, f'Batch size [{_DEFAULTS.batch_size}].'),
    'learning_rate': flags.DEFINE_float('learning_rate', None, 'Adam learning rate [1e-3].'),
    'schedule': flags.DEFINE_string('schedule', None, 'constant | cosine | burda [constant].'),
    'seed': flags.DEFINE_integer('seed', None, 'Seed of init, data order and sampling [0].'),
    'num_devices': flags.DEFINE_integer('num_devices', None, 'Data-parallel devices, 0 = all.'),
    'checkpoint_every_steps': flags.DEFINE_integer('checkpoint_every_steps', None,
                                                   'Checkpoint period, 0 = every epoch.'),
    'eval_every_epochs': flags.DEFINE_integer('eval_every_epochs', None,
                                              'Periodic valid/test log-likelihood, 0 = off.'),
}
_EVAL_K = flags.DEFINE_integer('eval_k', None, 'K of the final log-likelihood [5000].')


def get_config():
  config = config_lib.get_config()
  for name, flag in _OVERRIDES.items():
    if flag.value is not None:
      config[name] = flag.value
  if _EVAL_K.value is not None:
    config.eval.num_samples = _EVAL_K.value
  return config


def main(argv):
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  results = train.train_and_evaluate(get_config(), _WORKDIR.value)
  print(train.results_table(results))
  print(f'train {results["train_seconds"]:.1f} s, evaluation {results["eval_seconds"]:.1f} s; '
        f'{_WORKDIR.value}/results.json')


if __name__ == '__main__':
  app.run(main)
