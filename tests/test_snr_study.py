"""The SNR study at reduced size: the paper's scaling laws must already be visible."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avi import estimators
from avi import gaussian_model as gm
from avi import snr_study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def study():
  problem = gm.make_problem(jax.random.key(0), dim=4, num_data=32, offset_std=0.01)
  return problem, snr_study.run(problem, ('iwae', 'vae', 'dreg'), [1, 10, 100], 2000,
                                jax.random.key(1))


def _flat(g):
  return np.concatenate([np.ravel(g[leaf]) for leaf in snr_study.LEAVES])


def test_shared_draws_match_jax_grad_of_each_objective():
  """Every cell of a shared draw against jax.grad of its objective on the same particles."""
  problem = gm.make_problem(jax.random.key(0), dim=3, num_data=8, offset_std=0.3)
  x, params, key, budgets = problem.x, problem.params, jax.random.key(5), (1, 3, 7)
  # Room for 2 data points per chunk: 4 chunks, each with its own key.
  assert snr_study.data_chunk(8, 7, 3, max_elements=60) == 2
  family = snr_study.draw_fn(('iwae', 'dreg', 'stl'), budgets, x, max_elements=60)(params, key)
  vae = snr_study.draw_fn(('vae',), budgets, x, max_elements=60)(params, key)
  eps = jnp.concatenate([jax.random.normal(jax.random.fold_in(key, i), (7, 2, 3))
                         for i in range(4)], axis=1)
  for j, b in enumerate(budgets):
    log_w = lambda p, stop=False, b=b: gm.log_weights_from_noise(p, x, eps[:b], stop_q_grad=stop)
    g_iwae = jax.grad(lambda p: jnp.mean(jax.nn.logsumexp(log_w(p), 0)))(params)
    np.testing.assert_allclose(family[0, j], _flat(g_iwae), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vae[0, j], _flat(jax.grad(lambda p: jnp.mean(log_w(p)))(params)),
                               rtol=1e-5, atol=1e-6)
    for i, surrogate in ((1, estimators.dreg_inference), (2, estimators.stl_inference)):
      g = jax.grad(lambda p, s=surrogate: jnp.mean(s(log_w(p, True))))(params)
      np.testing.assert_allclose(family[i, j], _flat({**g, 'mu': g_iwae['mu']}), rtol=1e-5,
                                 atol=1e-6)
  # DReG and STL differ wherever K > 1 (w~^2 against w~ weights).
  assert np.abs(family[1, 1:] - family[2, 1:]).max() > 1e-3


def test_streaming_moments_equal_the_batch_statistics():
  draws = np.random.default_rng(0).normal(3.0, 2.0, (1003, 2, 5))
  state = {'n': 0, 'mean': np.zeros((2, 5)), 'm2': np.zeros((2, 5)),
           'kept': np.zeros((0, 2, 5), np.float32)}
  update = snr_study._update  # pylint: disable=protected-access
  for lo in range(0, 1003, 97):
    state = update(state, draws[lo:lo + 97], num_kept=150)
  np.testing.assert_allclose(state['mean'], draws.mean(0), rtol=1e-12)
  np.testing.assert_allclose(state['m2'] / 1002, draws.var(0, ddof=1), rtol=1e-12)
  np.testing.assert_allclose(state['kept'], draws[:150], rtol=1e-6)


@pytest.mark.slow
def test_shared_and_independent_draws_agree():
  """Per-cell SNR of the two designs within their standard errors (independent keys)."""
  problem = gm.make_problem(jax.random.key(0), dim=4, num_data=32, offset_std=0.01)
  num_draws, names, budgets = 1500, ('iwae', 'vae', 'dreg'), [1, 16]
  runs = [snr_study.run(problem, names, budgets, num_draws, jax.random.key(seed), shared=shared)
          for seed, shared in ((1, True), (2, False))]
  for name in names:
    for leaf in ('mu', 'b'):
      snr = [np.asarray(r[name][f'snr_{leaf}']) for r in runs]
      # Standard error of an SNR estimate from R Gaussian draws: sqrt((1 + SNR^2 / 2) / R).
      se = np.sqrt(sum((1 + s**2 / 2) / num_draws for s in snr))
      z = np.abs(snr[0] - snr[1]) / se
      assert z.max() < 4.5 and z.mean() < 1.3, (name, leaf, z)


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_the_same_results(tmp_path):
  problem = gm.make_problem(jax.random.key(0), dim=2, num_data=8)
  args = (problem, ('iwae', 'vae', 'stl'), [1, 4], 60, jax.random.key(1))
  kwargs = {'block_size': 25, 'num_kept': 30}
  whole = snr_study.run(*args, workdir=str(tmp_path / 'whole'), **kwargs)

  class Killed(Exception):
    pass

  lines = []

  def log_then_kill(line):
    lines.append(line)
    if len(lines) == 5:  # mid-way through the second pass
      raise Killed

  with pytest.raises(Killed):
    snr_study.run(*args, workdir=str(tmp_path / 'killed'), log=log_then_kill, **kwargs)
  assert os.path.exists(tmp_path / 'killed/snr_state/vae.npz')
  lines.clear()
  resumed = snr_study.run(*args, workdir=str(tmp_path / 'killed'), log=lines.append, **kwargs)
  assert lines[0] == 'iwae_stl: cells already in %s/snr_cells, skipped' % (tmp_path / 'killed')
  assert not any(line.startswith('vae: 25/60') for line in lines)  # resumed past block 1
  assert json.dumps(resumed) == json.dumps(whole)
  with pytest.raises(ValueError, match='other num_draws'):
    snr_study.run(problem, ('iwae',), [1, 4], 80, jax.random.key(1),
                  workdir=str(tmp_path / 'whole'))


@pytest.mark.slow
def test_snr_scaling_laws(study):
  _, results = study
  # Rainforth et al., eq. 7: SNR(phi) = O(sqrt(M / K)); SNR(theta) grows with M.
  assert -0.7 < results['iwae']['slope_snr_b'] < -0.3
  assert 0.3 < results['vae']['slope_snr_b'] < 0.7
  assert 0.3 < results['vae']['slope_snr_mu'] < 0.7
  # DReG's inference-network SNR does not fall with K (Tucker et al. 2019).
  assert results['dreg']['slope_snr_b'] > -0.1
  # DReG's mu-gradient is IWAE's, and both see the same particles (common random numbers).
  np.testing.assert_allclose(results['dreg']['snr_mu'], results['iwae']['snr_mu'], rtol=1e-4)


def test_rmse_falls_and_k1_matches_closed_form():
  problem = gm.make_problem(jax.random.key(0), dim=4, num_data=32, offset_std=0.01)
  results = snr_study.run(problem, ('iwae',), [1, 10, 100], 2000, jax.random.key(1))
  rmse = results['iwae']['rmse_mu']
  assert rmse[0] > rmse[1] > rmse[2]
  k1 = {f: results['iwae'][f][0] for f in ('mean_grad_mu', 'mean_grad_b', 'snr_mu', 'snr_b')}
  check = snr_study.elbo_gradient_check(problem, k1, 2000)
  assert check['mu']['max_abs_z'] < 4.5 and check['b']['max_abs_z'] < 4.5
  assert 0.3 < check['mu']['mean_abs_z'] < 1.5  # ~0.8 for standard-normal errors
  # A wrong reference is caught: shift the closed form by 10 standard errors.
  shifted = dict(k1, mean_grad_mu=(np.asarray(k1['mean_grad_mu'])
                                   + 10 * np.abs(k1['mean_grad_mu']) / np.asarray(k1['snr_mu'])
                                   / np.sqrt(2000)).tolist())
  assert snr_study.elbo_gradient_check(problem, shifted, 2000)['mu']['max_abs_z'] > 5


def test_bad_inputs():
  problem = gm.make_problem(jax.random.key(0), dim=2, num_data=4)
  with pytest.raises(ValueError, match='budgets must not be empty'):
    snr_study.run(problem, ('iwae',), [], 10, jax.random.key(0))
  with pytest.raises(ValueError, match='budgets must be >= 1'):
    snr_study.run(problem, ('iwae',), [0, 1], 10, jax.random.key(0))
  with pytest.raises(ValueError, match="unknown estimator 'rws'"):
    snr_study.run(problem, ('rws',), [1], 10, jax.random.key(0))
  with pytest.raises(ValueError, match='num_kept must be >= 2'):
    snr_study.run(problem, ('iwae',), [1], 10, jax.random.key(0), num_kept=1)


def test_optimization_moves_towards_the_optimum():
  problem = gm.make_problem(jax.random.key(2), dim=3, num_data=64)
  out = snr_study.optimize(problem.x, 1, 5, jax.random.key(3), steps=600, learning_rate=5e-2)
  assert out['dist_theta'][-1] < 0.3 * out['dist_theta'][0]
  assert out['dist_phi'][-1] < 0.5 * out['dist_phi'][0]
  assert out['bound'][-1] > out['bound'][0]


@pytest.mark.slow
def test_binary_end_to_end(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.snr', f'--workdir={tmp_path}', '--dim=3',
       '--num_data=16', '--num_estimates=200', '--budgets=1,4,16', '--optimization_steps=50',
       '--optimization_mk=1x1,1x4'], cwd=ROOT, capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.load(open(tmp_path / 'results.json'))
  for name in ('iwae', 'vae', 'dreg', 'stl'):
    e = results['estimators'][name]
    assert e['budget'] == [1, 4, 16] and len(e['snr_mu'][0]) == 3 and len(e['snr_b']) == 3
    for field in ('K', 'M', 'snr_A', 'dsnr', 'dsnr_ref', 'rmse_mu', 'mean_grad_mu',
                  'mean_grad_b', 'slope_snr_mu', 'slope_snr_b'):
      assert field in e
  assert results['estimators']['vae']['M'] == [1, 4, 16]
  assert set(np.load(tmp_path / 'problem.npz').files) >= {'x', 'mu_true', 'mu', 'A', 'b'}
  for n in range(2, 8):
    assert (tmp_path / f'figure{n}.png').exists()


@pytest.mark.parametrize('flag, message', [
    ('--budgets=', 'must not be empty'), ('--budgets=0,3', 'must all be >= 1'),
    ('--num_estimates=0', 'num_estimates must be >= 1'), ('--dim=0', 'dim must be >= 1'),
    ('--offset_std=-1', 'offset_std must be >= 0'), ('--estimators=rws', "unknown estimator"),
    ('--num_kept_draws=1', 'num_kept_draws must be >= 2'), ('--block_size=0', 'block_size'),
])
def test_binary_bad_flags(tmp_path, flag, message):
  proc = subprocess.run([sys.executable, '-m', 'experiments.snr', f'--workdir={tmp_path}', flag],
                        cwd=ROOT, capture_output=True, text=True, check=False)
  assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
  assert not (tmp_path / 'problem.npz').exists()
