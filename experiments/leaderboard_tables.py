"""The leaderboard's runs and tables, without flags (`experiments.leaderboard` is the binary):
the config of each run, the per-entry summary with its paired comparison, the markdown table
and the figure."""
import math
import os

import ml_collections
import numpy as np

from avi import config as config_lib
from experiments.configs import leaderboard as protocol


def resolve(value, k: int):
  """An entry's setting: 'K' is the column's K and 'K/5' its fifth."""
  if value == 'K':
    return k
  if value == 'K/5':
    if k % 5:
      raise ValueError(f'K = {k} is not divisible into M = 5 groups')
    return k // 5
  return value


def run_config(entry: str, dataset: str, k: int, seed: int, budget: dict,
               data_dir: str = '', epochs: int = 0, eval_k: int = 0
               ) -> ml_collections.ConfigDict:
  """The experiments.train config of one leaderboard run."""
  if entry not in protocol.ENTRIES:
    raise ValueError(f'unknown leaderboard entry {entry!r}; entries: '
                     f'{", ".join(protocol.ENTRIES)}')
  method, settings = protocol.ENTRIES[entry]
  config = protocol.get_config()
  config.method, config.dataset, config.data_dir, config.seed = method, dataset, data_dir, seed
  config.k, config.num_samples = k, 1  # entries averaging M = K ELBO samples ignore k
  for field, value in settings.items():
    config_lib.set_field(config, field, resolve(value, k))
  max_epochs, every = budget['epochs'].get(dataset, budget['epochs']['other'])
  config.epochs = epochs or max_epochs
  config.eval_every_epochs = min(every, config.epochs)
  config.eval.num_samples = eval_k or budget['eval_k']
  return config


def run_dir(workdir: str, dataset: str, k: int, entry: str, seed: int) -> str:
  return os.path.join(workdir, 'runs', os.path.basename(dataset), f'k{k}', entry, f'seed{seed}')


def mean_and_stderr(values) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  stderr = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float('nan')
  return float(values.mean()), float(stderr)


def summarize(entry: str, results: list[dict], per_example: list[np.ndarray],
              reference: list[np.ndarray], step_ratio: float) -> dict:
  """One row: means over seeds +- standard errors over seeds, and the paired difference
  with the reference's per-example log p(x) `[N]` of the same seeds."""
  test = [r['evaluation']['test'] for r in results]
  stat = lambda name: mean_and_stderr([t[name]['mean'] for t in test])
  diffs = [np.mean(lp - ref) for lp, ref in zip(per_example, reference)]
  return {
      'entry': entry, 'method': results[0]['settings']['method'],
      'seeds': [r['settings']['seed'] for r in results],
      'log_px': stat('log_px'),
      'per_example_stderr': float(np.mean([t['log_px']['stderr'] for t in test])),
      'elbo': stat('elbo'), 'inference_gap': stat('inference_gap'),
      'active_units': float(np.mean([t['active_units'] for t in test])),
      'kl_to_prior': float(np.mean([t['kl_to_prior'] for t in test])),
      'step_cost_vs_iwae': step_ratio,
      'wall_seconds': float(np.mean([r['train_seconds'] + r['eval_seconds'] for r in results])),
      'best_epochs': [r.get('early_stopping', {}).get('best_epoch') for r in results],
      'minus_iwae': mean_and_stderr(diffs),
  }


def protocol_text(budget_name: str, budget: dict, seeds, epochs: int, eval_k: int) -> str:
  config = protocol.get_config()
  epochs_text = ', '.join(f'{epochs or e} epochs on {d} (valid check every '
                          f'{min(v, epochs or e)})' for d, (e, v) in budget['epochs'].items())
  return (f'Protocol (`--budget={budget_name}`): {config.architecture} architecture (2x200 '
          f'tanh MLPs, 50-d latent), Adam {config.learning_rate:g} (eps {config.adam_eps:g}), '
          f'batch {config.batch_size}, K = {", ".join(map(str, budget["ks"]))} particles per '
          f'data point in training; at most {epochs_text}, early stopping on the valid '
          f'log p(x) (K = {config.eval.periodic_num_samples} on '
          f'{config.eval.periodic_num_points} points, patience {config.early_stopping.patience}),'
          f' best-on-valid params scored; test log p(x) by importance sampling with K = '
          f'{eval_k or budget["eval_k"]} on the full test split; seeds '
          f'{", ".join(map(str, seeds))}' + ''.join(
              f'; {entry}: the first {n} only (its cost)'
              for entry, n in budget['max_seeds'].items()) + '.')


def fmt(pair, digits: int = 2) -> str:
  """mean ± standard error; one seed has none."""
  mean, stderr = pair
  return f'{mean:.{digits}f}' + ('' if math.isnan(stderr) else f' ± {stderr:.{digits}f}')


def markdown(board: dict) -> str:
  lines = [f'# Leaderboard ({board["budget"]} budget)', '', board['protocol'], '']
  for table in board['tables']:
    lines += [f'## {table["dataset"]}, K = {table["k"]}', '',
              '| rank | entry | test log p(x) | per-example s.e. | minus IWAE (paired) | ELBO | '
              'gap | AU | KL | step / IWAE | wall (s) | seeds | best epochs |',
              '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for rank, r in enumerate(table['rows'], 1):
      paired = '(reference)' if r['entry'] == 'iwae' else fmt(r['minus_iwae'])
      lines.append(
          f'| {rank} | {r["entry"]} | {fmt(r["log_px"])} | {r["per_example_stderr"]:.2f} | '
          f'{paired} | {fmt(r["elbo"])} | {fmt(r["inference_gap"])} | '
          f'{r["active_units"]:.1f} | {r["kl_to_prior"]:.1f} | {r["step_cost_vs_iwae"]:.2f} | '
          f'{r["wall_seconds"]:.0f} | {len(r["seeds"])} | '
          f'{", ".join(map(str, r["best_epochs"]))} |')
    lines.append('')
  lines.append(f'Wall time of all runs: {board["wall_seconds"] / 60:.0f} min (training and '
               'evaluation, summed over runs).')
  return '\n'.join(lines) + '\n'


def plot(board: dict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  tables = board['tables']
  fig, axes = plt.subplots(1, len(tables), figsize=(6 * len(tables), 4.5), squeeze=False)
  for ax, table in zip(axes[0], tables):
    for r in table['rows']:
      ax.errorbar(r['step_cost_vs_iwae'], r['log_px'][0], yerr=r['log_px'][1], fmt='o',
                  capsize=3)
      ax.annotate(r['entry'], (r['step_cost_vs_iwae'], r['log_px'][0]), fontsize=8,
                  xytext=(4, 2), textcoords='offset points')
    ax.set(xscale='log', xlabel='training step time / IWAE\'s', ylabel='test log p(x)',
           title=f'{table["dataset"]}, K = {table["k"]}')
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
