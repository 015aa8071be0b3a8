import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from avi import config as config_lib
from avi import data
from avi import iw_svi
from avi import methods
from avi import models
from avi import networks
from avi import reporting
from avi import schedules
from avi import train
from avi import workdir as workdir_lib
from avi.methods import vae_iwae

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_dataset(n=120, dim=16, seed=0):
  rng = np.random.default_rng(seed)
  probs = rng.uniform(0.05, 0.6, dim)
  splits = {s: (rng.random((m, dim)) < probs).astype(np.float32)
            for s, m in (('train', n), ('valid', 40), ('test', 40))}
  return data.Dataset('tiny', data.STATIC, splits, 'generated')


def tiny_config(**overrides):
  c = config_lib.get_config()
  c.epochs, c.batch_size, c.k = 3, 20, 3
  c.log_every_steps = 4
  c.eval.num_samples, c.eval.chunk_size, c.eval.iwae_ks = 50, 50, (5,)
  c.eval.train_subset = 40
  for name, value in overrides.items():
    config_lib.set_field(c, config_lib.ALIASES.get(name, name), value)
  return c


@pytest.mark.parametrize('schedule', ['constant', 'cosine'])
def test_the_transitions_learning_rate_scale_scales_their_steps_only(schedule):
  """On the same gradients, the transitions take the steps of Adam at scale x the rate (Adam's
  step is linear in the rate) and every other group those of the unscaled Adam."""
  x = tiny_dataset().splits['train']
  arch = networks.Architecture((8,), 2, num_transitions=2, transition_hidden=8)
  model, params = models.init_vae(jax.random.key(0), arch, x)
  config = tiny_config(schedule=schedule)
  plain = train.make_optimizer(config, 10, 30)
  config.hvi.learning_rate_scale = 3.0
  groups = model.group_tree(params)
  scaled = train.make_optimizer(config, 10, 30, groups)
  with pytest.raises(ValueError, match='needs the parameter groups'):
    train.make_optimizer(config, 10, 30)
  with pytest.raises(ValueError, match='declares no forward or backward group'):
    train.make_optimizer(config, 10, 30, {'w': 'decoder'})
  plain_state, scaled_state = plain.init(params), scaled.init(params)
  moved = set()
  for step in range(5):  # gradients that change from step to step, whatever the params
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(step), len(leaves))
    grads = treedef.unflatten([jax.random.normal(k, p.shape) for k, p in zip(keys, leaves)])
    expected, plain_state = plain.update(grads, plain_state, params)
    updates, scaled_state = scaled.update(grads, scaled_state, params)
    for u, e, group in zip(*map(jax.tree.leaves, (updates, expected, groups))):
      factor = 3.0 if group in ('forward', 'backward') else 1.0
      np.testing.assert_allclose(u, factor * e, rtol=1e-5, atol=1e-9, err_msg=group)
      moved.add(group)
  assert moved == {'decoder', 'encoder', 'forward', 'backward'}


def test_burda_schedule():
  sched = schedules.burda_schedule(steps_per_epoch=10)
  assert schedules.burda_num_epochs() == 3280
  np.testing.assert_allclose(sched(0), 1e-3)
  np.testing.assert_allclose(sched(9), 1e-3)  # stage 0: 1 epoch
  np.testing.assert_allclose(sched(10), 1e-3 * 10**(-1 / 7), rtol=1e-5)  # stage 1: epochs 1-3
  np.testing.assert_allclose(sched(39), 1e-3 * 10**(-1 / 7), rtol=1e-5)
  np.testing.assert_allclose(sched(40), 1e-3 * 10**(-2 / 7), rtol=1e-5)  # stage 2 from epoch 4
  np.testing.assert_allclose(sched(1093 * 10), 1e-3 * 10**(-7 / 7), rtol=1e-4)  # last stage
  with pytest.raises(ValueError, match='unknown schedule'):
    schedules.make_schedule('step', 1e-3, 10, 100)


