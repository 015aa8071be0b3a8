"""The training loop: one jitted optax step for every registered method.

- Data parallel over local devices (or hosts, after `jax.distributed.initialize()`)
  with a `Mesh` and `NamedSharding`: the batch is split on the `data` axis,
  parameters and optimizer state are replicated, and XLA inserts the gradient
  all-reduce.
- The step's key is `fold_in(run_key, step)` and epoch e's data order comes from
  `default_rng([seed, e])`, so a run resumed from any checkpoint is bit-identical
  to an uninterrupted one.
- A non-finite loss or gradient freezes the state in the step itself (no host
  sync); the host sees the flag at the next log/checkpoint point, keeps the last
  good checkpoint and raises `NonFiniteLossError`.
- Every step logs the gradient norm of each parameter group the model declares
  (`grad_norm/{group}`), to TensorBoard, the per-epoch history and results.json.
- A workdir can be extended: more epochs continue from the last checkpoint, another
  evaluation re-evaluates without training, and a finished, evaluated run returns
  its stored results (`avi.workdir`).
- Model selection: with `early_stopping.patience` > 0 the periodic valid log p(x)
  (`eval_every_epochs`; importance-sampled from q, or by IW-SVI with
  `early_stopping.estimator='iw_svi'`) keeps the best epoch's params in DIR/best,
  training stops after `patience` evaluations without improvement, and the final
  evaluation scores the best params; the decision is a function of the stored valid
  curve, so a resumed run, or one given more patience, continues exactly.
- Checkpoints every epoch, every `checkpoint_every_steps`, or every
  `checkpoint_every_seconds` of wall time (short epochs make per-epoch saves costly).
"""
import os
import sys
import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm
from jax.sharding import NamedSharding, PartitionSpec as P

from avi import data as data_lib
from avi import distributions as dist
from avi import iw_svi
from avi import methods
from avi import models
from avi import reporting
from avi import schedules
from avi import workdir as workdir_lib

