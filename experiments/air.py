r"""Amortized inference regularization (Shu et al. 2018): Tables 1-3 and Figures 1-2.

Four models per k: the plain VAE / IWAE-k, DVAE / DIWAE with alpha = 0.5 and 1.0
(noise std sigma on the encoder input), and WNI (encoder weight norms <= H).

1. Sweep (Figures 1-2): every regularizer at every value of its grid, for each k
   in --sweep_ks, seed --seeds[0]; valid and test log p(x) by importance sampling
   (K = --select_k). sigma and H for the tables are the valid-set argmax.
2. Tables (1-3): each model with its selected value for every seed in --seeds,
   evaluated on the test set with IW-SVI (--iw_svi_steps Adam steps of the IWAE
   --iw_svi_k bound per test point, then K = --eval_k): -ln p(x), the inference
   gap Delta_inf = ln p(x) - L_k(x) and -L_k(x) (L_1 = the ELBO), mean ± standard
   error over seeds, beside the paper's numbers.

Caltech 101 Silhouettes, CPU scale (the README's results):
  python -m experiments.air --dataset=caltech101_silhouettes --data_dir=../shared/data \
      --workdir=runs/air_caltech

Every run is a resumable experiments.train workdir under DIR/runs/; DIR/results.json
holds the sweep, the selection and the tables; DIR/tables.md the tables;
DIR/figure1.png and DIR/figure2.png the sweeps (absolute at k = 1; relative to
the unregularized baseline for every k).
"""
import json
import os

from absl import app
from absl import flags
from absl import logging
import jax
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from avi import config as config_lib  # pylint: disable=wrong-import-position
from avi import data as data_lib  # pylint: disable=wrong-import-position
from avi import iw_svi  # pylint: disable=wrong-import-position
from avi import reporting  # pylint: disable=wrong-import-position
from avi import train  # pylint: disable=wrong-import-position
from avi import workdir as workdir_lib  # pylint: disable=wrong-import-position
from avi.methods.air import check_denoising  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.', required=True)
_DATASET = flags.DEFINE_string('dataset', 'caltech101_silhouettes', 'Dataset name or .npz path.')
_DATA_DIR = flags.DEFINE_string('data_dir', '', 'Local data files.')
_ARCH = flags.DEFINE_string('architecture', 'burda', 'Network preset.')
_TABLE_KS = flags.DEFINE_list('table_ks', ['1', '8'], 'k of the tables (the paper: 1, 8, 64).')
_SWEEP_KS = flags.DEFINE_list('sweep_ks', ['1', '8'], 'k of the sweep (the paper: 1, 8, 64).')
_SIGMAS = flags.DEFINE_list('sigmas', ['0.1', '0.3', '0.9'], 'Grid of DVAE noise stds.')
_NORMS = flags.DEFINE_list('max_norms', ['0.5', '2', '8'], 'Grid of WNI bounds H.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Table seeds; the sweep uses the first.')
_EPOCHS = flags.DEFINE_integer('epochs', 200, 'Training epochs of every run.')
_BATCH = flags.DEFINE_integer('batch_size', 100, 'Batch size.')
_LR = flags.DEFINE_float('learning_rate', 1e-3, 'Adam learning rate (constant).')
_SELECT_K = flags.DEFINE_integer('select_k', 1000, 'IS particles of the sweep log p(x).')
_EVAL_K = flags.DEFINE_integer('eval_k', 5000, 'IS particles of the IW-SVI log p(x).')
_SVI_STEPS = flags.DEFINE_integer('iw_svi_steps', 100, 'IW-SVI refinement steps per test point.')
_SVI_K = flags.DEFINE_integer('iw_svi_k', 100, 'IW-SVI: k of the refined IWAE-k bound.')
_SVI_LR = flags.DEFINE_float('iw_svi_learning_rate', 1e-3, 'IW-SVI: Adam step size.')
_EVAL_POINTS = flags.DEFINE_integer('eval_points', 500,
                                    'Test points of the IW-SVI tables (the first N); 0 = all.')