def test_training_improves_the_bound_and_writes_results(tmp_path):
  results = train.train_and_evaluate(tiny_config(epochs=6, eval_every_epochs=3), str(tmp_path),
                                     tiny_dataset(), log=lambda s: None)
  history = results['history']
  assert history['6']['loss'] < history['1']['loss']
  assert 'test_log_px' in history['3'] and 'test_log_px' not in history['2']
  assert history['6']['test_log_px'] > history['3']['test_log_px'] - 1.0
  test = results['evaluation']['test']
  assert test['elbo']['mean'] <= test['iwae5']['mean'] <= test['log_px']['mean']
  assert set(results['evaluation']) == {'train', 'valid', 'test'}
  on_disk = json.load(open(tmp_path / 'results.json'))
  assert on_disk['evaluation']['test']['log_px'] == test['log_px']
  assert on_disk['dataset']['binarization'] == 'static'
  assert os.path.isdir(tmp_path / 'tensorboard') and os.path.isdir(tmp_path / 'checkpoints')
  print(reporting.results_table(results))


@pytest.mark.slow  # the default run resumes at an epoch boundary (extension test)
def test_resume_from_mid_run_checkpoint_is_bit_identical(tmp_path):
  dataset = tiny_dataset()
  config = tiny_config(checkpoint_every_steps=4, keep_checkpoints=10)
  straight = train.train_and_evaluate(config, str(tmp_path / 'a'), dataset, log=lambda s: None)
  # Run b to the end, then roll it back to its checkpoint at step 8 (mid-epoch 2) and resume.
  train.train_and_evaluate(config, str(tmp_path / 'b'), dataset, log=lambda s: None)
  ckpts = tmp_path / 'b' / 'checkpoints'
  for step in os.listdir(ckpts):
    if step.isdigit() and int(step) > 8:
      subprocess.run(['rm', '-r', str(ckpts / step)], check=True)
  assert sorted(int(s) for s in os.listdir(ckpts) if s.isdigit()) == [4, 8]
  messages = []
  resumed = train.train_and_evaluate(config, str(tmp_path / 'b'), dataset, log=messages.append)
  assert messages[0] == f'resumed from step 8 in {tmp_path / "b"}'
  assert resumed['evaluation'] == straight['evaluation']


def _test_only(**overrides):
  config = tiny_config(**overrides)
  config.eval.splits = ('test',)
  return config


def test_a_run_is_extended_by_more_epochs_and_reevaluated_without_training(tmp_path):
  dataset = tiny_dataset()
  straight = train.train_and_evaluate(_test_only(epochs=3), str(tmp_path / 'a'), dataset,
                                      log=lambda s: None)
  train.train_and_evaluate(_test_only(epochs=2), str(tmp_path / 'b'), dataset,
                           log=lambda s: None)
  messages = []
  extended = train.train_and_evaluate(_test_only(epochs=3), str(tmp_path / 'b'), dataset,
                                      log=messages.append)
  assert messages[0] == f'resumed from step 12 in {tmp_path / "b"}'  # 6 steps per epoch
  assert extended['history'] == straight['history']
  assert extended['evaluation'] == straight['evaluation']
  # The same settings again: the stored results, no training and no evaluation.
  messages.clear()
  again = train.train_and_evaluate(_test_only(epochs=3), str(tmp_path / 'b'), dataset,
                                   log=messages.append)
  assert again == json.load(open(tmp_path / 'b' / 'results.json'))
  assert messages == [f'{tmp_path / "b"} is already trained and evaluated with these settings: '
                      'stored results']
  # Another evaluation K re-evaluates the trained state without training it further.
  messages.clear()
  config = _test_only(epochs=3)
  config.eval.num_samples = 100
  other = train.train_and_evaluate(config, str(tmp_path / 'b'), dataset, log=messages.append)
  assert other['history'] == straight['history'] and other['steps'] == straight['steps']
  assert other['evaluation']['test']['num_samples'] == 100
  assert not any(m.startswith('epoch') for m in messages)
  # Fewer epochs than trained, and a cosine schedule (its decay spans the run), are refused.
  with pytest.raises(ValueError, match='past the 6 steps.*experiments.evaluate'):
    train.train_and_evaluate(_test_only(epochs=1), str(tmp_path / 'b'), dataset)
  train.train_and_evaluate(_test_only(epochs=1, schedule='cosine'), str(tmp_path / 'c'), dataset,
                           log=lambda s: None)
  with pytest.raises(ValueError, match=r'different settings \(epochs: 1 -> 2\)'):
    train.train_and_evaluate(_test_only(epochs=2, schedule='cosine'), str(tmp_path / 'c'),
                             dataset)