State = dict[str, Any]  # {'step', 'params', 'opt_state', 'ok'}


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN/inf loss or gradient; the last good checkpoint is kept."""


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """A 1-D `data` mesh over the first `num_devices` devices (0 = all, on every host)."""
  devices = jax.devices()
  if num_devices:
    if num_devices > len(devices):
      raise ValueError(f'num_devices={num_devices} but only {len(devices)} devices exist')
    devices = devices[:num_devices]
  return jax.make_mesh((len(devices),), ('data',), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def shard_batch(batch: np.ndarray, mesh: jax.sharding.Mesh) -> jax.Array:
  """Places the global batch `[B, P]` split over the mesh's `data` axis.

  Every process holds the same global batch (same permutation) and contributes
  its own slice, so this is also the multi-host path.
  """
  sharding = NamedSharding(mesh, P('data'))
  n, i = jax.process_count(), jax.process_index()
  per_process = len(batch) // n
  local = batch[i * per_process:(i + 1) * per_process]
  return jax.make_array_from_process_local_data(sharding, local, batch.shape)


def make_optimizer(config, steps_per_epoch: int, total_steps: int,
                   groups=None) -> optax.GradientTransformation:
  """Adam on the config's schedule. With `hvi.learning_rate_scale` != 1 the transitions (the
  `forward` and `backward` groups of `groups`, e.g. `model.group_tree(params)`) step at that
  multiple of the rate."""
  schedule = schedules.make_schedule(config.schedule, config.learning_rate, steps_per_epoch,
                                     total_steps)
  adam = lambda rate: optax.adam(rate, b1=0.9, b2=0.999, eps=config.adam_eps)
  scale = config.hvi.learning_rate_scale
  if scale == 1.0:
    return adam(schedule)
  if groups is None:
    raise ValueError('hvi.learning_rate_scale needs the parameter groups')
  labels = jax.tree.map(lambda g: 'transitions' if g in ('forward', 'backward') else 'rest',
                        groups)
  if 'transitions' not in jax.tree.leaves(labels):
    raise ValueError('hvi.learning_rate_scale: the model declares no forward or backward group')
  return optax.multi_transform(
      {'transitions': adam(lambda step: scale * schedule(step)), 'rest': adam(schedule)}, labels)


def make_train_step(loss_fn: methods.LossFn, tx: optax.GradientTransformation,
                    dynamic_binarization: bool,
                    group_norms: Optional[Callable[[Any], dict]] = None) -> Callable:
  """(state, batch `[B, P]`, run_key) -> (state, metrics); jit it with the state donated.

  group_norms (e.g. `model.group_norms`) adds `grad_norm/{group}` to the metrics.
  """

  def train_step(state: State, batch: jax.Array, run_key: jax.Array):
    key = jax.random.fold_in(run_key, state['step'])
    loss_key, binarize_key = jax.random.split(key)
    if dynamic_binarization:
      batch = dist.bernoulli_sample(binarize_key, batch)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state['params'], batch, loss_key, state['step'])
    norms = {} if group_norms is None else {
        f'grad_norm/{g}': n for g, n in group_norms(grads).items()}
    # A norm is finite iff every gradient in it is (or its square sum overflows: as bad).
    grad_norms = jnp.stack(list(norms.values())) if norms else optax.global_norm(grads)
    ok = state['ok'] & jnp.isfinite(loss) & jnp.all(jnp.isfinite(grad_norms))

    def update(state: State) -> State:
      updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
      return {'step': state['step'] + 1, 'params': optax.apply_updates(state['params'], updates),
              'opt_state': opt_state, 'ok': ok}

    # Keep the old state (and step) once anything went non-finite. A cond, not a select
    # between the new and old state, which cost 12-14% of the VAE's step and 40% of the AVO
    # step's on the CPU (BENCHMARKS.md).
    state = jax.lax.cond(ok, update, lambda state: {**state, 'ok': ok}, state)
    return state, {'loss': loss, **metrics, **norms}

  return train_step


def epoch_order(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def _check_config(config) -> None:
  for name in ('k', 'num_samples', 'epochs', 'batch_size'):
    value = config[name]
    if int(value) != value or value < 1:
      raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
  if config.learning_rate <= 0:
    raise ValueError(f'learning_rate must be > 0, got {config.learning_rate}')
  if config.hvi.learning_rate_scale <= 0:
    raise ValueError(f'hvi.learning_rate_scale must be > 0, got {config.hvi.learning_rate_scale}')
  if config.hvi.learning_rate_scale != 1.0 and not config.hvi.num_transitions:
    raise ValueError('hvi.learning_rate_scale scales the transitions\' learning rate; '
                     'set hvi.num_transitions > 0')
  if config.early_stopping.patience and not 0 < config.eval_every_epochs <= config.epochs:
    raise ValueError('early_stopping.patience needs the periodic valid log-likelihood: set '
                     '0 < eval_every_epochs <= epochs')
  estimator = config.early_stopping.estimator
  if estimator not in SELECTION_METRICS:
    raise ValueError(f'unknown early_stopping.estimator {estimator!r}; known: '
                     f'{", ".join(SELECTION_METRICS)}')
  if estimator == 'iw_svi':
    s = config.early_stopping.iw_svi
    iw_svi.check_settings(s.steps, s.k, s.learning_rate)
    if s.num_points < 1 or s.num_samples < 1:
      raise ValueError('early_stopping.iw_svi needs num_points >= 1 and num_samples >= 1, got '
                       f'{s.num_points} and {s.num_samples}')


# The history entry each `early_stopping.estimator` selects on.
SELECTION_METRICS = {'is': 'valid_log_px', 'iw_svi': 'valid_iw_svi_log_px'}


def early_stopping_state(history: dict, patience: int, metric: str = 'valid_log_px') -> dict:
  """The periodic valid log p(x) curve (`metric`) in `history` ({epoch: metrics}), its best
  (earliest maximum) epoch, and whether `patience` > 0 evaluations since then failed to
  beat it."""
  curve = {int(e): m[metric] for e, m in history.items() if metric in m}
  best = max(sorted(curve), key=lambda e: curve[e]) if curve else None
  since = sum(e > best for e in curve) if curve else 0
  return {'patience': patience, 'metric': metric,
          'valid_curve': {str(e): curve[e] for e in sorted(curve)},
          'best_epoch': best, 'best_valid_log_px': curve[best] if curve else None,
          'stopped': bool(patience) and since >= patience}


def best_step(history: dict, steps_per_epoch: int, metric: str = 'valid_log_px'):
  """The last step of the best-on-valid epoch in `history` (None before any valid log p(x))."""
  best = early_stopping_state(history, 0, metric)['best_epoch']
  return None if best is None else best * steps_per_epoch


def selection_metric(config) -> str:
  return SELECTION_METRICS[config.early_stopping.estimator]


def versions() -> dict[str, str]:
  import flax, orbax.checkpoint  # pylint: disable=g-import-not-at-top,multiple-imports
  return {'jax': jax.__version__, 'flax': flax.__version__, 'optax': optax.__version__,
          'orbax': orbax.checkpoint.__version__, 'numpy': np.__version__,
          'backend': jax.default_backend(), 'num_devices': jax.device_count()}


class Setup(NamedTuple):
  """Everything a run needs besides its state."""
  dataset: data_lib.Dataset
  model: models.LatentVariableModel
  params: Any
  loss_fn: methods.LossFn
  tx: optax.GradientTransformation
  steps_per_epoch: int
  total_steps: int


def setup(config, dataset: Optional[data_lib.Dataset] = None) -> Setup:
  """Data, model, params, loss and optimizer of a config."""
  _check_config(config)
  dataset = dataset or data_lib.load(config.dataset, config.data_dir or None)
  if config.early_stopping.patience and 'valid' not in dataset.splits:
    raise ValueError(f'early stopping needs a valid split; {dataset.name} has '
                     f'{", ".join(dataset.splits)}')
  train_x = dataset.splits['train']
  if len(train_x) < config.batch_size:
    raise ValueError(f'batch_size={config.batch_size} exceeds the {len(train_x)} train examples')
  model, params = models.from_config(config, train_x)
  loss_fn = methods.build(config.method, model, config)
  steps_per_epoch = len(train_x) // config.batch_size
  total_steps = config.epochs * steps_per_epoch
  tx = make_optimizer(config, steps_per_epoch, total_steps, model.group_tree(params))
  return Setup(dataset, model, params, loss_fn, tx, steps_per_epoch, total_steps)


def initial_state(params, tx: optax.GradientTransformation) -> State:
  return {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': tx.init(params),
          'ok': jnp.array(True)}


def restore_params(workdir: str, config, dataset: data_lib.Dataset):
  """(model, params, step) of `workdir`: its best-on-valid params under early stopping,
  else its latest checkpoint's."""
  run = setup(config, dataset)
  with workdir_lib.checkpoint_manager(workdir) as manager:
    state, progress = workdir_lib.restore(manager, initial_state(run.params, run.tx))
  if config.early_stopping.patience:
    step = best_step(progress['history'], run.steps_per_epoch, selection_metric(config))
    return run.model, workdir_lib.restore_best(workdir, run.params, step), step
  return run.model, state['params'], int(state['step'])


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       dataset: Optional[data_lib.Dataset] = None,
                       log: Callable[[str], None] = print) -> dict:
  """Trains (resuming or extending the run in `workdir`), evaluates, writes results.json.

  A run already trained for `config.epochs` and evaluated with `config.eval` returns
  its stored results without recomputing them.
  """
  from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  os.makedirs(workdir, exist_ok=True)
  run = setup(config, dataset)
  workdir_lib.lock(workdir, config)
  stored = workdir_lib.stored_results(workdir, config, run.total_steps)
  if stored is not None:
    log(f'{workdir} is already trained and evaluated with these settings: stored results')
    return stored
  mesh = make_mesh(config.num_devices)
  if config.batch_size % mesh.size:
    raise ValueError(f'batch_size={config.batch_size} is not divisible by the {mesh.size} devices')
  with (workdir_lib.checkpoint_manager(workdir, config.keep_checkpoints) as manager,
        SummaryWriter(os.path.join(workdir, 'tensorboard')) as writer):
    state, progress = _train(config, workdir, run, mesh, manager, writer, log)
    params, selection = state['params'], None
    if config.early_stopping.patience:
      metric = selection_metric(config)
      selection = early_stopping_state(progress['history'], config.early_stopping.patience,
                                       metric)
      selection['best_step'] = best_step(progress['history'], run.steps_per_epoch, metric)
      params = workdir_lib.restore_best(workdir, state['params'], selection['best_step'])
      selection['stopped_epoch'] = (int(state['step']) // run.steps_per_epoch
                                    if selection['stopped'] else None)
      log(f'evaluating the best-on-valid params: epoch {selection["best_epoch"]} (valid log '
          f'p(x) {selection["best_valid_log_px"]:.2f})')
    results = _evaluate(config, workdir, run, params, progress, mesh, writer, log)
    results['steps'] = int(state['step'])
    if selection is not None:
      results['early_stopping'] = selection
  workdir_lib.write_json(os.path.join(workdir, 'results.json'), results)
  return results


