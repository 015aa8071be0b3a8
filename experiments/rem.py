r"""REM (Dieng & Paisley 2019) against VAE, IWAE and RWS: Table 2 and Figure 2.

Paper settings (the defaults; a GPU job):
  python -m experiments.rem --workdir=runs/rem --data_dir=../shared/data

CPU scale, as reported in the README:
  python -m experiments.rem --workdir=runs/rem_cpu --data_dir=../shared/data --k=50 \
      --epochs=3 --kl_ks=1,10,50 --kl_epochs=2 --eval_k=1000

Every run lives in DIR/<method>_k<K> (resumable); DIR/results.json gathers the
final and per-epoch log-likelihoods, DIR/kl_vs_k.png is Figure 2 (mean
KL(r(z | x) || p(z)) of the learned recognition network against K).
"""
import json
import os

from absl import app
from absl import flags
from absl import logging
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from avi import config as config_lib  # pylint: disable=wrong-import-position
from avi import data as data_lib  # pylint: disable=wrong-import-position
from avi import reporting  # pylint: disable=wrong-import-position
from avi import train  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.', required=True)
_METHODS = flags.DEFINE_list('methods', ['vae', 'iwae', 'rws', 'rem_v1', 'rem_v2'], 'Methods.')
_DATASET = flags.DEFINE_string('dataset', 'binarized_mnist', 'Dataset name or .npz path.')
_DATA_DIR = flags.DEFINE_string('data_dir', '', 'Local data files.')
_K = flags.DEFINE_integer('k', 1000, 'Particles for training (the paper: 1000).')
_EPOCHS = flags.DEFINE_integer('epochs', 200, 'Epochs (the paper: 200).')
_BATCH = flags.DEFINE_integer('batch_size', 20, 'Batch size (the paper: 20).')
_LR = flags.DEFINE_float('learning_rate', 1e-3, 'Initial rate of the Burda schedule.')
_SCHEDULE = flags.DEFINE_string('schedule', 'burda', 'Learning-rate schedule.')
_EPS = flags.DEFINE_float('rem_eps', 1e-3, 'eps I added to the moment-matched covariance.')
_COV = flags.DEFINE_enum('rem_covariance', 'weighted', ['weighted', 'unweighted'],
                         "REM covariance: the paper's eq. 22 (weighted) or the authors' code.")
_SEED = flags.DEFINE_integer('seed', 2019, 'Seed (the paper: 2019).')
_EVAL_K = flags.DEFINE_integer('eval_k', 5000, 'K of the final log-likelihood.')
_PERIODIC_K = flags.DEFINE_integer('periodic_k', 100, 'K of the per-epoch log-likelihoods.')
_KL_KS = flags.DEFINE_list('kl_ks', ['1', '10', '100', '1000'], 'Figure 2: training K values.')
_KL_METHODS = flags.DEFINE_list('kl_methods', ['vae', 'iwae', 'rem_v1'], 'Figure 2: methods.')
_KL_EPOCHS = flags.DEFINE_integer('kl_epochs', 0, 'Figure 2 epochs; 0 = --epochs.')


def run_config(method: str, k: int, epochs: int):
  c = config_lib.get_config()
  c.method, c.dataset, c.data_dir = method, _DATASET.value, _DATA_DIR.value
  c.architecture = 'rem'
  # The VAE's "K" is its number of samples M.
  c.k, c.num_samples = (1, k) if method == 'vae' else (k, 1)
  c.epochs, c.batch_size, c.learning_rate = epochs, _BATCH.value, _LR.value
  c.schedule, c.rem.eps, c.seed = _SCHEDULE.value, _EPS.value, _SEED.value
  c.rem.covariance = _COV.value
  c.eval_every_epochs = 1
  c.eval.periodic_num_samples = _PERIODIC_K.value
  c.eval.num_samples = _EVAL_K.value
  c.eval.splits = ('train', 'valid', 'test')
  return c


def train_one(dataset, method: str, k: int, epochs: int) -> dict:
  suffix = '_unweighted' if method.startswith('rem') and _COV.value == 'unweighted' else ''
  workdir = os.path.join(_WORKDIR.value, f'{method}{suffix}_k{k}_e{epochs}')
  results = train.train_and_evaluate(run_config(method, k, epochs), workdir, dataset)
  print(reporting.results_table(results))
  return {'workdir': workdir, 'evaluation': results['evaluation'], 'history': results['history'],
          'train_seconds': results['train_seconds']}


def kl_figure(kl: dict, path: str) -> None:
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for method, by_k in kl.items():
    ks = sorted(int(k) for k in by_k)
    ax.plot(ks, [by_k[str(k)] for k in ks], 'o-', label=method)
  ax.set_xscale('log')
  ax.set_xlabel('K used in training')
  ax.set_ylabel('test mean KL(r(z|x) || p(z)) (nats)')
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  kl_ks = [int(k) for k in _KL_KS.value]
  for name, values in (('--k', [_K.value]), ('--kl_ks', kl_ks)):
    if min(values) < 1:
      raise app.UsageError(f'{name} must be >= 1')
  if _K.value < 2 and any(m.startswith('rem') for m in _METHODS.value):
    raise app.UsageError('REM needs --k >= 2 (the moments of one particle are undefined)')
  dataset = data_lib.load(_DATASET.value, _DATA_DIR.value or None)
  os.makedirs(_WORKDIR.value, exist_ok=True)
  out = {'settings': {k: v.value for k, v in flags.FLAGS.__flags.items()  # pylint: disable=protected-access
                      if k in ('methods', 'dataset', 'k', 'epochs', 'batch_size', 'learning_rate',
                               'schedule', 'rem_eps', 'rem_covariance', 'seed', 'eval_k',
                               'kl_ks', 'kl_epochs')},
         'table': {}, 'kl_to_prior': {}}
  for method in _METHODS.value:
    out['table'][method] = train_one(dataset, method, _K.value, _EPOCHS.value)
  kl_epochs = _KL_EPOCHS.value or _EPOCHS.value
  for method in _KL_METHODS.value:
    out['kl_to_prior'][method] = {}
    for k in kl_ks:
      if method.startswith('rem') and k < 2:
        continue  # REM is undefined at K = 1; its curve starts at the next K
      r = train_one(dataset, method, k, kl_epochs)
      out['kl_to_prior'][method][str(k)] = r['evaluation']['test']['kl_to_prior']
  with open(os.path.join(_WORKDIR.value, 'results.json'), 'w') as f:
    json.dump(out, f, indent=1)
  kl_figure(out['kl_to_prior'], os.path.join(_WORKDIR.value, 'kl_vs_k.png'))
  print('| method | test log p(x) | valid log p(x) | train log p(x) | test KL(r||p) |')
  print('|---|---|---|---|---|')
  for method, r in out['table'].items():
    e = r['evaluation']
    print(f'| {method} | {e["test"]["log_px"]["mean"]:.2f} ± {e["test"]["log_px"]["stderr"]:.2f} '
          f'| {e["valid"]["log_px"]["mean"]:.2f} | {e["train"]["log_px"]["mean"]:.2f} '
          f'| {e["test"]["kl_to_prior"]:.2f} |')


if __name__ == '__main__':
  app.run(main)