def test_gradient_norms_and_progress_lines_are_reported(tmp_path):
  messages = []
  config = tiny_config(epochs=2)
  config.eval.splits = ('test',)
  results = train.train_and_evaluate(config, str(tmp_path), tiny_dataset(), log=messages.append)
  groups = {'decoder', 'encoder'}  # with transitions also 'forward', 'backward' (test_models)
  assert set(results['grad_norms']) == groups
  assert results['grad_norms'] == {g: results['history']['2'][f'grad_norm/{g}'] for g in groups}
  assert all(np.isfinite(v) and v > 0 for v in results['grad_norms'].values())
  # stdout is not a terminal under pytest: the last epoch always prints its line.
  assert any(m.startswith('epoch 2 step 12/12: ') and 'steps/s, ETA 0 s' in m for m in messages)
  assert any(m.startswith('evaluated test: 40 points, K=50') for m in messages)


def test_workdir_with_other_settings_is_refused(tmp_path):
  train.train_and_evaluate(tiny_config(epochs=1), str(tmp_path), tiny_dataset(), log=print)
  with pytest.raises(ValueError, match='different settings.*k'):
    train.train_and_evaluate(tiny_config(epochs=1, k=4), str(tmp_path), tiny_dataset())
  # A run saved before a config field existed resumes if the field keeps its default.
  saved = json.load(open(tmp_path / 'config.json'))
  del saved['rem']['covariance']
  json.dump(saved, open(tmp_path / 'config.json', 'w'))
  train.train_and_evaluate(tiny_config(epochs=1), str(tmp_path), tiny_dataset())
  with pytest.raises(ValueError, match='different settings.*rem.covariance'):
    train.train_and_evaluate(tiny_config(epochs=1, rem_covariance='unweighted'), str(tmp_path),
                             tiny_dataset())


def test_early_stopping_keeps_and_evaluates_the_best_on_valid_params(tmp_path, monkeypatch):
  # A scripted valid curve: best at epoch 2, so patience 2 stops after epoch 4; with patience
  # 4 the run continues to a new best at epoch 5 and stops after epoch 9.
  curve = [-10, -9, -9.5, -9.8, -8, -8.5, -8.6, -8.7, -8.8, -8.9]
  monkeypatch.setattr(reporting, 'periodic_eval',
                      lambda model, params, dataset, config, epoch: {
                          'valid_log_px': curve[epoch - 1]})
  dataset = tiny_dataset()
  config = tiny_config(epochs=10, eval_every_epochs=1)
  config.early_stopping.patience = 2
  lines = []
  results = train.train_and_evaluate(config, str(tmp_path), dataset, log=lines.append)
  selection = results['early_stopping']
  assert selection['stopped'] and selection['best_epoch'] == 2
  assert selection['stopped_epoch'] == 4
  assert list(selection['valid_curve']) == ['1', '2', '3', '4'] and results['steps'] == 24
  assert any('early stopping after epoch 4' in line for line in lines)
  # The final evaluation scored the best params (DIR/best), not the last ones.
  model, params, step = train.restore_params(str(tmp_path), config, dataset)
  assert step == selection['best_step'] == 12
  again = reporting.evaluate_splits(model, params, dataset, config,
                                    jax.random.fold_in(jax.random.key(config.seed), 2))
  assert again['test']['summary']['log_px'] == results['evaluation']['test']['log_px']
  # A stopped run returns its stored results; more patience continues it from the stop.
  assert train.train_and_evaluate(config, str(tmp_path), dataset, log=lambda s: None) == results
  config.early_stopping.patience = 4
  longer = train.train_and_evaluate(config, str(tmp_path), dataset, log=lambda s: None)
  assert longer['steps'] == 54 and longer['early_stopping']['best_epoch'] == 5
  assert longer['history']['4'] == results['history']['4']
  with pytest.raises(ValueError, match='needs the periodic valid log-likelihood'):
    train.setup(tiny_config(**{'early_stopping.patience': 2}), dataset)