# name -> (label at k = 1, label at k > 1, hyperparameter, alpha)
MODELS = {
    'base': ('VAE', 'IWAE-{k}', None, 0.0),
    'dvae_a0.5': ('DVAE (α = 0.5)', 'DIWAE-{k} (α = 0.5)', 'denoise_sigma', 0.5),
    'dvae_a1.0': ('DVAE (α = 1.0)', 'DIWAE-{k} (α = 1.0)', 'denoise_sigma', 1.0),
    'wni': ('WNI-VAE', 'WNI-IWAE-{k}', 'encoder_max_norm', 0.0),
}
# Shu et al. (2018), Tables 1-3: (-ln p(x), Delta_inf, -L_k(x)) by dataset, k and model.
PAPER = {
    'caltech101_silhouettes': {
        1: {'base': (109.14, 28.90, 138.05), 'dvae_a0.5': (108.64, 23.40, 132.04),
            'dvae_a1.0': (108.66, 23.94, 132.60), 'wni': (108.94, 28.88, 137.82)},
        8: {'base': (108.65, 21.52, 130.17), 'dvae_a0.5': (107.34, 17.61, 124.96),
            'dvae_a1.0': (107.54, 17.06, 124.60), 'wni': (107.98, 22.18, 130.16)},
        64: {'base': (108.89, 16.51, 125.40), 'dvae_a0.5': (106.94, 12.28, 119.22),
             'dvae_a1.0': (106.96, 12.94, 119.87), 'wni': (108.15, 14.42, 122.57)}},
    'binarized_mnist': {
        1: {'base': (86.93, 8.54, 95.48), 'dvae_a0.5': (86.46, 6.34, 92.80),
            'dvae_a1.0': (86.51, 6.83, 93.35), 'wni': (86.42, 6.68, 93.10)},
        8: {'base': (86.21, 6.13, 92.34), 'dvae_a0.5': (85.78, 4.47, 90.25),
            'dvae_a1.0': (85.78, 4.21, 90.00), 'wni': (85.81, 4.33, 90.14)},
        64: {'base': (86.06, 4.41, 90.48), 'dvae_a0.5': (85.55, 3.01, 88.56),
             'dvae_a1.0': (85.55, 3.15, 88.70), 'wni': (85.64, 3.10, 88.74)}},
    'omniglot': {
        1: {'base': (110.32, 12.03, 122.35), 'dvae_a0.5': (109.31, 12.56, 121.87),
            'dvae_a1.0': (110.12, 12.44, 122.56), 'wni': (109.16, 11.39, 120.55)},
        8: {'base': (108.18, 8.69, 116.87), 'dvae_a0.5': (107.01, 8.64, 115.66),
            'dvae_a1.0': (107.47, 8.57, 116.04), 'wni': (107.15, 8.78, 115.93)},
        64: {'base': (107.31, 6.66, 113.97), 'dvae_a0.5': (106.02, 6.98, 113.00),
             'dvae_a1.0': (106.15, 6.70, 112.85), 'wni': (106.17, 7.11, 113.28)}},
}


def label(model: str, k: int) -> str:
  return MODELS[model][0] if k == 1 else MODELS[model][1].format(k=k)


def grid(model: str) -> list[float]:
  if MODELS[model][2] is None:
    return [0.0]
  return [float(v) for v in (_SIGMAS.value if MODELS[model][2] == 'denoise_sigma'
                             else _NORMS.value)]


def run_config(model: str, k: int, value: float, seed: int):
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
  c.eval.num_samples = _SELECT_K.value
  c.eval.splits = ('valid', 'test')
  c.eval.iwae_ks = ()
  return c


def run_dir(model: str, k: int, value: float, seed: int) -> str:
  hyper = MODELS[model][2]
  tag = '' if hyper is None else f'_{"sigma" if hyper == "denoise_sigma" else "H"}{value:g}'
  return os.path.join(_WORKDIR.value, 'runs', f'{model}_k{k}{tag}_s{seed}')


