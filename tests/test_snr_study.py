"""The SNR study at reduced size: the paper's scaling laws must already be visible."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from avi import gaussian_model as gm
from avi import snr_study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def study():
  problem = gm.make_problem(jax.random.key(0), dim=4, num_data=32, offset_std=0.01)
  return problem, snr_study.run(problem, ('iwae', 'vae', 'dreg'), [1, 10, 100], 2000,
                                jax.random.key(1))


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


def test_rmse_falls_and_k1_matches_closed_form(study):
  problem, results = study
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


def test_optimization_moves_towards_the_optimum():
  problem = gm.make_problem(jax.random.key(2), dim=3, num_data=64)
  out = snr_study.optimize(problem.x, 1, 5, jax.random.key(3), steps=600, learning_rate=5e-2)
  assert out['dist_theta'][-1] < 0.3 * out['dist_theta'][0]
  assert out['dist_phi'][-1] < 0.5 * out['dist_phi'][0]
  assert out['bound'][-1] > out['bound'][0]


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
])
def test_binary_bad_flags(tmp_path, flag, message):
  proc = subprocess.run([sys.executable, '-m', 'experiments.snr', f'--workdir={tmp_path}', flag],
                        cwd=ROOT, capture_output=True, text=True, check=False)
  assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
  assert not (tmp_path / 'problem.npz').exists()
