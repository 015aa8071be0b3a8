r"""Re-evaluates the latest checkpoint of a training run.

  python -m experiments.evaluate --workdir=runs/quickstart --k=5000

Writes DIR/evaluation_k{K}.json with the same summaries as results.json.
"""
import json
import os

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections

from avi import data as data_lib
from avi import train

_WORKDIR = flags.DEFINE_string('workdir', None, 'A directory written by experiments.train.',
                               required=True)
_K = flags.DEFINE_integer('k', 5000, 'Particles of the importance-sampling estimate.')
_SPLITS = flags.DEFINE_list('splits', ['test'], 'Splits to evaluate.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the evaluation particles.')


def main(argv):
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  del argv
  path = os.path.join(_WORKDIR.value, 'config.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: is {_WORKDIR.value} a training workdir?')
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  dataset = data_lib.load(config.dataset, config.data_dir or None)
  model, params, step = train.restore_params(_WORKDIR.value, config, dataset)
  config.eval.num_samples = _K.value
  config.eval.splits = tuple(_SPLITS.value)
  unknown = set(config.eval.splits) - set(dataset.splits)
  if unknown:
    raise ValueError(f'unknown splits {sorted(unknown)}; '
                     f'{dataset.name} has {sorted(dataset.splits)}')
  results = {'settings': config.to_dict(), 'step': step, 'versions': train.versions(),
             'dataset': {'name': dataset.name, 'source': dataset.source,
                         'binarization': dataset.binarization}}
  reports = train.evaluate_splits(model, params, dataset, config, jax.random.key(_SEED.value))
  results['evaluation'] = {split: report['summary'] for split, report in reports.items()}
  out = os.path.join(_WORKDIR.value, f'evaluation_k{_K.value}.json')
  with open(out, 'w') as f:
    json.dump(results, f, indent=2)
  print(train.results_table(results))
  print(out)


if __name__ == '__main__':
  app.run(main)