def _restore_or_init(workdir: str, run: Setup, mesh, manager, log) -> tuple[State, dict]:
  state = jax.device_put(initial_state(run.params, run.tx), NamedSharding(mesh, P()))
  progress = {'train_seconds': 0.0, 'history': {}, 'partial_epoch': None}
  latest = manager.latest_step()
  # Bests saved after the last checkpoint belong to a trajectory that a kill lost.
  workdir_lib.prune_best(workdir, lambda step: latest is not None and step <= latest)
  if latest is None:
    return state, progress
  if latest > run.total_steps:
    raise ValueError(f'{workdir} is trained to step {latest} ({latest // run.steps_per_epoch} '
                     f'epochs), past the {run.total_steps} steps of these epochs; to evaluate it '
                     f'use `python -m experiments.evaluate --workdir={workdir}`')
  state, progress = workdir_lib.restore(manager, state)
  log(f'resumed from step {int(state["step"])} in {workdir}')
  return state, progress


def _train(config, workdir: str, run: Setup, mesh, manager, writer, log) -> tuple[State, dict]:
  """The training loop, from the last checkpoint to `run.total_steps`."""
  state, progress = _restore_or_init(workdir, run, mesh, manager, log)
  start, patience = int(state['step']), config.early_stopping.patience
  metric = selection_metric(config)
  if patience and any('valid_log_px' in m and metric not in m
                      for m in progress['history'].values()):
    # Earlier evaluations cannot be rescored: selecting among the later ones only would
    # silently discard the epochs the run was selected on so far.
    raise ValueError(f'{workdir} was evaluated without {metric} (another '
                     'early_stopping.estimator); keep its estimator or use a new --workdir')
  if (start >= run.total_steps
      or early_stopping_state(progress['history'], patience, metric)['stopped']):
    return state, progress
  # Per-epoch metrics, wall time and the running sums of the current epoch travel inside the
  # checkpoint (one atomic save), so a run killed at any point resumes with identical history.
  run_key = jax.device_put(jax.random.fold_in(jax.random.key(config.seed), 1),
                           NamedSharding(mesh, P()))
  train_step = jax.jit(make_train_step(run.loss_fn, run.tx,
                                       run.dataset.binarization == data_lib.DYNAMIC,
                                       run.model.group_norms), donate_argnums=0)
  every_seconds = config.checkpoint_every_seconds
  checkpoint_every = config.checkpoint_every_steps or (0 if every_seconds else run.steps_per_epoch)
  train_x = run.dataset.splits['train']
  partial = progress['partial_epoch']
  sums = {k: jnp.float32(v) for k, v in partial['sums'].items()} if partial else None
  count = partial['count'] if partial else 0
  t0, order, order_epoch, metrics = time.time(), None, -1, {}
  last_save, stop = t0, False
  seconds = lambda: progress['train_seconds'] + time.time() - t0
  display = _Progress(start, run.total_steps, log)

  def check_finite(step):
    if not bool(state['ok']):
      manager.wait_until_finished()
      latest = ', '.join(f'{k}={float(v):.4g}' for k, v in metrics.items())
      raise NonFiniteLossError(
          f'non-finite loss or gradient at step {int(state["step"])} (detected by step {step}; '
          f'latest metrics: {latest}); training stopped, last good checkpoint: step '
          f'{manager.latest_step()} in {workdir}/checkpoints')

  for step in range(start, run.total_steps):
    epoch, i = divmod(step, run.steps_per_epoch)
    if epoch != order_epoch:
      order, order_epoch = epoch_order(config.seed, epoch, len(train_x)), epoch
    idx = order[i * config.batch_size:(i + 1) * config.batch_size]
    state, metrics = train_step(state, shard_batch(train_x[idx], mesh), run_key)
    sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
    count, done = count + 1, step + 1
    display.step()
    if done % config.log_every_steps == 0:
      check_finite(done)
      for name, value in metrics.items():
        writer.add_scalar(f'train/{name}', float(value), done)
    if done % run.steps_per_epoch == 0:
      check_finite(done)
      means = {k: float(v) / count for k, v in sums.items()}
      if config.eval_every_epochs and (epoch + 1) % config.eval_every_epochs == 0:
        means.update(reporting.periodic_eval(run.model, state['params'], run.dataset, config,
                                             epoch + 1))
      progress['history'][str(epoch + 1)] = means
      if patience and metric in means:
        selection = early_stopping_state(progress['history'], patience, metric)
        if selection['best_epoch'] == epoch + 1:
          workdir_lib.save_best(workdir, done, state['params'])
        means['best_valid_log_px'], stop = selection['best_valid_log_px'], selection['stopped']
      for name, value in means.items():
        writer.add_scalar(f'epoch/{name}', value, epoch + 1)
      display.epoch(epoch + 1, done, means)
      sums, count = None, 0
    due = ((checkpoint_every and done % checkpoint_every == 0)
           or (every_seconds and time.time() - last_save >= every_seconds))
    if due or stop or done == run.total_steps:
      check_finite(done)
      progress['partial_epoch'] = ({'sums': {k: float(v) for k, v in sums.items()},
                                    'count': count} if sums is not None else None)
      workdir_lib.save(manager, done, state, {**progress, 'train_seconds': seconds()})
      if patience:  # the saved history now names the best; older bests are superseded
        best = best_step(progress['history'], run.steps_per_epoch, metric)
        workdir_lib.prune_best(workdir, lambda s: s == best)
      last_save = time.time()
    if stop:
      log(f'early stopping after epoch {epoch + 1}: no better valid log p(x) in {patience} '
          'evaluations')
      break
  display.close()
  return state, {**progress, 'train_seconds': seconds()}


