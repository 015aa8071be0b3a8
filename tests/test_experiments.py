"""The binaries end to end on tiny data, including a SIGKILL and resume; their timing helpers."""
import functools
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import timing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ['--method=iwae', '--k=3', '--epochs=3', '--batch_size=20', '--eval_k=40',
         '--learning_rate=1e-3', '--seed=1']


@pytest.fixture(scope='module')
def tiny_npz(tmp_path_factory):
  rng = np.random.default_rng(0)
  path = tmp_path_factory.mktemp('data') / 'tiny.npz'
  probs = rng.uniform(0.05, 0.6, 784)
  np.savez(path, **{s: (rng.random((n, 784)) < probs).astype(np.uint8)
                    for s, n in (('train', 400), ('valid', 40), ('test', 40))})
  return str(path)


def run(module, *flags, check=True):
  proc = subprocess.run([sys.executable, '-m', module, *flags], cwd=ROOT, capture_output=True,
                        text=True, check=False)
  if check:
    assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


@pytest.mark.slow
def test_train_then_evaluate(tiny_npz, tmp_path):
  workdir = str(tmp_path / 'run')
  out = run('experiments.train', f'--dataset={tiny_npz}', f'--workdir={workdir}', *FLAGS).stdout
  assert 'log p(x)' in out and 'test' in out
  results = json.load(open(os.path.join(workdir, 'results.json')))
  assert results['settings']['k'] == 3 and results['dataset']['binarization'] == 'static'
  assert set(results['evaluation']) == {'train', 'valid', 'test'}
  assert results['versions']['jax']
  out = run('experiments.evaluate', f'--workdir={workdir}', '--k=80', '--iw_svi_steps=20',
            '--iw_svi_k=5', '--iw_svi_learning_rate=1e-2', '--iw_svi_amortized_k=80').stdout
  assert 'IW-SVI test: log p(x)' in out
  evaluation = json.load(open(os.path.join(workdir, 'evaluation_k80.json')))
  assert evaluation['step'] == 60 and 'test' in evaluation['evaluation']
  svi = evaluation['iw_svi']['test']
  assert svi['nonfinite_examples'] == [] and svi['log_px']['num'] == 40
  # Refined proposals give a tighter estimate than the amortized one at the same K, on average.
  assert svi['log_px']['mean'] > svi['amortized_log_px']['mean'] - 0.2
  assert np.load(os.path.join(workdir, 'iw_svi_test_k80.npz'))['log_px'].shape == (40,)
  # Against itself (the same key), the paired gain is exactly 0.
  out = run('experiments.evaluate', f'--workdir={workdir}', '--k=80', '--iw_svi_steps=20',
            '--iw_svi_k=5', '--iw_svi_learning_rate=1e-2', '--iw_svi_amortized_k=80',
            f'--compare_to={workdir}').stdout
  assert f'gain over {workdir} +0.00 ± 0.00' in out
  proc = run('experiments.evaluate', f'--workdir={workdir}', f'--compare_to={tmp_path}',
             '--iw_svi_steps=2', check=False)
  assert proc.returncode != 0 and "missing: ['test']" in proc.stderr
  # More particles: a tighter (higher) estimate on average, within noise.
  k40 = results['evaluation']['test']['log_px']['mean']
  assert evaluation['evaluation']['test']['log_px']['mean'] > k40 - 0.5
  # experiments.rws_diagnosis on the same run (flag-free, so importable).
  from experiments import rws_diagnosis
  r = rws_diagnosis.diagnose(workdir, 'iwae', 10, num_draws=2)
  assert r['elbo'] <= r['is_from_q_log_px'] <= r['iw_svi_log_px'] + 0.1
  assert set(r['grad_norm_init']) == {'decoder', 'encoder'}
  assert all(v > 0 for v in r['grad_norm_trained'].values())