def test_a_best_saved_after_the_last_checkpoint_is_dropped_on_resume(tmp_path, monkeypatch):
  # Checkpoints every 2 epochs (12 steps); epoch 3's new best (step 18) is saved, then the run
  # is killed in epoch 4. The resumed history ends at epoch 2, whose best is step 12.
  class Killed(Exception):
    pass

  def periodic_eval(model, params, dataset, config, epoch):
    if epoch == 4:
      raise Killed
    return {'valid_log_px': [-10, -9, -8][epoch - 1]}

  monkeypatch.setattr(reporting, 'periodic_eval', periodic_eval)
  dataset = tiny_dataset()
  config = tiny_config(epochs=5, eval_every_epochs=1, checkpoint_every_steps=12)
  config.early_stopping.patience = 3
  with pytest.raises(Killed):
    train.train_and_evaluate(config, str(tmp_path), dataset, log=lambda s: None)
  best_steps = lambda: sorted(workdir_lib.best_manager(str(tmp_path)).all_steps())
  assert best_steps() == [12, 18]
  config.epochs = 2  # stop at the last checkpoint
  results = train.train_and_evaluate(config, str(tmp_path), dataset, log=lambda s: None)
  assert results['early_stopping']['best_epoch'] == 2
  assert results['early_stopping']['best_step'] == 12 and best_steps() == [12]
  assert train.restore_params(str(tmp_path), config, dataset)[2] == 12


@pytest.mark.parametrize('estimator, best', [('is', 2), ('iw_svi', 4)])
def test_early_stopping_selects_on_the_chosen_estimator(tmp_path, monkeypatch, estimator, best):
  # The encoder overfits (IS from q peaks at epoch 2) while the decoder improves (IW-SVI
  # peaks at epoch 4): each estimator keeps and scores its own best epoch.
  is_curve, iw_svi_curve = [-10, -9, -9.5, -9.8, -9.9, -10], [-12, -11, -10.5, -10, -10.2, -10.4]
  monkeypatch.setattr(reporting, 'periodic_eval',
                      lambda model, params, dataset, config, epoch: {
                          'valid_log_px': is_curve[epoch - 1],
                          **({'valid_iw_svi_log_px': iw_svi_curve[epoch - 1]}
                             if config.early_stopping.estimator == 'iw_svi' else {})})
  config = tiny_config(epochs=6, eval_every_epochs=1)
  config.early_stopping.patience, config.early_stopping.estimator = 2, estimator
  results = train.train_and_evaluate(config, str(tmp_path), tiny_dataset(), log=lambda s: None)
  selection = results['early_stopping']
  assert selection['best_epoch'] == best and selection['stopped_epoch'] == best + 2
  assert selection['metric'] == train.SELECTION_METRICS[estimator]
  assert train.restore_params(str(tmp_path), config, tiny_dataset())[2] == best * 6
  if estimator == 'is':  # its epochs have no IW-SVI estimate to select on
    config.early_stopping.estimator = 'iw_svi'
    with pytest.raises(ValueError, match='evaluated without valid_iw_svi_log_px'):
      train.train_and_evaluate(config, str(tmp_path), tiny_dataset(), log=lambda s: None)


def test_periodic_iw_svi_matches_an_independent_estimate(tmp_path):
  config = tiny_config(epochs=1, eval_every_epochs=1, **{
      'early_stopping.patience': 1, 'early_stopping.estimator': 'iw_svi'})
  s = config.early_stopping.iw_svi
  s.num_points, s.steps, s.num_samples = 30, 20, 40
  dataset = tiny_dataset()
  results = train.train_and_evaluate(config, str(tmp_path), dataset, log=lambda s: None)
  model, params, _ = train.restore_params(str(tmp_path), config, dataset)
  estimates = iw_svi.log_likelihood(
      model, params, dataset.splits['valid'][:30], jax.random.fold_in(jax.random.key(0), 4), 20,
      s.k, s.learning_rate, 40, 100, 40)
  np.testing.assert_allclose(results['history']['1']['valid_iw_svi_log_px'],
                             np.mean(estimates['log_px']), rtol=1e-5)
  assert results['history']['1']['valid_iw_svi_nonfinite'] == 0
  # What it selects on is the refined estimate, above the amortized q's on these points.
  assert np.mean(estimates['log_px']) > np.mean(estimates['amortized_log_px'])