class _Progress:
  """A tqdm bar on a terminal; elsewhere (nohup, cluster logs, CI) a line per epoch with
  step, metrics, steps/s and ETA, at most one per `min_seconds` (and always the last)."""

  def __init__(self, start: int, total: int, log: Callable[[str], None],
               min_seconds: float = 5.0):
    self.start, self.total, self.log, self.min_seconds = start, total, log, min_seconds
    self.bar = tqdm.tqdm(total=total, initial=start, desc='train') if sys.stdout.isatty() else None
    self.t0 = self.last = time.time()

  def step(self) -> None:
    if self.bar is not None:
      self.bar.update(1)

  def epoch(self, epoch: int, step: int, means: dict[str, float]) -> None:
    if self.bar is not None:
      self.bar.set_postfix(loss=f'{means["loss"]:.2f}')
      return
    now = time.time()
    if now - self.last < self.min_seconds and step < self.total:
      return
    self.last = now
    rate = (step - self.start) / max(now - self.t0, 1e-9)
    shown = ', '.join(f'{k} {v:.2f}' for k, v in means.items() if not k.startswith('grad_norm'))
    self.log(f'epoch {epoch} step {step}/{self.total}: {shown}; {rate:.1f} steps/s, '
             f'ETA {(self.total - step) / rate:.0f} s')

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