@pytest.mark.slow
def test_sigkill_and_resume_equals_uninterrupted(tiny_npz, tmp_path):
  flags = [f'--dataset={tiny_npz}', *FLAGS, '--epochs=6', '--checkpoint_every_steps=5']
  run('experiments.train', f'--workdir={tmp_path / "straight"}', *flags)
  workdir = tmp_path / 'killed'
  proc = subprocess.Popen([sys.executable, '-m', 'experiments.train', f'--workdir={workdir}',
                           *flags], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  ckpts = workdir / 'checkpoints'
  deadline = time.time() + 120
  while time.time() < deadline and not (
      ckpts.exists() and any(s.isdigit() and int(s) >= 15 for s in os.listdir(ckpts))):
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (workdir / 'results.json').exists(), 'the run finished before it could be killed'
  out = run('experiments.train', f'--workdir={workdir}', *flags)
  assert 'resumed from step' in out.stdout + out.stderr
  straight = json.load(open(tmp_path / 'straight' / 'results.json'))
  resumed = json.load(open(workdir / 'results.json'))
  assert resumed['evaluation'] == straight['evaluation']
  assert resumed['history'] == straight['history']


@pytest.mark.parametrize('flags, message', [
    (['--k=0'], 'k must be an integer >= 1'),
    (['--method=nope'], "unknown method 'nope'"),
    (['--dataset=nope'], "unknown dataset 'nope'"),
    (['--dataset=/no/such/file.npz'], 'dataset file not found'),
])
def test_bad_flags_fail_clearly(tmp_path, flags, message):
  proc = run('experiments.train', f'--workdir={tmp_path}', '--epochs=1', *flags, check=False)
  assert proc.returncode != 0 and message in proc.stderr


def test_evaluate_without_run(tmp_path):
  proc = run('experiments.evaluate', f'--workdir={tmp_path}', check=False)
  assert proc.returncode != 0 and f'is {tmp_path} a training workdir' in proc.stderr


@pytest.mark.slow
def test_rem_binary_end_to_end(tiny_npz, tmp_path):
  out = run('experiments.rem', f'--workdir={tmp_path}', f'--dataset={tiny_npz}', '--k=4',
            '--epochs=1', '--batch_size=20', '--eval_k=20', '--periodic_k=10', '--kl_ks=4',
            '--methods=rem_v1', '--kl_methods=rem_v1').stdout
  assert '| rem_v1 |' in out
  results = json.load(open(tmp_path / 'results.json'))
  assert set(results['table']) == {'rem_v1'}
  assert results['kl_to_prior']['rem_v1'].keys() == {'4'}
  assert 'test_log_px' in results['table']['rem_v1']['history']['1']
  assert (tmp_path / 'kl_vs_k.png').exists()
  proc = run('experiments.rem', f'--workdir={tmp_path}/bad', '--k=1', check=False)
  assert proc.returncode != 0 and 'REM needs --k >= 2' in proc.stderr


@pytest.mark.slow
def test_air_binary_end_to_end(tiny_npz, tmp_path):
  out = run('experiments.air', f'--workdir={tmp_path}', f'--dataset={tiny_npz}', '--epochs=1',
            '--table_ks=1', '--sweep_ks=1', '--sigmas=0.3', '--max_norms=4', '--seeds=0',
            '--batch_size=20', '--select_k=10', '--eval_k=20', '--iw_svi_steps=2',
            '--iw_svi_k=4', '--eval_points=10', '--eval_every_epochs=1', '--patience=1',
            '--warmup_epochs=1', '--selection=iw_svi').stdout
  assert '| DVAE (α = 0.5) | σ = 0.3 |' in out
  results = json.load(open(tmp_path / 'results.json'))
  assert set(results['sweep']) == {'1'} and set(results['sweep']['1']['wni']) == {'4'}
  assert results['sweep']['1']['wni']['4']['best_epoch'] == 1  # early stopping on valid
  # Selected on IW-SVI, the sweep (and so sigma, H and the figures) uses IW-SVI too.
  wni_run = tmp_path / 'runs' / 'wni_k1_H4_s0'
  wni_results = json.load(open(wni_run / 'results.json'))
  assert results['sweep']['1']['wni']['4']['valid'] == wni_results['early_stopping'][
      'best_valid_log_px']
  assert results['sweep']['1']['wni']['4']['test'] == json.load(open(wni_run / 'iw_svi.json'))[
      'log_px']['mean']
  assert results['sweep']['1']['wni']['4']['test_is'] == wni_results['evaluation']['test'][
      'log_px']['mean']
  run_settings = json.load(open(tmp_path / 'runs' / 'dvae_a0.5_k1_sigma0.3_s0' / 'results.json'))[
      'settings']
  assert run_settings['warmup']['steps'] == 20  # 1 epoch of 400 // 20 steps
  assert run_settings['early_stopping']['estimator'] == 'iw_svi'
  selection = json.load(open(tmp_path / 'runs' / 'base_k1_s0' / 'results.json'))['early_stopping']
  assert selection['metric'] == 'valid_iw_svi_log_px' and list(selection['valid_curve']) == ['1']
  assert len(results['tables']['1']['base']['per_seed']) == 1  # selection, rows: test_tables
  per_example = np.load(tmp_path / 'runs' / 'base_k1_s0' / 'iw_svi_per_example.npz')
  assert per_example['log_px'].shape == (10,) and per_example['nonfinite'].dtype == bool
  assert len(results['tables']['1']['wni']['gain_over_base']) == 2  # paired on the points
  assert (tmp_path / 'figure1.png').exists() and (tmp_path / 'figure2.png').exists()
  # Against its own runs (cached, so nothing retrains) every paired gain is exactly 0.
  out = run('experiments.air', f'--workdir={tmp_path}', f'--dataset={tiny_npz}', '--epochs=1',
            '--table_ks=1', '--sweep_ks=1', '--sigmas=0.3', '--max_norms=4', '--seeds=0',
            '--batch_size=20', '--select_k=10', '--eval_k=20', '--iw_svi_steps=2',
            '--iw_svi_k=4', '--eval_points=10', '--eval_every_epochs=1', '--patience=1',
            '--warmup_epochs=1', '--selection=iw_svi', f'--compare_to={tmp_path}').stdout
  assert f'gain over the same model in {tmp_path} |' in out
  tables = json.load(open(tmp_path / 'results.json'))['tables']['1']
  assert all(tables[m]['gain_over_compare'][0] == 0.0 for m in tables)
  # Subsets of the models, read back: their rows, the gain only where base ran too.
  for models in ('base,wni', 'wni'):
    (tmp_path / 'figure2.png').unlink(missing_ok=True)
    run('experiments.air', f'--workdir={tmp_path}', f'--dataset={tiny_npz}', '--epochs=1',
        '--table_ks=1', '--sweep_ks=1', '--sigmas=0.3', '--max_norms=4', '--seeds=0',
        '--batch_size=20', '--eval_k=20', '--iw_svi_steps=2', '--iw_svi_k=4',
        '--eval_points=10', '--eval_every_epochs=1', '--patience=1', '--warmup_epochs=1',
        '--selection=iw_svi', f'--models={models}')
    tables = json.load(open(tmp_path / 'results.json'))['tables']['1']
    assert list(tables) == models.split(',')
    assert ('gain_over_base' in tables['wni']) == ('base' in models)
    assert (tmp_path / 'figure2.png').exists() == ('base' in models)
  # A sweep without k = 1 has no Figure 1 (absolute at k = 1), only Figure 2.
  (tmp_path / 'figure1.png').unlink()
  run('experiments.air', f'--workdir={tmp_path}', f'--dataset={tiny_npz}', '--epochs=1',
      '--table_ks=2', '--sweep_ks=2', '--sigmas=0.3', '--max_norms=4', '--seeds=0',
      '--batch_size=20', '--eval_k=20', '--iw_svi_steps=2', '--iw_svi_k=4',
      '--eval_points=10', '--eval_every_epochs=1', '--patience=1', '--warmup_epochs=1',
      '--selection=iw_svi', '--models=base,wni')
  assert not (tmp_path / 'figure1.png').exists() and (tmp_path / 'figure2.png').exists()
  # --notrain reads back what has finished: sigma = 0.9 and seed 1 were never trained.
  run('experiments.air', f'--workdir={tmp_path}', f'--dataset={tiny_npz}', '--table_ks=1',
      '--sweep_ks=1', '--sigmas=0.3,0.9', '--max_norms=4', '--seeds=0,1', '--eval_k=20',
      '--iw_svi_steps=2', '--iw_svi_k=4', '--eval_points=10', '--selection=iw_svi',
      '--notrain')
  results = json.load(open(tmp_path / 'results.json'))
  assert set(results['sweep']['1']['dvae_a0.5']) == {'0.3'}
  assert all(row['seeds'] == [0] for row in results['tables']['1'].values())
  assert 'gain_over_base' in results['tables']['1']['wni']
  assert not (tmp_path / 'runs' / 'dvae_a0.5_k1_sigma0.9_s0').exists()
  assert not (tmp_path / 'runs' / 'base_k1_s1').exists()
  proc = run('experiments.air', f'--workdir={tmp_path}/empty', f'--dataset={tiny_npz}',
             '--notrain', check=False)
  assert proc.returncode != 0 and 'no finished run of the sweep' in proc.stderr
  proc = run('experiments.air', f'--workdir={tmp_path}/bad', '--models=wni,vae', check=False)
  assert proc.returncode != 0 and '--models=wni,vae: choose from base' in proc.stderr
  proc = run('experiments.air', f'--workdir={tmp_path}', f'--dataset={tiny_npz}', '--epochs=1',
             '--table_ks=1', '--sweep_ks=1', '--sigmas=0.3', '--max_norms=4', '--seeds=0',
             check=False)  # the runs were selected on IW-SVI
  assert proc.returncode != 0 and "selected on 'iw_svi', not --selection=is" in proc.stderr
  proc = run('experiments.air', f'--workdir={tmp_path}/bad', f'--compare_to={tmp_path}/bad',
             check=False)
  assert proc.returncode != 0 and 'has no results.json' in proc.stderr
  proc = run('experiments.air', f'--workdir={tmp_path}/bad', '--sigmas=-1', check=False)
  assert proc.returncode != 0 and 'denoise_sigma must be >= 0' in proc.stderr
  proc = run('experiments.air', f'--workdir={tmp_path}/bad', '--max_norms=0', check=False)
  assert proc.returncode != 0 and 'H must be > 0' in proc.stderr


@pytest.mark.slow
def test_avo_toy_binary(tmp_path):
  run('experiments.avo_toy', f'--workdir={tmp_path}', '--energy=d', '--objective=elbo,avo',
      '--steps=50', '--num_transitions=3', '--num_samples=100', '--kl_inner_samples=20')
  for objective in ('elbo', 'avo'):
    results = json.load(open(tmp_path / objective / 'results.json'))
    assert np.isfinite(results['kl_estimate']['kl']) and len(results['mode_coverage']) == 4
    assert np.load(tmp_path / objective / 'samples.npy').shape == (100, 2)
  assert (tmp_path / 'figure3.png').exists()
  for flags, message in ((['--energy=g'], "unknown energy 'g'"),
                         (['--num_transitions=0'], 'T must be >= 1'),
                         (['--beta_anneal_fraction=2'], r'fraction must lie in [0, 1]')):
    proc = run('experiments.avo_toy', f'--workdir={tmp_path}/bad', *flags, check=False)
    assert proc.returncode != 0 and message in proc.stderr


@pytest.mark.slow
def test_avo_sweep_binary(tmp_path):
  run('experiments.avo_sweep', f'--workdir={tmp_path}', '--energies=d,e', '--fractions=0,1',
      '--num_seeds=2', '--steps=30', '--num_transitions=2', '--num_samples=50',
      '--kl_inner_samples=10', '--chunk_size=10')
  table = json.load(open(tmp_path / 'results.json'))['table']
  assert np.array(table['e']['avo']['kl_per_seed']).shape == (2, 2)
  assert np.array(table['d']['elbo']['mode_coverage']).shape == (2, 2, 4)
  assert (tmp_path / 'figure4.png').exists()


@pytest.mark.slow
def test_avo_amortized_binary(tiny_npz, tmp_path):
  out = run('experiments.avo_amortized', f'--workdir={tmp_path}', f'--dataset={tiny_npz}',
            '--models=hvi_avo_0.5', '--num_transitions=2', '--epochs=1', '--eval_k=10',
            '--valid_k=4', '--warmup_epochs=1', '--train_subset=40', '--eval_every_epochs=1',
            '--patience=2', '--init_scale=0.1', '--min_scale=0.05',
            '--transition_hidden=16', '--decoder_steps=elbo',
            '--transition_lr_scale=0.3').stdout
  assert '| hvi_avo_0.5 |' in out  # the table's columns: test_tables
  table = json.load(open(tmp_path / 'results.json'))['table']
  assert set(table) == {'hvi_avo_0.5'}
  assert table['hvi_avo_0.5']['early_stopping']['best_epoch'] == 1
  valid = json.load(open(tmp_path / 'hvi_avo_0.5' / 'train_valid.json'))
  assert valid['evaluation']['valid']['num_samples'] == 4
  settings = json.load(open(tmp_path / 'hvi_avo_0.5' / 'results.json'))['settings']
  assert settings['warmup']['steps'] > 0
  assert (settings['hvi']['init_scale'], settings['hvi']['min_scale']) == (0.1, 0.05)
  assert (settings['hvi']['hidden'], settings['hvi']['decoder_steps']) == (16, 'elbo')
  assert settings['hvi']['learning_rate_scale'] == 0.3
  out = run('experiments.evaluate', f'--workdir={tmp_path}/hvi_avo_0.5', '--k=10',
            '--marginal_chains=5', '--marginal_particles=3', '--marginal_points=8').stdout
  assert 'test, first 8 points: ELBO' in out and 'auxiliary gap' in out
  gaps = json.load(open(tmp_path / 'hvi_avo_0.5' / 'evaluation_k10.json'))['marginal']['test']
  assert gaps['auxiliary_gap']['num'] == 8 and gaps['num_chains'] == 5
  assert gaps['elbo']['mean'] < gaps['marginal_elbo']['mean']
  proc = run('experiments.avo_amortized', f'--workdir={tmp_path}/bad', f'--dataset={tiny_npz}',
             '--models=hvi_avo_1.5', check=False)
  assert proc.returncode != 0 and 'avo_a' in proc.stderr


@pytest.mark.slow
def test_config_file_and_deprecated_flags_give_the_same_run(tiny_npz, tmp_path):
  flagged = run('experiments.train', f'--dataset={tiny_npz}', f'--workdir={tmp_path / "a"}',
                *FLAGS)
  assert '--method is deprecated: use --config.method' in flagged.stderr
  run('experiments.train', '--config=experiments/configs/quickstart.py',
      f'--config.dataset={tiny_npz}', f'--workdir={tmp_path / "b"}', '--config.method=iwae',
      '--config.k=3', '--config.epochs=3', '--config.batch_size=20',
      '--config.eval.num_samples=40', '--config.learning_rate=1e-3', '--config.seed=1')
  a, b = (json.load(open(tmp_path / d / 'results.json')) for d in 'ab')
  assert a['evaluation'] == b['evaluation'] and a['history'] == b['history']
  assert b['settings']['rem'] == {'eps': 1e-3, 'covariance': 'weighted'}  # the whole config


@pytest.mark.slow
def test_avo_noise_binary(tmp_path):
  run('experiments.avo_noise', f'--workdir={tmp_path}', '--steps=20', '--num_data=500',
      '--num_test=50', '--iwae_k=5', '--num_transitions=2')
  results = json.load(open(tmp_path / 'results.json'))
  assert set(results['models']) == {'iwae_prior', 'vae', 'hvi_avo'}
  assert all(np.isfinite(m['test_log_px']) for m in results['models'].values())


def test_interleaved_medians_times_every_call_in_every_round():
  calls = {'a': 0, 'b': 0}

  def call(name):
    calls[name] += 1
  out = timing.interleaved_medians({n: functools.partial(call, n) for n in calls}, 4, 0.0)
  assert calls == {'a': 1 + 4 * 3, 'b': 1 + 4 * 3}  # one compiling call, >= 3 per round
  assert all(v.shape == (4,) and (v >= 0).all() for v in out.values())


@pytest.mark.slow
def test_benchmark_binary(tmp_path):
  run('experiments.benchmark', f'--json={tmp_path / "bench.json"}', '--batch_sizes=20',
      '--ks=1', '--eval_k=20', '--eval_points=20', '--min_seconds=0.01', '--nosnr', '--norem',
      '--noiw_svi', '--memory_ks=5', '--rounds=1', '--transition_widths=30,10',
      '--num_transitions=2')
  bench = json.load(open(tmp_path / 'bench.json'))
  assert [(m['k'], m['chunk_rows']) for m in bench['memory']] == [(5, 0), (5, 1000)]
  assert bench['train'] and all(r['step_seconds'] > 0 for r in bench['train'])
  assert all(r['plain_jax_step_seconds'] > 0 for r in bench['train'])  # the reference step
  rows = {r['method']: r for r in bench['avo_amortized']}
  assert rows['vae']['transition_hidden'] is None and rows['vae']['ratio_to_vae'] == 1.0
  for step in ('hvi (ELBO step)', 'hvi_avo (AVO step)'):
    wide, narrow = rows[f'{step}, 30-unit transitions'], rows[f'{step}, 10-unit transitions']
    assert (wide['transition_hidden'], narrow['transition_hidden']) == (30, 10)
    assert wide['num_transitions'] == narrow['num_transitions'] == 2
    # Narrower transitions: fewer FLOPs, still more than the VAE's.
    assert 1.0 < narrow['flops_ratio_to_vae'] < wide['flops_ratio_to_vae']
  # The AVO step's floor adds the ELBO's encoder and decoder work to eq. 4 alone, and the
  # step itself, which shares less, is at or above it.
  for width in (30, 10):
    floor = bench['avo_flops_floor'][str(width)]
    assert 0.0 < floor['decoder_input_grad'] < floor['vae_forward'] < 1.0
    ablation = rows[f"hvi_avo (AVO step, decoder_steps='elbo'), {width}-unit transitions"]
    avo_step = rows[f'hvi_avo (AVO step), {width}-unit transitions']
    assert ablation['flops_ratio_to_vae'] < floor['floor'] <= avo_step['flops_ratio_to_vae']


@pytest.mark.slow
def test_benchmark_iw_svi_curve_on_a_trained_workdir(tiny_npz, tmp_path):
  run('experiments.train', f'--dataset={tiny_npz}', f'--workdir={tmp_path / "run"}', *FLAGS)
  run('experiments.benchmark', f'--json={tmp_path / "bench.json"}', '--batch_sizes=20',
      '--ks=1', '--eval_k=20', '--eval_points=4', '--min_seconds=0.01', '--nosnr', '--norem',
      '--noavo', '--nomemory', f'--iw_svi_workdir={tmp_path / "run"}', '--iw_svi_points=3',
      '--iw_svi_grid=0:1:0.001:200,30:5:0.03:200', '--iw_svi_reference=60:5:0.03:500')
  bench = json.load(open(tmp_path / 'bench.json'))
  assert [r['steps'] for r in bench['iw_svi']] == [100, 200, 300]  # before, twice; defaults
  curve = bench['iw_svi_curve']
  assert curve['num_points'] == 3 and curve['reference']['steps'] == 60
  assert [(r['steps'], r['k'], r['cost']) for r in curve['grid']] == [(0, 1, 0.2), (30, 5, 0.5)]
  # Refinement raises the estimate: no step at all is the lower row.
  assert curve['grid'][0]['log_px'] < curve['grid'][1]['log_px']
  bad = run('experiments.benchmark', '--iw_svi_grid=300:5:2000', check=False)
  assert bad.returncode != 0 and 'S:k:rate:K' in bad.stderr


@pytest.mark.slow
def test_leaderboard_binary_resumes_and_pairs_against_iwae(tiny_npz, tmp_path):
  workdir = str(tmp_path / 'board')
  flags = [f'--workdir={workdir}', f'--datasets={tiny_npz}', '--methods=vae,rws',
           '--seeds=0,1', '--epochs=2', '--eval_k=20', '--step_seconds=0.05']
  out = run('experiments.leaderboard', *flags).stdout
  assert 'Protocol (`--budget=cpu`)' in out and '| 1 |' in out
  board = json.load(open(os.path.join(workdir, 'leaderboard.json')))
  (table,) = board['tables']
  rows = {r['entry']: r for r in table['rows']}
  assert set(rows) == {'iwae', 'vae', 'rws'} and rows['iwae']['minus_iwae'][0] == 0.0
  assert rows['iwae']['step_cost_vs_iwae'] == 1.0 and rows['rws']['step_cost_vs_iwae'] > 0
  for entry in rows:
    assert os.path.exists(os.path.join(workdir, 'runs', 'tiny.npz', 'k5', entry, 'seed1',
                                       'results.json'))
  assert os.path.getsize(os.path.join(workdir, 'leaderboard.png')) > 0
  again = run('experiments.leaderboard', *flags).stdout  # every run is stored: no training
  assert 'already trained and evaluated' in again
  assert json.load(open(os.path.join(workdir, 'leaderboard.json')))['tables'] == board['tables']

