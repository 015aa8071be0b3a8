r"""Amortized inference regularization (Shu et al. 2018): Tables 1-3 and Figures 1-2.

Four models per k: the plain VAE / IWAE-k, DVAE / DIWAE with alpha = 0.5 and 1.0
(noise std sigma on the encoder input), and WNI (encoder weight norms <= H).

1. Sweep (Figures 1-2): every regularizer at every value of its grid, for each k
   in --sweep_ks, seed --seeds[0]; valid and test log p(x) by the estimator early
   stopping selects on (--selection): importance sampling from q (K = --select_k), or
   IW-SVI (valid: the early-stopping estimate at the best epoch; test: as in the
   tables). sigma and H for the tables are the valid-set argmax.
2. Tables (1-3): each model with its selected value for every seed in --seeds,
   evaluated on the test set with IW-SVI (--iw_svi_steps Adam steps of the IWAE
   --iw_svi_k bound per test point, then K = --eval_k): -ln p(x), the inference
   gap Delta_inf = ln p(x) - L_k(x) and -L_k(x) (L_1 = the ELBO), mean ± standard
   error over seeds, beside the paper's numbers.

Every run is early-stopped on the valid log p(x) (--eval_every_epochs, --patience) and
scored with its best-on-valid params. Caltech 101 Silhouettes, k = 1, three seeds, the grid
cut to the values selected before, IW-SVI at its earlier settings (docs/air.md; about 2.5 hours
on one CPU core):
  python -m experiments.air --dataset=caltech101_silhouettes --data_dir=../shared/data \
      --workdir=runs/air_caltech_es --architecture=avo --table_ks=1 --sweep_ks=1 --seeds=0,1,2 \
      --sigmas=0.3 --max_norms=2 --iw_svi_steps=200 --iw_svi_k=10 --eval_k=5000
The paper's scale is the defaults (k = 1, 8, 64, full grids, 3 seeds), an accelerator job;
docs/air.md runs it with --architecture=avo --selection=iw_svi, the protocol of its tables.

Every run is a resumable experiments.train workdir under DIR/runs/, read back once trained,
so --models can split the work into disjoint subsets run by parallel processes on the same
DIR (then one run with every model writes the tables); --notrain tabulates the runs finished
so far and trains nothing (a partial grid, seeds still running). DIR/results.json holds the
sweep, the selection and the tables; DIR/tables.md the tables; DIR/figure1.png and
DIR/figure2.png the sweeps (absolute at k = 1, if the sweep has it; relative to the
unregularized baseline for every k).
"""
import json
import os
from typing import Optional

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from avi import config as config_lib
from avi import data as data_lib
from avi import iw_svi
from avi import reporting
from avi import train
from avi import workdir as workdir_lib
from avi.methods.air import check_denoising
from experiments import air_tables
from experiments.air_tables import MODELS

_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.', required=True)
_DATASET = flags.DEFINE_string('dataset', 'caltech101_silhouettes', 'Dataset name or .npz path.')
_DATA_DIR = flags.DEFINE_string('data_dir', '', 'Local data files.')
_ARCH = flags.DEFINE_string('architecture', 'burda', 'Network preset.')
_TABLE_KS = flags.DEFINE_list('table_ks', ['1', '8', '64'], 'k of the tables.')
_SWEEP_KS = flags.DEFINE_list('sweep_ks', ['1', '8', '64'], 'k of the sweep.')
_SIGMAS = flags.DEFINE_list('sigmas', ['0.1', '0.3', '0.9'], 'Grid of DVAE noise stds.')
_NORMS = flags.DEFINE_list('max_norms', ['0.5', '2', '8'], 'Grid of WNI bounds H.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Table seeds; the sweep uses the first.')
_MODELS = flags.DEFINE_list('models', list(MODELS), 'Models to train and tabulate, of '
                            f'{", ".join(MODELS)} (the figures and gains need base and a '
                            'regularizer).')
_EPOCHS = flags.DEFINE_integer('epochs', 1000, 'Most training epochs of a run (early stopping '
                               'ends it sooner).')
_EVAL_EVERY = flags.DEFINE_integer('eval_every_epochs', 10, 'Epochs between the valid log p(x) '
                                   'estimates of model selection (K = 100, 1,000 points).')
_PATIENCE = flags.DEFINE_integer('patience', 5, 'Early stopping: valid estimates without a better '
                                 'one; the best-on-valid params are scored. 0: no selection.')
