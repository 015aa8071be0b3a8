r"""Re-evaluates a training run: its best-on-valid params under early stopping, else its
latest checkpoint.

  python -m experiments.evaluate --workdir=runs/quickstart --k=5000

Writes DIR/evaluation_k{K}.json with the same summaries as results.json; with
--iw_svi_steps also each split's per-point IW-SVI estimates (DIR/iw_svi_{split}_k{K}.npz)
and, with --compare_to=OTHER (evaluated with the same flags), the gain over OTHER paired on
the points (e.g. two model selections of one training run). With --marginal_chains=M (models
with refinement transitions) it also splits the ELBO's gap into the marginal gap and the
auxiliary gap (`evaluation.marginal_elbo`) on the first --marginal_points points.
"""
import os

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from avi import data as data_lib
from avi import evaluation
from avi import iw_svi
from avi import reporting
from avi import train
from avi import workdir as workdir_lib
from experiments import air_tables

_WORKDIR = flags.DEFINE_string('workdir', None, 'A directory written by experiments.train.',
                               required=True)
_K = flags.DEFINE_integer('k', 5000, 'Particles of the importance-sampling estimate.')
_SPLITS = flags.DEFINE_list('splits', ['test'], 'Splits to evaluate.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the evaluation particles.')
_SVI_STEPS = flags.DEFINE_integer('iw_svi_steps', 0,
                                  'IW-SVI refinement steps per test point (Shu et al.); 0 = off.')
_SVI_K = flags.DEFINE_integer('iw_svi_k', 5, 'IW-SVI: k of the refined IWAE-k bound.')
_SVI_LR = flags.DEFINE_float('iw_svi_learning_rate', 3e-2, 'IW-SVI: Adam step size.')
_SVI_AMORTIZED_K = flags.DEFINE_integer('iw_svi_amortized_k', 1000, 'IW-SVI: particles of the '
                                        'amortized proposal (its ELBO).')
_MARGINAL_CHAINS = flags.DEFINE_integer(
    'marginal_chains', 0, 'Hierarchical (HVI) models: backward chains per particle of log q_T, '
    'splitting the gap log p(x) - ELBO into the marginal gap and the auxiliary gap '
    '(evaluation.marginal_elbo); 0 = off.')
_MARGINAL_PARTICLES = flags.DEFINE_integer('marginal_particles', 10,
                                           'Particles z_T per point of the marginal ELBO.')
_MARGINAL_POINTS = flags.DEFINE_integer('marginal_points', 1000, 'The marginal ELBO uses the '
                                        'first N points of each split.')
_COMPARE_TO = flags.DEFINE_string('compare_to', None, 'Another workdir evaluated with the same '
                                   'flags: the IW-SVI gain over it, paired on the points.')


def main(argv):
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  del argv
  iw_svi.check_settings(_SVI_STEPS.value, _SVI_K.value, _SVI_LR.value)
  per_point = lambda workdir, split: os.path.join(workdir, f'iw_svi_{split}_k{_K.value}.npz')
  if _COMPARE_TO.value:
    missing = [s for s in _SPLITS.value if not os.path.exists(per_point(_COMPARE_TO.value, s))]
    if not _SVI_STEPS.value or missing:
      raise app.UsageError(f'--compare_to needs --iw_svi_steps and per-point IW-SVI in '
                           f'{_COMPARE_TO.value} for every split (missing: {missing})')
  config = workdir_lib.saved_config(_WORKDIR.value)
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
  reports = reporting.evaluate_splits(model, params, dataset, config, jax.random.key(_SEED.value),
                                      log=print)
  results['evaluation'] = {split: report['summary'] for split, report in reports.items()}
  if _SVI_STEPS.value:
    results['iw_svi'] = {'steps': _SVI_STEPS.value, 'k': _SVI_K.value,
                         'learning_rate': _SVI_LR.value,
                         'amortized_num_samples': _SVI_AMORTIZED_K.value}
    for split in config.eval.splits:
      out = iw_svi.log_likelihood(
          model, params, reporting.eval_data(dataset, split, config),
          jax.random.fold_in(jax.random.key(_SEED.value), 7), _SVI_STEPS.value, _SVI_K.value,
          _SVI_LR.value, _K.value, config.eval.batch_size, config.eval.chunk_size,
          amortized_num_samples=_SVI_AMORTIZED_K.value)
      np.savez(per_point(_WORKDIR.value, split), **out)
      results['iw_svi'][split] = s = iw_svi.summarize(out)
      print(f'IW-SVI {split}: log p(x) {s["log_px"]["mean"]:.2f} ± {s["log_px"]["stderr"]:.2f}, '
            f'inference gap {s["inference_gap"]["mean"]:.2f}, '
            f'{len(s["nonfinite_examples"])} non-finite examples')
      if _COMPARE_TO.value:
        there = dict(np.load(per_point(_COMPARE_TO.value, split)))
        s['gain_over_compare'] = air_tables.paired_gain([out], [there])
        print(f'IW-SVI {split}: gain over {_COMPARE_TO.value} {s["gain_over_compare"][0]:+.2f} '
              f'± {s["gain_over_compare"][1]:.2f} (paired on the points)')
  if _MARGINAL_CHAINS.value:
    results['marginal'] = {}
    for split in config.eval.splits:
      x = reporting.eval_data(dataset, split, config)[:_MARGINAL_POINTS.value]
      gaps = evaluation.marginal_elbo(model, params, x, jax.random.fold_in(
          jax.random.key(_SEED.value), 8), _MARGINAL_PARTICLES.value, _MARGINAL_CHAINS.value,
          config.eval.batch_size)
      gaps['marginal_gap'] = (reports[split]['per_example']['log_px'][:len(x)]
                              - gaps['marginal_elbo'])
      results['marginal'][split] = s = {name: evaluation.mean_and_stderr(v)
                                        for name, v in gaps.items()}
      s.update(num_particles=_MARGINAL_PARTICLES.value, num_chains=_MARGINAL_CHAINS.value)
      print(f'{split}, first {len(x)} points: ELBO {s["elbo"]["mean"]:.2f}, marginal ELBO '
            f'{s["marginal_elbo"]["mean"]:.2f}; log p(x) - ELBO = marginal gap '
            f'{s["marginal_gap"]["mean"]:.2f} + auxiliary gap {s["auxiliary_gap"]["mean"]:.2f} '
            f'± {s["auxiliary_gap"]["stderr"]:.2f}')
  out = os.path.join(_WORKDIR.value, f'evaluation_k{_K.value}.json')
  workdir_lib.write_json(out, results)
  print(reporting.results_table(results))
  print(out)


if __name__ == '__main__':
  app.run(main)