@pytest.mark.parametrize('field, value, message', [
    ('early_stopping.estimator', 'waic', "unknown early_stopping.estimator 'waic'"),
    ('early_stopping.iw_svi.k', 0, 'IW-SVI k must be >= 1'),
    ('early_stopping.iw_svi.num_points', 0, 'num_points >= 1'),
])
def test_bad_selection_settings(field, value, message):
  with pytest.raises(ValueError, match=message):
    train.setup(tiny_config(**{'early_stopping.estimator': 'iw_svi', field: value}),
                tiny_dataset())


@pytest.mark.parametrize('seconds, kept', [(1e-9, [17, 18]), (1e9, [18])])
def test_checkpoints_by_wall_time_replace_the_per_epoch_default(tmp_path, seconds, kept):
  config = tiny_config(checkpoint_every_seconds=seconds)
  train.train_and_evaluate(config, str(tmp_path), tiny_dataset(), log=lambda s: None)
  assert sorted(int(d) for d in os.listdir(tmp_path / 'checkpoints') if d.isdigit()) == kept


@pytest.mark.parametrize('field, value, message', [
    ('k', 0, 'k must be an integer >= 1'), ('batch_size', 0, 'batch_size must be'),
    ('method', 'elbo2', "unknown method 'elbo2'"), ('architecture', 'big', 'unknown architecture'),
    ('batch_size', 500, 'exceeds the 120 train examples'),
    ('hvi.learning_rate_scale', 0.0, 'hvi.learning_rate_scale must be > 0'),
    ('hvi.learning_rate_scale', 2.0, 'set hvi.num_transitions > 0'),
])
def test_bad_config(tmp_path, field, value, message):
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(tiny_config(**{field: value}), str(tmp_path), tiny_dataset())


@methods.register('test_nan_on_marker_pair')
def _make_nan_method(model, config):
  """IWAE, but NaN when a batch holds both marker examples (all ones; first half ones)."""
  iwae = vae_iwae.make_iwae(model, config)

  def loss_fn(params, batch, rng, step):
    loss, metrics = iwae(params, batch, rng)
    half = batch.shape[1] // 2
    a = jnp.any(jnp.all(batch == 1.0, axis=-1))
    b = jnp.any(jnp.all(batch[:, :half] == 1.0, axis=-1) & jnp.all(batch[:, half:] == 0.0, -1))
    return jnp.where(a & b, jnp.nan, loss), metrics

  return loss_fn


def test_nan_stops_training_and_keeps_last_good_checkpoint(tmp_path):
  dataset, config = tiny_dataset(), tiny_config(method='test_nan_on_marker_pair', epochs=4)
  batches = lambda e: train.epoch_order(config.seed, e, 120).reshape(6, 20)
  same_batch = lambda e, i, j: any(i in b and j in b for b in batches(e))
  # Two examples that first share a batch in epoch 3 (index 2).
  i, j = next((i, j) for b in batches(2) for i in b for j in b
              if i < j and not same_batch(0, i, j) and not same_batch(1, i, j))
  dataset.splits['train'][i] = 1.0
  dataset.splits['train'][j] = 0.0
  dataset.splits['train'][j, :8] = 1.0
  bad_step = 2 * 6 + next(n for n, b in enumerate(batches(2)) if i in b)
  with pytest.raises(train.NonFiniteLossError,
                     match=f'at step {bad_step} .*latest metrics: .*last good checkpoint: step 12'):
    train.train_and_evaluate(config, str(tmp_path), dataset)
  checkpoints = sorted(int(s) for s in os.listdir(tmp_path / 'checkpoints') if s.isdigit())
  assert checkpoints[-1] == 12
  _, params, step = train.restore_params(str(tmp_path), config, dataset)
  assert step == 12 and all(np.all(np.isfinite(p)) for p in jax.tree.leaves(params))
  assert not os.path.exists(tmp_path / 'results.json')