def train_run(dataset, model: str, k: int, value: float, seed: int) -> tuple[str, dict]:
  """Trains (or resumes, or reads back a finished) run; its results.json."""
  workdir = run_dir(model, k, value, seed)
  path = os.path.join(workdir, 'results.json')
  if not os.path.exists(path):
    print(f'training {os.path.basename(workdir)}', flush=True)
    train.train_and_evaluate(run_config(model, k, value, seed), workdir, dataset,
                             log=logging.info)
  with open(path) as f:
    return workdir, json.load(f)


def iw_svi_run(dataset, workdir: str, k: int) -> dict:
  """IW-SVI test evaluation of a finished run (cached in its iw_svi.json)."""
  path = os.path.join(workdir, 'iw_svi.json')
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  config = workdir_lib.saved_config(workdir)
  model, params, _ = train.restore_params(workdir, config, dataset)
  data = reporting.eval_data(dataset, 'test', config)[:_EVAL_POINTS.value or None]
  chunk = k * max(1, round(100 / k))  # L_k groups must tile the chunk
  out = iw_svi.log_likelihood(
      model, params, data,
      jax.random.key(config.seed + 7), _SVI_STEPS.value, _SVI_K.value, _SVI_LR.value,
      _EVAL_K.value, 100, chunk, iwae_ks=(k,) if k > 1 else ())
  summary = iw_svi.summarize(out)
  summary['settings'] = {'steps': _SVI_STEPS.value, 'k': _SVI_K.value,
                         'learning_rate': _SVI_LR.value, 'num_samples': _EVAL_K.value,
                         'num_points': len(data)}
  with open(path, 'w') as f:
    json.dump(summary, f, indent=1)
  return summary


def table_row(summaries: list[dict], k: int) -> dict:
  """-ln p(x), Delta_inf = ln p(x) - L_k(x) and -L_k(x): mean and SE over seeds."""
  bound = 'elbo' if k == 1 else f'iwae{k}'
  per_seed = np.array([[-s['log_px']['mean'], s['log_px']['mean'] - s[bound]['mean'],
                        -s[bound]['mean']] for s in summaries])
  n = len(per_seed)
  se = per_seed.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.full(3, np.nan)
  return {'neg_log_px': [per_seed[:, 0].mean(), se[0]],
          'inference_gap': [per_seed[:, 1].mean(), se[1]],
          'neg_bound': [per_seed[:, 2].mean(), se[2]], 'per_seed': per_seed.tolist(),
          'nonfinite_examples': sum(len(s['nonfinite_examples']) for s in summaries)}


