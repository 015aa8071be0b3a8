r"""Gradient SNR of IWAE, VAE, DReG and STL on the Gaussian model (Rainforth et al. 2018).

  python -m experiments.snr --workdir=runs/snr                       # Figures 2-6, main text
  python -m experiments.snr --workdir=runs/snr --noshared_draws      # one draw per cell, as before
  python -m experiments.snr --workdir=runs/snr_appc --offset_std=0.5 --proposal_var=1.0
  python -m experiments.snr --workdir=runs/snr_opt --optimization_steps=5000   # also Figure 7

Writes DIR/problem.npz, DIR/results.json, DIR/histograms.npz and DIR/figure{2..7}.png, and
DIR/progress.log (a line per block of draws, with ETAs). A killed sweep resumes: rerun the same
command (finished cells are in DIR/snr_cells, running passes in DIR/snr_state).
"""
import json
import os
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from avi import gaussian_model as gm
from avi import snr_study
from experiments import snr_figures

_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.', required=True)
_DIM = flags.DEFINE_integer('dim', 20, 'D.')
_NUM_DATA = flags.DEFINE_integer('num_data', 1024, 'N data points.')
_NUM_ESTIMATES = flags.DEFINE_integer('num_estimates', 10_000, 'R gradient draws per cell.')
_BUDGETS = flags.DEFINE_list('budgets', ['1', '3', '10', '30', '100', '300', '1000'],
                             'Budgets MK.')
_OFFSET_STD = flags.DEFINE_float('offset_std', 0.01, 's: parameter offset from the optimum.')
_PROPOSAL_VAR = flags.DEFINE_float('proposal_var', gm.DEFAULT_PROPOSAL_VAR, 'sigma_q^2.')
_ESTIMATORS = flags.DEFINE_list('estimators', list(snr_study.ESTIMATORS), 'Estimators.')
_SHARED = flags.DEFINE_bool(
    'shared_draws', True, 'IWAE/DReG/STL share particles, budgets nest (avi.snr_study); '
    '--noshared_draws draws every cell separately.')
_NUM_KEPT = flags.DEFINE_integer('num_kept_draws', 2000,
                                 'Draws per cell kept for histograms and DSNR.')
_BLOCK = flags.DEFINE_integer('block_size', 500, 'Draws per block (progress and checkpoint).')
_CHUNK = flags.DEFINE_integer(
    'chunk_elements', 2**19, 'Particle coordinates held at once (2^19 suits a CPU cache; '
    'larger on a GPU, e.g. 2^25). Part of the random stream: fixed for a workdir.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the problem and the draws.')
_SWEEP = flags.DEFINE_bool('sweep', True, 'Figures 2-6: the SNR sweep; --nosweep for Figure 7 only.')
_OPT_STEPS = flags.DEFINE_integer('optimization_steps', 0, 'Figure 7: Adam steps; 0 = skip.')
_OPT_LR = flags.DEFINE_float('optimization_learning_rate', 1e-2, 'Figure 7: Adam step size.')
# Figure 7's (M, K) pairs.
_OPT_PAIRS = flags.DEFINE_list('optimization_mk', ['1x1', '1x1000', '1000x1', '10x100'],
                               'Figure 7: MxK pairs.')


