"""Tables 1-3 and Figures 1-2 of Shu et al. (2018) from the runs of `experiments.air`: the
models, the paper's numbers, the valid-set selection, the per-seed table rows and the
sweep figures."""
import os
from typing import Optional

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

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


def select(sweep: dict) -> dict:
  """The valid-set argmax of each model's grid. sweep: {model: {value: {'valid': log p(x),
  ...}}} for one k -> {model: {'value', 'setting'}}."""
  selection = {}
  for model, by_value in sweep.items():
    best = max(by_value, key=lambda v, b=by_value: b[v]['valid'])
    hyper = MODELS[model][2]
    selection[model] = {'value': float(best), 'setting': '—' if hyper is None else
                        f'{"σ" if hyper == "denoise_sigma" else "H"} = {best}'}
  return selection


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


def paired_gain(per_example: list[dict], base: list[dict]) -> list[float]:
  """Gain in test log p(x) over the unregularized model on the same test points: the mean
  over seeds of each seed's mean paired difference, with its SE over seeds, or over the
  test points when there is one seed. Entries are `iw_svi.log_likelihood` outputs (the
  same seeds, in order); a point non-finite in either is left out."""
  diffs = []
  for model, reference in zip(per_example, base, strict=True):
    ok = ~(model['nonfinite'] | reference['nonfinite'])
    diffs.append(model['log_px'][ok] - reference['log_px'][ok])
  means = np.array([d.mean() for d in diffs])
  if len(diffs) > 1:
    return [float(means.mean()), float(means.std(ddof=1) / np.sqrt(len(means)))]
  return [float(means[0]), float(diffs[0].std(ddof=1) / np.sqrt(len(diffs[0])))]


def markdown_tables(tables: dict, selection: dict, dataset: str,
                    compare_to: Optional[str] = None) -> str:
  """The tables in markdown; `compare_to` names the workdir of the rows' `gain_over_compare`."""
  paper = PAPER.get(dataset, {})
  gains = ['gain_over_base'] + (['gain_over_compare'] if compare_to else [])
  lines = []
  for k, rows in tables.items():
    bound = 'L(x)' if int(k) == 1 else f'L_{k}(x)'
    lines += [f'\n{dataset}, k = {k} (ours: mean ± SE over seeds, the mean alone with one seed; '
              'paper in brackets; the gain is paired on the test points, its SE over seeds, '
              'or over points with one seed)\n',
              f'| model | setting | −ln p(x) | Δ_inf | −{bound} | gain in ln p(x) over '
              f'{label("base", int(k))} |'
              + (f' gain over the same model in {compare_to} |' if compare_to else ''),
              '|---|---|---|---|---|---|' + ('---|' if compare_to else '')]
    most_seeds = max((len(r.get('seeds', ())) for r in rows.values()), default=0)
    for model, r in rows.items():
      ref = paper.get(int(k), {}).get(model)
      cells = [f'{r[m][0]:.2f}' + ('' if np.isnan(r[m][1]) else f' ± {r[m][1]:.2f}')
               + (f' [{ref[i]:.2f}]' if ref else '')
               for i, m in enumerate(('neg_log_px', 'inference_gap', 'neg_bound'))]
      for name in gains:
        gain = r.get(name)
        cells.append('—' if gain is None else f'{gain[0]:+.2f} ± {gain[1]:.2f}')
      setting = selection[k].get(model, {}).get('setting', '—')
      if len(r.get('seeds', ())) < most_seeds:  # --notrain: some seeds not finished
        setting += f' (seeds {", ".join(str(seed) for seed in r["seeds"])})'
      lines.append(f'| {label(model, int(k))} | {setting} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def sweep_figures(sweep: dict, directory: str) -> None:
  """Figure 1 (k = 1, absolute test log p(x)) and Figure 2 (every k, minus the baseline), for
  the regularizers in the sweep; Figure 1 only if the sweep has k = 1. A k without the
  baseline is left out, and each k plots the grid points it has."""
  sweep = {k: by_model for k, by_model in sweep.items() if 'base' in by_model}
  regularizers = [m for m in MODELS if MODELS[m][2] and any(m in by for by in sweep.values())]
  if not regularizers:
    return
  figures = [('figure1', False)] if any(int(k) == 1 for k in sweep) else []
  for name, relative in figures + [('figure2', True)]:
    fig, axes = plt.subplots(1, len(regularizers), figsize=(4 * len(regularizers), 3.3),
                             squeeze=False)
    for ax, model in zip(axes[0], regularizers):
      grid_values = set()
      for k, by_model in sweep.items():
        if (not relative and int(k) != 1) or model not in by_model:
          continue
        base = by_model['base']['0']['test']
        values = sorted(by_model[model], key=float)
        grid_values.update(float(v) for v in values)
        y = np.array([by_model[model][v]['test'] for v in values])
        ax.plot([float(v) for v in values], y - base if relative else y, 'o-', label=f'k = {k}')
        ax.axhline(0.0 if relative else base, color='gray', lw=0.8, ls='--')
      hyper = MODELS[model][2]
      ax.set_xscale('log')
      ax.minorticks_off()
      ax.set_xticks(sorted(grid_values), [f'{v:g}' for v in sorted(grid_values)])
      if hyper == 'encoder_max_norm':
        ax.invert_xaxis()  # smaller H = stronger regularization, to the right like sigma
      ax.set_xlabel('noise std σ' if hyper == 'denoise_sigma' else 'weight-norm bound H')
      ax.set_title(MODELS[model][0])
      ax.set_ylabel('test ln p(x) − baseline' if relative else 'test ln p(x)')
      ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(directory, f'{name}.png'), dpi=110)
    plt.close(fig)