_SELECTION = flags.DEFINE_enum('selection', 'is', ['is', 'iw_svi'], 'What early stopping '
                               'selects on: the valid log p(x) importance-sampled from q, or '
                               'by IW-SVI (scores the decoder; early_stopping.iw_svi defaults).')
_COMPARE_TO = flags.DEFINE_string('compare_to', None, 'Another experiments.air workdir (e.g. '
                                   'the other --selection): the tables add each model\'s gain '
                                   'over the same model, k and seeds there, paired on the test '
                                   'points.')
_BATCH = flags.DEFINE_integer('batch_size', 100, 'Batch size.')
_WARMUP = flags.DEFINE_integer('warmup_epochs', 0, 'Epochs of deterministic warm-up (beta from '
                               '0.01 to 1 on log p(z) - log q) of every run.')
_LR = flags.DEFINE_float('learning_rate', 1e-3, 'Adam learning rate (constant).')
_SELECT_K = flags.DEFINE_integer('select_k', 1000, 'IS particles of the sweep log p(x).')
_EVAL_K = flags.DEFINE_integer('eval_k', 2000, 'IS particles of the IW-SVI log p(x).')
# IW-SVI defaults from its convergence curve (docs/air.md): 0.26 ± 0.05 nats below S = 400,
# k = 100, K = 5,000 on 300 Caltech test points.
_SVI_STEPS = flags.DEFINE_integer('iw_svi_steps', 300, 'IW-SVI refinement steps per test point.')
_SVI_K = flags.DEFINE_integer('iw_svi_k', 5, 'IW-SVI: k of the refined IWAE-k bound.')
_SVI_LR = flags.DEFINE_float('iw_svi_learning_rate', 3e-2, 'IW-SVI: Adam step size.')
_SVI_AMORTIZED_K = flags.DEFINE_integer('iw_svi_amortized_k', 1000, 'IW-SVI: particles of the '
                                        'amortized proposal (its ELBO and L_k).')
_EVAL_POINTS = flags.DEFINE_integer('eval_points', 0,
                                    'Test points of the IW-SVI tables (the first N); 0 = all.')
_TRAIN = flags.DEFINE_bool('train', True, 'Train (or resume) every run the sweep and tables '
                           'need. --notrain reads back the finished runs only: grid points and '
                           'seeds not trained yet are left out of the sweep, figures and tables.')

def grid(model: str) -> list[float]:
  if MODELS[model][2] is None:
    return [0.0]
  return [float(v) for v in (_SIGMAS.value if MODELS[model][2] == 'denoise_sigma'
                             else _NORMS.value)]


