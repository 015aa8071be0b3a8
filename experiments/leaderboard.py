r"""Every method on one protocol: test log p(x), cost and a paired comparison with IWAE.

  python -m experiments.leaderboard --workdir=runs/leaderboard --data_dir=../shared/data

runs each entry of `experiments/configs/leaderboard.py` (every registered method with its
paper's settings, plus WNI) on each dataset, K column and seed under the protocol printed
at the top of the table, each run an ordinary `experiments.train` workdir under
DIR/runs/DATASET/kK/ENTRY/seedS (so a killed leaderboard resumes where it stopped), then
times every entry's training step against IWAE's at the same K in this process, and writes
DIR/leaderboard.json, DIR/leaderboard.md and DIR/leaderboard.png (log p(x) against step
cost). `--budget=full` is the accelerator protocol (K = 5 and 50, up to 1,000 epochs, test
K = 5,000); `--budget=cpu` (default) K = 5, 4 MNIST / 40 Caltech epochs, test K = 1,000.

The paired comparison with IWAE takes, for each seed, the mean over test points of
log p(x) minus IWAE's log p(x) of the same seed, then the mean over seeds +- its standard
error over seeds: "beats IWAE" when that interval excludes 0.
"""
import os
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from avi import data as data_lib
from avi import train
from avi import workdir as workdir_lib
from experiments import leaderboard_tables as tables
from experiments import timing
from experiments.configs import leaderboard as protocol

_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.', required=True)
_DATASETS = flags.DEFINE_list('datasets', ['binarized_mnist', 'caltech101_silhouettes'],
                              'Datasets (names of avi.data, or .npz paths).')
_ENTRIES = flags.DEFINE_list('methods', list(protocol.ENTRIES),
                             'Entries of experiments/configs/leaderboard.py (iwae is always run: '
                             'it is the reference).')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Training seeds.')
_BUDGET = flags.DEFINE_enum('budget', 'cpu', list(protocol.BUDGETS), 'Protocol budget.')
_DATA_DIR = flags.DEFINE_string('data_dir', '', 'Local data files ("" -> $AVI_DATA_DIR).')
_EPOCHS = flags.DEFINE_integer('epochs', 0, 'Override the budget\'s epochs (e.g. for a smoke '
                               'test); 0 = the budget\'s.')
_EVAL_K = flags.DEFINE_integer('eval_k', 0, 'Override the budget\'s test K; 0 = the budget\'s.')
_STEP_SECONDS = flags.DEFINE_float('step_seconds', 2.0, 'Timed seconds per step-cost row.')


def step_costs(entries, k: int, dataset: data_lib.Dataset, budget: dict, min_seconds: float,
               cache_path: str) -> dict[str, float]:
  """{entry: seconds per training step} at batch 100 and this K on this process's devices,
  cached in `cache_path` by (K, entry)."""
  cache = workdir_lib.read_json(cache_path) if os.path.exists(cache_path) else {}
  for entry in entries:
    key = f'{k}/{entry}'
    if key not in cache:
      config = tables.run_config(entry, dataset.name, k, 0, budget)
      run = train.setup(config, dataset)
      cache[key] = timing.time_train_step(
          run.loss_fn, run.tx, run.params, dataset.splits['train'][:config.batch_size],
          min_seconds, run.model.group_norms)
      workdir_lib.write_json(cache_path, cache)
  return {entry: cache[f'{k}/{entry}'] for entry in entries}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  budget, seeds = protocol.BUDGETS[_BUDGET.value], [int(s) for s in _SEEDS.value]
  entries = ['iwae'] + [e for e in _ENTRIES.value if e != 'iwae']
  for entry in entries:
    tables.run_config(entry, 'binarized_mnist', budget['ks'][0], 0, budget)  # fails early
  workdir, t0 = _WORKDIR.value, time.time()
  os.makedirs(workdir, exist_ok=True)
  protocol_text = tables.protocol_text(_BUDGET.value, budget, seeds, _EPOCHS.value,
                                       _EVAL_K.value)
  board = {'budget': _BUDGET.value, 'protocol': protocol_text, 'tables': [], 'runs': {},
           'wall_seconds': 0.0}
  print(board['protocol'])
  for dataset_name in _DATASETS.value:
    dataset = data_lib.load(dataset_name, _DATA_DIR.value or None)
    for k in budget['ks']:
      results, per_example = {}, {}
      for entry in entries:
        for seed in seeds[:budget['max_seeds'].get(entry, len(seeds))]:
          config = tables.run_config(entry, dataset_name, k, seed, budget, _DATA_DIR.value,
                                     _EPOCHS.value, _EVAL_K.value)
          path = tables.run_dir(workdir, dataset_name, k, entry, seed)
          print(f'{dataset.name} K={k} {entry} seed {seed}: {path}')
          r = train.train_and_evaluate(config, path, dataset, log=lambda s: print('  ' + s))
          results.setdefault(entry, []).append(r)
          per_example.setdefault(entry, []).append(
              np.load(os.path.join(path, 'test_per_example.npz'))['log_px'])
          board['runs'][path] = r['evaluation']['test']['log_px']
          board['wall_seconds'] += r['train_seconds'] + r['eval_seconds']
      costs = step_costs(entries, k, dataset, budget, _STEP_SECONDS.value,
                         os.path.join(workdir, 'step_seconds.json'))
      rows = [tables.summarize(e, results[e], per_example[e], per_example['iwae'],
                               costs[e] / costs['iwae']) for e in entries]
      rows.sort(key=lambda r: -r['log_px'][0])
      board['tables'].append({'dataset': dataset.name, 'k': k, 'rows': rows,
                              'step_seconds': costs})
  workdir_lib.write_json(os.path.join(workdir, 'leaderboard.json'), board)
  text = tables.markdown(board)
  with open(os.path.join(workdir, 'leaderboard.md'), 'w') as f:
    f.write(text)
  tables.plot(board, os.path.join(workdir, 'leaderboard.png'))
  print(text)
  print(f'{time.time() - t0:.0f} s; {workdir}/leaderboard.md')


if __name__ == '__main__':
  app.run(main)