def _evaluate(config, workdir: str, run: Setup, params, progress: dict, mesh, writer,
              log) -> dict:
  """Final evaluation of every split; the results.json dictionary."""
  t0 = time.time()
  sharding = (NamedSharding(mesh, P('data')) if config.eval.batch_size % mesh.size == 0
              else None)
  reports = reporting.evaluate_splits(run.model, params, run.dataset, config,
                                      jax.random.fold_in(jax.random.key(config.seed), 2),
                                      sharding, log)
  if 'test' in reports:
    np.savez(os.path.join(workdir, 'test_per_example.npz'), **reports['test']['per_example'])
  history = progress['history']
  last = history[max(history, key=int)] if history else {}
  d = run.dataset
  results = {
      'settings': workdir_lib.settings(config), 'versions': versions(),
      'dataset': {'name': d.name, 'source': d.source, 'binarization': d.binarization,
                  'sizes': {k: len(v) for k, v in d.splits.items()}},
      'steps': run.total_steps,
      'evaluation': {split: report['summary'] for split, report in reports.items()},
      'grad_norms': {k.split('/', 1)[1]: v for k, v in last.items() if k.startswith('grad_norm/')},
      'train_seconds': progress['train_seconds'], 'history': history,
      'eval_seconds': time.time() - t0}
  for split, summary in results['evaluation'].items():
    writer.add_scalar(f'final/{split}_log_px', summary['log_px']['mean'], run.total_steps)
  return results