def check_flags() -> list[int]:
  """Every bad value fails here, before any work."""
  for name, value in (('dim', _DIM.value), ('num_data', _NUM_DATA.value),
                      ('num_estimates', _NUM_ESTIMATES.value)):
    if value < 1:
      raise app.UsageError(f'--{name} must be >= 1, got {value}')
  for name, value in (('block_size', _BLOCK.value), ('chunk_elements', _CHUNK.value)):
    if value < 1:
      raise app.UsageError(f'--{name} must be >= 1, got {value}')
  if _NUM_ESTIMATES.value < 2:
    raise app.UsageError('--num_estimates must be >= 2 to estimate a standard deviation')
  if _NUM_KEPT.value < 2:
    raise app.UsageError(f'--num_kept_draws must be >= 2, got {_NUM_KEPT.value}')
  if not _BUDGETS.value:
    raise app.UsageError('--budgets must not be empty')
  budgets = [int(b) for b in _BUDGETS.value]
  if min(budgets) < 1:
    raise app.UsageError(f'--budgets must all be >= 1 (K, M >= 1), got {budgets}')
  if _OFFSET_STD.value < 0 or _PROPOSAL_VAR.value <= 0:
    raise app.UsageError('--offset_std must be >= 0 and --proposal_var > 0')
  for name in _ESTIMATORS.value:
    if name not in snr_study.ESTIMATORS:
      raise app.UsageError(f'unknown estimator {name!r}; known: {snr_study.ESTIMATORS}')
  for pair in _OPT_PAIRS.value:
    m, _, k = pair.partition('x')
    if not (m.isdigit() and k.isdigit() and int(m) >= 1 and int(k) >= 1):
      raise app.UsageError(f'--optimization_mk entries are MxK with M, K >= 1, got {pair!r}')
  return sorted(budgets)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  budgets = check_flags()
  os.makedirs(_WORKDIR.value, exist_ok=True)
  key = jax.random.key(_SEED.value)
  problem = gm.make_problem(jax.random.fold_in(key, 0), _DIM.value, _NUM_DATA.value,
                            _OFFSET_STD.value, _PROPOSAL_VAR.value)
  np.savez(os.path.join(_WORKDIR.value, 'problem.npz'), x=problem.x, mu_true=problem.mu_true,
           **{k: np.asarray(v) for k, v in problem.params.items()})
  out = {'settings': {'dim': _DIM.value, 'num_data': _NUM_DATA.value,
                      'num_estimates': _NUM_ESTIMATES.value, 'budgets': budgets,
                      'offset_std': _OFFSET_STD.value, 'proposal_var': _PROPOSAL_VAR.value,
                      'seed': _SEED.value, 'shared_draws': _SHARED.value,
                      'num_kept_draws': _NUM_KEPT.value, 'jax': jax.__version__,
                      'device': jax.devices()[0].device_kind}}
  if _SWEEP.value:
    out.update(sweep(problem, budgets, key))
    write(out)
    snr_figures.write_all(out, np.load(os.path.join(_WORKDIR.value, 'histograms.npz')), budgets,
                          _WORKDIR.value)
    for name in _ESTIMATORS.value:
      e = out['estimators'][name]
      print(f'{name}: slope of log SNR(b) {e["slope_snr_b"]:+.3f}, '
            f'SNR(mu) {e["slope_snr_mu"]:+.3f}')
    print(f'sweep {out["sweep_seconds"]:.0f} s; {_WORKDIR.value}/results.json')
  if _OPT_STEPS.value:
    start = time.time()
    out['optimization'] = {}
    for pair in _OPT_PAIRS.value:
      m, k = map(int, pair.split('x'))
      out['optimization'][pair] = [
          snr_study.optimize(problem.x, m, k, jax.random.fold_in(key, 100 + r), _OPT_STEPS.value,
                             _OPT_LR.value, _PROPOSAL_VAR.value) for r in range(3)]
    out['optimization_seconds'] = time.time() - start
    write(out)
    snr_figures.figure7(out['optimization'], os.path.join(_WORKDIR.value, 'figure7.png'))


def sweep(problem: gm.Problem, budgets: list[int], key: jax.Array) -> dict:
  """Figures 2-6: every estimator at every budget; histograms go to DIR/histograms.npz."""
  start = time.time()
  with open(os.path.join(_WORKDIR.value, 'progress.log'), 'a') as progress:

    def log(line):
      print(line, flush=True)
      progress.write(f'{time.strftime("%Y-%m-%d %H:%M:%S")} {line}\n')
      progress.flush()

    results = snr_study.run(problem, _ESTIMATORS.value, budgets, _NUM_ESTIMATES.value,
                            jax.random.fold_in(key, 1), shared=_SHARED.value,
                            num_kept=_NUM_KEPT.value, block_size=_BLOCK.value,
                            workdir=_WORKDIR.value, max_chunk_elements=_CHUNK.value, log=log)
  histograms = {f'{name}_{leaf}': np.asarray(results[name].pop(f'hist_{leaf}'))
                for name in _ESTIMATORS.value for leaf in ('mu0', 'b0')}
  np.savez(os.path.join(_WORKDIR.value, 'histograms.npz'), budgets=budgets, **histograms)
  checks = {}
  if 'iwae' in _ESTIMATORS.value and budgets[0] == 1:
    k1 = {f: results['iwae'][f][0] for f in ('mean_grad_mu', 'mean_grad_b', 'snr_mu', 'snr_b')}
    checks['k1_vs_closed_form_elbo_gradient'] = snr_study.elbo_gradient_check(
        problem, k1, _NUM_ESTIMATES.value)
  return {'sweep_seconds': time.time() - start, 'reference': results.pop('reference'),
          'estimators': {name: results[name] for name in _ESTIMATORS.value}, 'checks': checks}


def write(out: dict) -> None:
  with open(os.path.join(_WORKDIR.value, 'results.json'), 'w') as f:
    json.dump(out, f, indent=1)

if __name__ == '__main__':
  app.run(main)
