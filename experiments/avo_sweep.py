r"""Robustness of HVI to beta-annealing (Huang et al. 2018, Sec. 5.3, Figure 4).

Six energies x annealing fractions x seeds, HVI-ELBO and HVI-AVO. For each energy
and objective, every (seed, fraction) run is trained in one compiled, vmapped
call; the KL of each learned q_T is then estimated as in experiments.avo_toy.

The paper's protocol (10 seeds, 2000 steps, KL from 2000 x 2000 samples):
  python -m experiments.avo_sweep --workdir=runs/avo_sweep

DIR/<energy>_<objective>.json holds each cell (a rerun skips finished cells);
DIR/results.json the table (KL mean ± SE over seeds per fraction, and for energy
(d) each seed's mode coverage), DIR/figure4.png the figure.
"""
import json
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from avi import energies  # pylint: disable=wrong-import-position
from avi import energy_fit  # pylint: disable=wrong-import-position
from avi import evaluation  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.', required=True)
_ENERGIES = flags.DEFINE_list('energies', list(energies.NAMES), 'Energies a..f.')
_OBJECTIVES = flags.DEFINE_list('objectives', ['elbo', 'avo'], 'Objectives.')
_FRACTIONS = flags.DEFINE_list('fractions', ['0', '0.25', '0.5', '0.75', '1'],
                               'beta-annealing fractions of training.')
_NUM_SEEDS = flags.DEFINE_integer('num_seeds', 10, 'Seeds 0..N-1 per cell.')
_T = flags.DEFINE_integer('num_transitions', 10, 'Refinement transitions T.')
_STEPS = flags.DEFINE_integer('steps', 2000, 'Adam steps.')
_BATCH = flags.DEFINE_integer('batch_size', 64, 'Chains per step.')
_LR = flags.DEFINE_float('learning_rate', 1e-3, 'Adam learning rate.')
_HIDDEN = flags.DEFINE_integer('hidden', 64, 'Hidden units of each transition.')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 2000, 'q_T samples per run for the KL.')
_NUM_INNER = flags.DEFINE_integer('kl_inner_samples', 2000, 'Backward chains per sample.')
_CHUNK = flags.DEFINE_integer('chunk_size', 200, 'Backward chains per chunk.')


def run_cell(settings: energy_fit.Settings, fractions: list[float], num_seeds: int) -> dict:
  """All seeds x fractions of one energy and objective. Seed s uses key(s) for every fraction."""
  seeds = np.repeat(np.arange(num_seeds), len(fractions))
  fracs = jnp.asarray(np.tile(fractions, num_seeds), jnp.float32)
  keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
  fit = jax.jit(jax.vmap(lambda k, f: energy_fit.fit(settings, jax.random.fold_in(k, 0), f)))
  params, losses = fit(keys, fracs)
  op = energy_fit.operator(settings)
  log_f = lambda z: energies.log_density(settings.energy, z)

  @jax.jit
  def evaluate(run):  # one run's q_T samples and per-sample log q_T(z) - log f(z)
    p, k = run
    z = energy_fit.sample(settings, p, jax.random.fold_in(k, 1), _NUM_SAMPLES.value)[-1]
    log_q = evaluation.hvi_log_marginal(op, p, z, jax.random.fold_in(k, 2), _NUM_INNER.value,
                                          chunk_size=_CHUNK.value)
    return z, log_q - log_f(z)

  samples, gaps = jax.lax.map(evaluate, (params, keys))
  kl = np.asarray(gaps).mean(-1) + energies.log_normalizer(settings.energy)  # [runs]
  kl = kl.reshape(num_seeds, len(fractions))
  out = {'fractions': fractions, 'kl_per_seed': kl.tolist(),
         'kl_mean': kl.mean(0).tolist(),
         'kl_stderr': (kl.std(0, ddof=1) / np.sqrt(num_seeds)).tolist() if num_seeds > 1 else None,
         'nonfinite_losses': int((~np.isfinite(np.asarray(losses))).any(-1).sum())}
  if settings.energy == 'd':
    samples = np.asarray(samples).reshape(num_seeds, len(fractions), -1, 2)
    out['mode_coverage'] = [[energy_fit.mode_coverage(s).tolist() for s in by_seed]
                            for by_seed in samples]
  return out


def figure4(table: dict, path: str) -> None:
  names = list(table)
  fig, axes = plt.subplots(1, len(names), figsize=(3 * len(names), 3), squeeze=False)
  for ax, energy in zip(axes[0], names):
    for objective, cell in table[energy].items():
      x = 100 * np.asarray(cell['fractions'])
      y = -np.asarray(cell['kl_mean'])
      err = cell['kl_stderr'] or np.zeros_like(y)
      ax.errorbar(x, y, yerr=err, marker='o', capsize=2, label=f'HVI-{objective.upper()}')
    ax.set_title(f'energy ({energy})')
    ax.set_xlabel('% of training annealing β')
  axes[0, 0].set_ylabel('−KL(q_T || f) (higher is better)')
  axes[0, 0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv):
  del argv
  fractions = [float(f) for f in _FRACTIONS.value]
  if _NUM_SEEDS.value < 1:
    raise app.UsageError('--num_seeds must be >= 1')
  os.makedirs(_WORKDIR.value, exist_ok=True)
  table = {}
  for energy in _ENERGIES.value:
    table[energy] = {}
    for objective in _OBJECTIVES.value:
      settings = energy_fit.Settings(energy, objective, _T.value, _STEPS.value, _BATCH.value,
                                     _LR.value, _HIDDEN.value)
      for f in fractions:
        energy_fit.check(settings, f)
      path = os.path.join(_WORKDIR.value, f'{energy}_{objective}.json')
      if not os.path.exists(path):
        cell = run_cell(settings, fractions, _NUM_SEEDS.value)
        with open(path, 'w') as f:
          json.dump(cell, f)
      with open(path) as f:
        table[energy][objective] = json.load(f)
      kl = table[energy][objective]['kl_mean']
      print(f'({energy}) HVI-{objective.upper()}: KL by fraction ' +
            ' '.join(f'{v:.3f}' for v in kl), flush=True)
  settings = {name: flags.FLAGS[name].value for name in (
      'energies', 'objectives', 'fractions', 'num_seeds', 'num_transitions', 'steps',
      'batch_size', 'learning_rate', 'hidden', 'num_samples', 'kl_inner_samples')}
  with open(os.path.join(_WORKDIR.value, 'results.json'), 'w') as f:
    json.dump({'settings': settings, 'table': table}, f, indent=1)
  figure4(table, os.path.join(_WORKDIR.value, 'figure4.png'))


if __name__ == '__main__':
  app.run(main)