def markdown_tables(tables: dict, selection: dict, dataset: str) -> str:
  paper = PAPER.get(dataset, {})
  lines = []
  for k, rows in tables.items():
    bound = 'L(x)' if int(k) == 1 else f'L_{k}(x)'
    lines += [f'\n{dataset}, k = {k} (ours: mean ± SE over seeds; paper in brackets)\n',
              f'| model | setting | −ln p(x) | Δ_inf | −{bound} |', '|---|---|---|---|---|']
    for model, r in rows.items():
      ref = paper.get(int(k), {}).get(model)
      cells = [f'{r[m][0]:.2f} ± {r[m][1]:.2f}' + (f' [{ref[i]:.2f}]' if ref else '')
               for i, m in enumerate(('neg_log_px', 'inference_gap', 'neg_bound'))]
      setting = selection[k].get(model, {}).get('setting', '—')
      lines.append(f'| {label(model, int(k))} | {setting} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def sweep_figures(sweep: dict, directory: str) -> None:
  """Figure 1 (k = 1, absolute test log p(x)) and Figure 2 (every k, minus the baseline)."""
  regularizers = [m for m in MODELS if MODELS[m][2]]
  for name, relative in (('figure1', False), ('figure2', True)):
    fig, axes = plt.subplots(1, len(regularizers), figsize=(4 * len(regularizers), 3.3))
    for ax, model in zip(axes, regularizers):
      for k, by_model in sweep.items():
        if not relative and int(k) != 1:
          continue
        base = by_model['base']['0']['test']
        values = sorted(by_model[model], key=float)
        y = np.array([by_model[model][v]['test'] for v in values])
        ax.plot([float(v) for v in values], y - base if relative else y, 'o-', label=f'k = {k}')
        ax.axhline(0.0 if relative else base, color='gray', lw=0.8, ls='--')
      hyper = MODELS[model][2]
      ax.set_xscale('log')
      ax.minorticks_off()
      grid_values = [float(v) for v in sorted(by_model[model], key=float)]
      ax.set_xticks(grid_values, [f'{v:g}' for v in grid_values])
      if hyper == 'encoder_max_norm':
        ax.invert_xaxis()  # smaller H = stronger regularization, to the right like sigma
      ax.set_xlabel('noise std σ' if hyper == 'denoise_sigma' else 'weight-norm bound H')
      ax.set_title(MODELS[model][0])
      ax.set_ylabel('test ln p(x) − baseline' if relative else 'test ln p(x)')
      ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(directory, f'{name}.png'), dpi=110)
    plt.close(fig)


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
  for sigma in _SIGMAS.value:
    check_denoising(float(sigma), 0.5)
  if min(float(h) for h in _NORMS.value) <= 0:
    raise app.UsageError('--max_norms: every WNI bound H must be > 0')
  iw_svi.check_settings(_SVI_STEPS.value, _SVI_K.value, _SVI_LR.value)
  dataset = data_lib.load(_DATASET.value, _DATA_DIR.value or None)
  os.makedirs(_WORKDIR.value, exist_ok=True)

  # 1. Sweep and selection on the validation set.
  sweep, selection = {}, {}
  for k in sweep_ks:
    sweep[str(k)], selection[str(k)] = {}, {}
    for model in MODELS:
      sweep[str(k)][model] = {}
      for value in grid(model):
        _, r = train_run(dataset, model, k, value, seeds[0])
        sweep[str(k)][model][f'{value:g}'] = {
            s: r['evaluation'][s]['log_px']['mean'] for s in ('valid', 'test')}
      best = max(sweep[str(k)][model], key=lambda v, m=model: sweep[str(k)][m][v]['valid'])
      hyper = MODELS[model][2]
      selection[str(k)][model] = {
          'value': float(best),
          'setting': '—' if hyper is None else
                     f'{"σ" if hyper == "denoise_sigma" else "H"} = {best}'}
  sweep_figures(sweep, _WORKDIR.value)

  # 2. Tables: the selected settings over every seed, IW-SVI on the test set.
  tables = {}
  for k in table_ks:
    tables[str(k)] = {}
    for model in MODELS:
      value = selection[str(k)][model]['value']
      summaries = [iw_svi_run(dataset, train_run(dataset, model, k, value, seed)[0], k)
                   for seed in seeds]
      tables[str(k)][model] = table_row(summaries, k)
      r = tables[str(k)][model]
      print(f'{label(model, k)}: -ln p(x) {r["neg_log_px"][0]:.2f} ± {r["neg_log_px"][1]:.2f}, '
            f'gap {r["inference_gap"][0]:.2f}', flush=True)
  settings = {name: flags.FLAGS[name].value for name in (
      'dataset', 'architecture', 'table_ks', 'sweep_ks', 'sigmas', 'max_norms', 'seeds',
      'epochs', 'batch_size', 'learning_rate', 'select_k', 'eval_k', 'iw_svi_steps', 'iw_svi_k',
      'iw_svi_learning_rate', 'eval_points')}
  out = {'settings': settings, 'versions': train.versions(), 'sweep': sweep,
         'selection': selection, 'tables': tables,
         'paper': {str(k): v for k, v in PAPER.get(dataset.name, {}).items()}}
  with open(os.path.join(_WORKDIR.value, 'results.json'), 'w') as f:
    json.dump(out, f, indent=1)
  md = markdown_tables(tables, selection, dataset.name)
  with open(os.path.join(_WORKDIR.value, 'tables.md'), 'w') as f:
    f.write(md)
  print(md)


if __name__ == '__main__':
  app.run(main)