@pytest.mark.slow
def test_one_and_four_devices_give_the_same_trajectory():
  """Data parallelism over 4 forced CPU devices reproduces the 1-device run, for IWAE and REM."""
  script = """
import json, sys
sys.path.insert(0, {tests!r})
import jax, numpy as np
from test_train import tiny_config, tiny_dataset
from avi import train
assert jax.device_count() == 4, jax.devices()
out = {{}}
for method, extra in (('iwae', {{}}), ('rem_v1', {{'k': 8, 'latent_dim': 2}})):
  for n in (1, 4):
    r = train.train_and_evaluate(tiny_config(num_devices=n, epochs=4, method=method, **extra),
                                 {tmp!r} + method + str(n), tiny_dataset(), log=lambda s: None)
    out[method + str(n)] = {{'history': r['history'],
                            'test': r['evaluation']['test']['log_px']['mean']}}
for name, bad in (('indivisible', lambda: train.train_and_evaluate(
    tiny_config(num_devices=4, batch_size=10), {tmp!r} + 'bad', tiny_dataset())),
                  ('too_many', lambda: train.make_mesh(5))):
  try:
    bad()
  except ValueError as e:
    out[name] = str(e)
print(json.dumps(out))
"""
  import tempfile  # pylint: disable=g-import-not-at-top
  tmp = tempfile.mkdtemp()
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=os.environ.get('XLA_FLAGS', '')
             + ' --xla_force_host_platform_device_count=4')  # keeps conftest's flags
  proc = subprocess.run([sys.executable, '-c', script.format(tests=os.path.join(ROOT, 'tests'),
                                                             tmp=tmp + '/run')],
                        capture_output=True, text=True, env=env, cwd=ROOT, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  for method in ('iwae', 'rem_v1'):  # one bound, and a routed method with a Cholesky
    one, four = out[method + '1'], out[method + '4']
    for epoch in one['history']:
      np.testing.assert_allclose(four['history'][epoch]['loss'], one['history'][epoch]['loss'],
                                 rtol=1e-4)
    np.testing.assert_allclose(four['test'], one['test'], rtol=1e-4)
  assert out['indivisible'] == 'batch_size=10 is not divisible by the 4 devices'
  assert out['too_many'] == 'num_devices=5 but only 4 devices exist'


def test_dynamic_binarization_trains_on_grey_levels(tmp_path):
  rng = np.random.default_rng(5)
  grey = {s: rng.uniform(0, 1, (n, 16)).astype(np.float32) * rng.uniform(0, 1, 16)
          for s, n in (('train', 120), ('valid', 40), ('test', 40))}
  dataset = data.Dataset('grey', data.DYNAMIC, grey, 'generated')
  results = train.train_and_evaluate(tiny_config(epochs=2), str(tmp_path), dataset,
                                     log=lambda s: None)
  assert results['dataset']['binarization'] == 'dynamic'
  assert np.isfinite(results['evaluation']['test']['log_px']['mean'])
  # The same grey data under static binarization is refused by the loader's validation.
  with pytest.raises(ValueError, match='static binarization needs data in'):
    data.validate(grey['train'], data.STATIC, 'grey')


def test_dynamic_step_binarizes_inside_the_step():
  """The loss sees Bernoulli(x) draws, not the grey levels themselves."""
  seen = []
  tx = optax.sgd(0.0)

  def loss_fn(params, batch, rng, step):
    del rng
    seen.append(batch)
    return jnp.sum(params * 0.0), {}

  step = train.make_train_step(loss_fn, tx, dynamic_binarization=True)
  state = {'step': jnp.zeros((), jnp.int32), 'params': jnp.ones(()), 'opt_state': tx.init(
      jnp.ones(())), 'ok': jnp.array(True)}
  step(state, jnp.full((4, 1000), 0.3), jax.random.key(0))
  batch = np.asarray(seen[0])
  assert set(np.unique(batch)) == {0.0, 1.0} and abs(batch.mean() - 0.3) < 0.03


def _state(params, tx):
  return {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': tx.init(params),
          'ok': jnp.array(True)}


@pytest.mark.parametrize('group_norms', [None, lambda g: {'w': optax.global_norm(g)}])
def test_a_finite_loss_with_a_nonfinite_gradient_stops_the_step(group_norms):
  """The check reads the group norms when there are any, else the global norm."""
  tx = optax.adam(1e-2)
  params = {'w': jnp.zeros(3)}

  def loss_fn(p, batch, rng, step):  # sqrt(|w|^2) is 0 at w = 0, its gradient 0 / 0 = NaN
    del batch, rng
    return jnp.sqrt(jnp.sum(p['w']**2)), {}

  step = jax.jit(train.make_train_step(loss_fn, tx, False, group_norms))
  new, metrics = step(_state(params, tx), jnp.zeros((2, 3)), jax.random.key(0))
  assert np.isfinite(metrics['loss']) and not bool(new['ok'])
  assert int(new['step']) == 0 and np.all(np.asarray(new['params']['w']) == 0.0)


def test_consecutive_steps_draw_different_particles():
  """Step s uses fold_in(run_key, s): two steps on the same batch see different noise."""
  tx = optax.sgd(0.0)

  def loss_fn(p, batch, rng, step):
    del batch
    return p * 0.0, {'draw': jax.random.normal(rng)}

  step = jax.jit(train.make_train_step(loss_fn, tx, dynamic_binarization=False))
  state, batch, run_key = _state(jnp.ones(()), tx), jnp.zeros((2, 3)), jax.random.key(0)
  state, first = step(state, batch, run_key)
  state, second = step(state, batch, run_key)
  assert int(state['step']) == 2 and float(first['draw']) != float(second['draw'])
  # Reproducible: a fresh run draws the same first particle.
  assert float(step(_state(jnp.ones(()), tx), batch, run_key)[1]['draw']) == float(first['draw'])


def test_dynamic_datasets_are_evaluated_on_one_fixed_binary_draw():
  rng = np.random.default_rng(1)
  grey = {s: rng.uniform(0.2, 0.8, (n, 400)).astype(np.float32)
          for s, n in (('train', 50), ('valid', 30), ('test', 30))}
  dataset = data.Dataset('grey', data.DYNAMIC, grey, 'generated')
  config = tiny_config()
  test = reporting.eval_data(dataset, 'test', config)
  assert set(np.unique(test)) == {0.0, 1.0}
  np.testing.assert_array_equal(test, reporting.eval_data(dataset, 'test', config))  # fixed draw
  assert abs(test.mean() - grey['test'].mean()) < 0.01  # a Bernoulli draw of the grey levels
  assert reporting.eval_data(dataset, 'train', config).shape == (40, 400)  # train_subset


@pytest.mark.slow
@pytest.mark.parametrize('method', ['rem_v1', 'rem_v2', 'rws', 'iwae_dreg', 'piwae'])
def test_methods_train_in_the_same_loop(tmp_path, method):
  # K = 8 particles for a 2-d latent: REM's moment-matched covariance needs K well above the
  # latent dimension (Dieng & Paisley, after eq. 23); with K = 3 in 50-d, s collapses to eps I
  # and pulls r with it, and the bound falls.
  config = tiny_config(method=method, epochs=4, num_samples=2, k=8, latent_dim=2)
  results = train.train_and_evaluate(config, str(tmp_path), tiny_dataset(), log=lambda s: None)
  first, last = results['history']['1'], results['history']['4']
  # REM's and RWS's losses are not bounds; every method but PIWAE also reports the IWAE bound.
  if 'iwae8' in first:
    assert last['iwae8'] > first['iwae8']
  else:
    assert last['loss'] < first['loss']
  test = results['evaluation']['test']
  assert np.isfinite(test['log_px']['mean']) and test['elbo']['mean'] <= test['log_px']['mean']