def run_config(model: str, k: int, value: float, seed: int, num_train: int):
  """The experiments.train config of one run: k = 1 trains the ELBO, k > 1 IWAE-k."""
  _, _, hyper, alpha = MODELS[model]
  c = config_lib.get_config()
  c.dataset, c.data_dir, c.architecture = _DATASET.value, _DATA_DIR.value, _ARCH.value
  denoising = hyper == 'denoise_sigma'
  c.method = ('dvae' if denoising else 'vae') if k == 1 else ('diwae' if denoising else 'iwae')
  c.k, c.num_samples = k, 1
  if hyper:
    c.air[hyper] = value
  c.air.denoise_alpha = alpha
  c.epochs, c.batch_size, c.learning_rate, c.seed = (_EPOCHS.value, _BATCH.value, _LR.value,
                                                     seed)
  c.eval_every_epochs, c.early_stopping.patience = _EVAL_EVERY.value, _PATIENCE.value
  c.early_stopping.estimator = _SELECTION.value
  c.warmup.steps = _WARMUP.value * (num_train // _BATCH.value)
  c.checkpoint_every_seconds = 60.  # a Caltech epoch is 41 steps: per-epoch saves dominate
  c.eval.num_samples = _SELECT_K.value
  c.eval.splits = ('valid', 'test')
  c.eval.iwae_ks = ()
  return c


def run_dir(model: str, k: int, value: float, seed: int, root: Optional[str] = None) -> str:
  hyper = MODELS[model][2]
  tag = '' if hyper is None else f'_{"sigma" if hyper == "denoise_sigma" else "H"}{value:g}'
  return os.path.join(root or _WORKDIR.value, 'runs', f'{model}_k{k}{tag}_s{seed}')


def train_run(dataset, model: str, k: int, value: float,
              seed: int) -> Optional[tuple[str, dict]]:
  """Trains (or resumes, or reads back a finished) run; its workdir and results.json. None for
  a run not finished under --notrain."""
  workdir = run_dir(model, k, value, seed)
  path = os.path.join(workdir, 'results.json')
  if not os.path.exists(path):
    if not _TRAIN.value:
      return None
    print(f'training {os.path.basename(workdir)}', flush=True)
    config = run_config(model, k, value, seed, len(dataset.splits['train']))
    train.train_and_evaluate(config, workdir, dataset, log=logging.info)
  with open(path) as f:
    results = json.load(f)
  selected_on = results['settings'].get('early_stopping', {}).get('estimator', 'is')
  if selected_on != _SELECTION.value:
    raise app.UsageError(f'{workdir} was selected on {selected_on!r}, not --selection='
                         f'{_SELECTION.value}: use another --workdir')
  return workdir, results


def sweep_entry(dataset, workdir: str, results: dict, k: int) -> dict:
  """One sweep point: valid and test log p(x) by the --selection estimator (IS from q on all
  points; or IW-SVI, valid at the best epoch on the points early stopping scored and test on
  --eval_points, the tables' evaluation) and the best epoch."""
  entry = {s: results['evaluation'][s]['log_px']['mean'] for s in ('valid', 'test')}
  if _SELECTION.value == 'iw_svi':
    entry = {'valid': results['early_stopping']['best_valid_log_px'],
             'test': iw_svi_run(dataset, workdir, k)['log_px']['mean'],
             **{f'{s}_is': v for s, v in entry.items()}}
  return {**entry, 'best_epoch': (results.get('early_stopping') or {}).get('best_epoch')}


def iw_svi_run(dataset, workdir: str, k: int) -> dict:
  """IW-SVI test evaluation of a finished run (cached in its iw_svi.json while the settings
  are the same); the per-point estimates go to iw_svi_per_example.npz, for paired
  differences between models on the same test points."""
  config = workdir_lib.saved_config(workdir)
  data = reporting.eval_data(dataset, 'test', config)[:_EVAL_POINTS.value or None]
  settings = {'steps': _SVI_STEPS.value, 'k': _SVI_K.value, 'learning_rate': _SVI_LR.value,
              'num_samples': _EVAL_K.value, 'amortized_num_samples': _SVI_AMORTIZED_K.value,
              'num_points': len(data)}
  path = os.path.join(workdir, 'iw_svi.json')
  stored = workdir_lib.read_json(path) if os.path.exists(path) else None
  if stored is not None and stored['settings'] == settings:
    return stored
  model, params, _ = train.restore_params(workdir, config, dataset)
  chunk = k * max(1, round(100 / k))  # L_k groups must tile the chunk
  out = iw_svi.log_likelihood(
      model, params, data, jax.random.key(config.seed + 7), settings['steps'], settings['k'],
      settings['learning_rate'], settings['num_samples'], 100, chunk,
      iwae_ks=(k,) if k > 1 else (), amortized_num_samples=settings['amortized_num_samples'])
  summary = {**iw_svi.summarize(out), 'settings': settings}
  np.savez(os.path.join(workdir, 'iw_svi_per_example.npz'), **out)
  workdir_lib.write_json(path, summary)
  return summary


def per_example_iw_svi(workdir: str):
  """The per-point IW-SVI estimates of a run (None for runs scored before they were kept)."""
  path = os.path.join(workdir, 'iw_svi_per_example.npz')
  return dict(np.load(path)) if os.path.exists(path) else None


def compared_per_example(model: str, k: int, seeds: list[int]) -> list:
  """The per-point IW-SVI of `model` at k in --compare_to (at the value selected there),
  one entry per seed (None where it was not scored)."""
  with open(os.path.join(_COMPARE_TO.value, 'results.json')) as f:
    value = json.load(f)['selection'][str(k)][model]['value']
  return [per_example_iw_svi(run_dir(model, k, value, seed, _COMPARE_TO.value)) for seed in seeds]


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  table_ks = [int(k) for k in _TABLE_KS.value]
  sweep_ks = sorted({int(k) for k in _SWEEP_KS.value} | set(table_ks))
  seeds = [int(s) for s in _SEEDS.value]
  if min(sweep_ks) < 1:
    raise app.UsageError('--table_ks and --sweep_ks must be >= 1')
  if not seeds:
    raise app.UsageError('--seeds is empty')
  models = [m for m in MODELS if m in _MODELS.value]  # in MODELS' order
  if not models or len(models) != len(set(_MODELS.value)):
    raise app.UsageError(f'--models={",".join(_MODELS.value)}: choose from {", ".join(MODELS)}')
  for sigma in _SIGMAS.value:
    check_denoising(float(sigma), 0.5)
  if min(float(h) for h in _NORMS.value) <= 0:
    raise app.UsageError('--max_norms: every WNI bound H must be > 0')
  iw_svi.check_settings(_SVI_STEPS.value, _SVI_K.value, _SVI_LR.value)
  if _COMPARE_TO.value and not os.path.exists(os.path.join(_COMPARE_TO.value, 'results.json')):
    raise app.UsageError(f'--compare_to={_COMPARE_TO.value} has no results.json of '
                         'experiments.air')
  dataset = data_lib.load(_DATASET.value, _DATA_DIR.value or None)
  os.makedirs(_WORKDIR.value, exist_ok=True)

  # 1. Sweep and selection on the validation set.
  sweep, selection = {}, {}
  for k in sweep_ks:
    sweep[str(k)] = {}
    for model in models:
      for value in grid(model):
        finished = train_run(dataset, model, k, value, seeds[0])
        if finished:
          sweep[str(k)].setdefault(model, {})[f'{value:g}'] = sweep_entry(dataset, *finished, k)
    selection[str(k)] = air_tables.select(sweep[str(k)])
  if not any(sweep.values()):
    raise app.UsageError(f'--notrain: no finished run of the sweep under {_WORKDIR.value}/runs')
  if 'base' in models and len(models) > 1:
    air_tables.sweep_figures(sweep, _WORKDIR.value)

  # 2. Tables: the selected settings over every seed, IW-SVI on the test set.
  tables = {}
  for k in table_ks:
    tables[str(k)], per_example = {}, {}
    for model in models:
      if model not in selection[str(k)]:  # --notrain, no finished run
        continue
      value = selection[str(k)][model]['value']
      runs = {seed: train_run(dataset, model, k, value, seed) for seed in seeds}
      paths = [finished[0] for finished in runs.values() if finished]
      summaries = [iw_svi_run(dataset, path, k) for path in paths]
      tables[str(k)][model] = air_tables.table_row(summaries, k)
      row_seeds = tables[str(k)][model]['seeds'] = [s for s, finished in runs.items() if finished]
      per_example[model] = [per_example_iw_svi(path) for path in paths]
      if (model != 'base' and 'base' in tables[str(k)]
          and row_seeds == tables[str(k)]['base']['seeds']
          and None not in per_example[model] + per_example['base']):
        tables[str(k)][model]['gain_over_base'] = air_tables.paired_gain(
            per_example[model], per_example['base'])
      if _COMPARE_TO.value:
        there = compared_per_example(model, k, row_seeds)
        if None not in there + per_example[model]:
          tables[str(k)][model]['gain_over_compare'] = air_tables.paired_gain(
              per_example[model], there)
      r = tables[str(k)][model]
      print(f'{air_tables.label(model, k)}: -ln p(x) {r["neg_log_px"][0]:.2f} '
            f'± {r["neg_log_px"][1]:.2f}, '
            f'gap {r["inference_gap"][0]:.2f}', flush=True)
  settings = {name: flags.FLAGS[name].value for name in (
      'dataset', 'architecture', 'table_ks', 'sweep_ks', 'sigmas', 'max_norms', 'seeds',
      'models', 'epochs', 'eval_every_epochs', 'patience', 'selection', 'warmup_epochs',
      'batch_size', 'learning_rate', 'select_k', 'eval_k', 'iw_svi_steps', 'iw_svi_k',
      'iw_svi_learning_rate', 'iw_svi_amortized_k', 'eval_points', 'compare_to', 'train')}
  out = {'settings': settings, 'versions': train.versions(), 'sweep': sweep,
         'selection': selection, 'tables': tables,
         'paper': {str(k): v for k, v in air_tables.PAPER.get(dataset.name, {}).items()}}
  with open(os.path.join(_WORKDIR.value, 'results.json'), 'w') as f:
    json.dump(out, f, indent=1)
  md = air_tables.markdown_tables(tables, selection, dataset.name, _COMPARE_TO.value)
  with open(os.path.join(_WORKDIR.value, 'tables.md'), 'w') as f:
    f.write(md)
  print(md)


if __name__ == '__main__':
  app.run(main)
