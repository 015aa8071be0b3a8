r"""HVI fitted to a 2-d toy energy with the ELBO or AVO (Huang et al. 2018, Sec. 5.2, Figure 3).

  python -m experiments.avo_toy --energy=d --objective=avo --num_transitions=10 \
      --steps=2000 --batch_size=64 --learning_rate=1e-3 --beta_anneal_fraction=0 \
      --seed=0 --workdir=runs/avo_toy_d

writes DIR/results.json (`kl_estimate` with its standard error, the log normalizer,
for energy (d) the fraction of samples within distance 1 of each mode, settings)
and DIR/samples.npy (q_T samples, `[num_samples, 2]`). --objective=elbo,avo
trains both, into DIR/elbo and DIR/avo. DIR/figure3.png shows the annealed
targets f_1..f_T and each objective's marginals q_t(z_t) per layer.
"""
import json
import os

from absl import app
from absl import flags
import jax
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from avi import avo  # pylint: disable=wrong-import-position
from avi import distributions as dist  # pylint: disable=wrong-import-position
from avi import energies  # pylint: disable=wrong-import-position
from avi import energy_fit  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.', required=True)
_ENERGY = flags.DEFINE_string('energy', 'd', 'Target energy, a..f (Appendix B).')
_OBJECTIVE = flags.DEFINE_list('objective', ['avo'], 'elbo, avo, or both (elbo,avo).')
_T = flags.DEFINE_integer('num_transitions', 10, 'Refinement transitions T.')
_STEPS = flags.DEFINE_integer('steps', 2000, 'Adam steps.')
_BATCH = flags.DEFINE_integer('batch_size', 64, 'Chains per step.')
_LR = flags.DEFINE_float('learning_rate', 1e-3, 'Adam learning rate.')
_HIDDEN = flags.DEFINE_integer('hidden', 64, 'Hidden units of each transition.')
_FRACTION = flags.DEFINE_float('beta_anneal_fraction', 0.0,
                               'Fraction of training over which beta rises from 0.01 to 1.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of initialization, training and evaluation.')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 2000, 'q_T samples saved and used by the KL.')
_NUM_INNER = flags.DEFINE_integer('kl_inner_samples', 2000,
                                  'Backward chains per sample in the log q_T estimate.')

PLOT_HALF_WIDTH = {'a': 4.0, 'b': 6.5, 'c': 4.0, 'd': 4.0, 'e': 6.0, 'f': 6.0}


def run(settings: energy_fit.Settings, workdir: str) -> tuple[dict, np.ndarray]:
  """Fits, samples, estimates the KL; writes results.json and samples.npy. Returns the
  results and every layer's samples `[T + 1, N, 2]`."""
  key = jax.random.key(_SEED.value)
  fit = jax.jit(lambda k: energy_fit.fit(settings, k, _FRACTION.value))
  params, losses = fit(jax.random.fold_in(key, 0))
  losses = np.asarray(losses)
  if not np.all(np.isfinite(losses)):
    raise FloatingPointError(f'non-finite loss at step {int(np.argmin(np.isfinite(losses)))}')
  zs = np.asarray(energy_fit.sample(settings, params, jax.random.fold_in(key, 1),
                                    _NUM_SAMPLES.value))
  kl = energy_fit.kl_estimate(settings, params, zs[-1], jax.random.fold_in(key, 2),
                              _NUM_INNER.value)
  results = {'settings': {**settings._asdict(), 'beta_anneal_fraction': _FRACTION.value,
                          'seed': _SEED.value},
             'kl_estimate': kl, 'final_loss': float(losses[-100:].mean())}
  if settings.energy == 'd':
    results['mode_coverage'] = energy_fit.mode_coverage(zs[-1]).tolist()
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=1)
  np.save(os.path.join(workdir, 'samples.npy'), zs[-1])
  return results, zs


def figure3(energy: str, num_transitions: int, layers: dict[str, np.ndarray], path: str) -> None:
  """Row 1: the annealed targets f_1..f_T; one row per objective: q_1..q_T histograms."""
  w = PLOT_HALF_WIDTH[energy]
  axis = np.linspace(-w, w, 200)
  grid = np.stack(np.meshgrid(axis, axis, indexing='xy'), -1)
  log_fT = np.asarray(energies.log_density(energy, grid))
  log_f0 = np.asarray(dist.standard_normal_log_prob(grid))
  alphas = np.asarray(avo.annealing_weights(num_transitions))
  rows = 1 + len(layers)
  fig, axes = plt.subplots(rows, num_transitions, figsize=(1.5 * num_transitions, 1.5 * rows),
                           squeeze=False)
  for t, alpha in enumerate(alphas):
    log_ft = alpha * log_fT + (1 - alpha) * log_f0
    axes[0, t].imshow(np.exp(log_ft - log_ft.max()), origin='lower', extent=(-w, w, -w, w))
    axes[0, t].set_title(f'f_{t + 1}', fontsize=8)
  for row, (name, zs) in enumerate(layers.items(), start=1):
    for t in range(num_transitions):
      axes[row, t].hist2d(zs[t + 1, :, 0], zs[t + 1, :, 1], bins=60, range=[[-w, w], [-w, w]])
    axes[row, 0].set_ylabel(f'HVI-{name.upper()}', fontsize=8)
  for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv):
  del argv
  objectives = _OBJECTIVE.value
  unknown = set(objectives) - set(energy_fit.OBJECTIVES)
  if unknown or not objectives:
    raise app.UsageError(f'--objective: unknown {sorted(unknown)}; use elbo, avo or elbo,avo')
  if _NUM_SAMPLES.value < 2 or _NUM_INNER.value < 1:
    raise app.UsageError('--num_samples must be >= 2 and --kl_inner_samples >= 1')
  layers = {}
  for objective in objectives:
    settings = energy_fit.Settings(_ENERGY.value, objective, _T.value, _STEPS.value,
                                   _BATCH.value, _LR.value, _HIDDEN.value)
    energy_fit.check(settings, _FRACTION.value)
    workdir = (_WORKDIR.value if len(objectives) == 1
               else os.path.join(_WORKDIR.value, objective))
    results, layers[objective] = run(settings, workdir)
    kl = results['kl_estimate']
    line = f'HVI-{objective.upper()}: KL {kl["kl"]:.3f} ± {kl["kl_stderr"]:.3f}'
    if 'mode_coverage' in results:
      line += ', mode coverage ' + ' '.join(f'{c:.3f}' for c in results['mode_coverage'])
    print(line)
  figure3(_ENERGY.value, _T.value, layers, os.path.join(_WORKDIR.value, 'figure3.png'))


if __name__ == '__main__':
  app.run(main)
