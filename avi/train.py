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
"""
import dataclasses
import json
import os
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from jax.sharding import NamedSharding, PartitionSpec as P

from avi import config as config_lib
from avi import data as data_lib
from avi import distributions as dist
from avi import evaluation
from avi import methods
from avi import networks
from avi import schedules

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


def make_optimizer(config, steps_per_epoch: int, total_steps: int) -> optax.GradientTransformation:
  schedule = schedules.make_schedule(config.schedule, config.learning_rate, steps_per_epoch,
                                     total_steps)
  return optax.adam(schedule, b1=0.9, b2=0.999, eps=config.adam_eps)


def make_train_step(loss_fn: methods.LossFn, tx: optax.GradientTransformation,
                    dynamic_binarization: bool) -> Callable:
  """(state, batch `[B, P]`, run_key) -> (state, metrics); jit it with the state donated."""

  def train_step(state: State, batch: jax.Array, run_key: jax.Array):
    key = jax.random.fold_in(run_key, state['step'])
    loss_key, binarize_key = jax.random.split(key)
    if dynamic_binarization:
      batch = dist.bernoulli_sample(binarize_key, batch)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state['params'], batch, loss_key)
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    ok = state['ok'] & jnp.isfinite(loss) & jnp.all(jnp.array(
        [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    new = {'step': state['step'] + 1, 'params': params, 'opt_state': opt_state, 'ok': ok}
    # Keep the old state (and step) once anything went non-finite.
    state = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, {**state, 'ok': ok})
    return state, {'loss': loss, **metrics}

  return train_step


def epoch_order(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def eval_data(dataset: data_lib.Dataset, split: str, config) -> np.ndarray:
  """The evaluation array of a split: `train` cut to `config.eval.train_subset` points;
  dynamic datasets as one fixed Bernoulli draw of the images (seeded by `config.seed`)."""
  x = dataset.splits[split]
  if split == 'train':
    x = x[:config.eval.train_subset]
  if dataset.binarization == data_lib.DYNAMIC:
    x = (np.random.default_rng([config.seed, 2**31 - 1]).random(x.shape) < x).astype(np.float32)
  return x


def evaluate_splits(model, params, dataset: data_lib.Dataset, config, key: jax.Array,
                    sharding=None) -> dict[str, dict]:
  """`evaluation.evaluate_vae` on each of `config.eval.splits` the dataset has (`eval_data`).

  Split s uses key fold_in(key, index of s in data.SPLITS).
  """
  return {split: evaluation.evaluate_vae(
      model, params, eval_data(dataset, split, config),
      jax.random.fold_in(key, data_lib.SPLITS.index(split)), config.eval.num_samples,
      config.eval.batch_size, config.eval.chunk_size, config.eval.iwae_ks, sharding)
          for split in config.eval.splits if split in dataset.splits}


def _check_config(config) -> None:
  for name in ('k', 'num_samples', 'epochs', 'batch_size'):
    value = config[name]
    if int(value) != value or value < 1:
      raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
  if config.learning_rate <= 0:
    raise ValueError(f'learning_rate must be > 0, got {config.learning_rate}')
  if config.architecture not in networks.PRESETS:
    raise ValueError(f'unknown architecture {config.architecture!r}; '
                     f'known: {", ".join(networks.PRESETS)}')


def _settings_json(config) -> dict:
  return json.loads(config.to_json_best_effort())


def versions() -> dict[str, str]:
  import flax, orbax.checkpoint  # pylint: disable=g-import-not-at-top,multiple-imports
  return {'jax': jax.__version__, 'flax': flax.__version__, 'optax': optax.__version__,
          'orbax': orbax.checkpoint.__version__, 'numpy': np.__version__,
          'backend': jax.default_backend(), 'num_devices': jax.device_count()}


def setup(config, dataset: Optional[data_lib.Dataset] = None):
  """Data, model, params, loss, optimizer: everything `train_and_evaluate` needs."""
  _check_config(config)
  dataset = dataset or data_lib.load(config.dataset, config.data_dir or None)
  train_x = dataset.splits['train']
  if len(train_x) < config.batch_size:
    raise ValueError(f'batch_size={config.batch_size} exceeds the {len(train_x)} train examples')
  arch = networks.PRESETS[config.architecture]
  if config.latent_dim:
    arch = dataclasses.replace(arch, latent_dim=config.latent_dim)
  if config.encoder_max_norm:
    if config.encoder_max_norm < 0:
      raise ValueError(f'encoder_max_norm H must be > 0 (0 = off), got {config.encoder_max_norm}')
    arch = dataclasses.replace(arch, encoder_max_norm=config.encoder_max_norm)
  if config.get('num_transitions', 0):
    if config.num_transitions < 0:
      raise ValueError(f'num_transitions T must be >= 0, got {config.num_transitions}')
    arch = dataclasses.replace(arch, num_transitions=config.num_transitions)
  init_key = jax.random.fold_in(jax.random.key(config.seed), 0)
  model, params = networks.init_vae(init_key, arch, train_x)
  loss_fn = methods.build(config.method, model, config)
  steps_per_epoch = len(train_x) // config.batch_size
  total_steps = config.epochs * steps_per_epoch
  tx = make_optimizer(config, steps_per_epoch, total_steps)
  return dataset, model, params, loss_fn, tx, steps_per_epoch, total_steps


def restore_params(workdir: str, config, dataset: data_lib.Dataset):
  """The model and its latest checkpointed params from `workdir`."""
  _, model, params, _, tx, _, _ = setup(config, dataset)
  state = {'step': jnp.zeros((), jnp.int32), 'params': params,
           'opt_state': tx.init(params), 'ok': jnp.array(True)}
  with _checkpoint_manager(workdir) as manager:
    if manager.latest_step() is None:
      raise FileNotFoundError(f'no checkpoint in {workdir}/checkpoints')
    state = manager.restore(manager.latest_step(), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(state)))['state']
  return model, state['params'], int(state['step'])


def _checkpoint_manager(workdir: str, keep: int = 2) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), 'checkpoints'),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def _write_json(path: str, obj) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2)
  os.replace(tmp, path)


def _check_workdir_config(workdir: str, config) -> None:
  """A workdir belongs to one configuration; resuming with another is an error."""
  path = os.path.join(workdir, 'config.json')
  settings = _settings_json(config)
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    # Fields added to the config after the run started compare against their defaults.
    defaults = _settings_json(config_lib.get_config())
    diff = sorted(k for k in set(saved) | set(settings)
                  if saved.get(k, defaults.get(k)) != settings.get(k))
    if diff:
      raise ValueError(f'{workdir} holds a run with different settings ({", ".join(diff)}); '
                       'use a new --workdir')
  else:
    _write_json(path, settings)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       dataset: Optional[data_lib.Dataset] = None,
                       log: Callable[[str], None] = print) -> dict:
  """Trains (resuming from `workdir` if it holds checkpoints), evaluates, writes results.json."""
  from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  os.makedirs(workdir, exist_ok=True)
  dataset, model, params, loss_fn, tx, steps_per_epoch, total_steps = setup(config, dataset)
  _check_workdir_config(workdir, config)
  mesh = make_mesh(config.num_devices)
  if config.batch_size % mesh.size:
    raise ValueError(f'batch_size={config.batch_size} is not divisible by the {mesh.size} devices')
  replicated = NamedSharding(mesh, P())
  state = jax.device_put({'step': jnp.zeros((), jnp.int32), 'params': params,
                          'opt_state': tx.init(params), 'ok': jnp.array(True)}, replicated)
  run_key = jax.device_put(jax.random.fold_in(jax.random.key(config.seed), 1), replicated)
  train_step = jax.jit(make_train_step(loss_fn, tx, dataset.binarization == data_lib.DYNAMIC),
                       donate_argnums=0)
  manager = _checkpoint_manager(workdir, config.keep_checkpoints)
  # Per-epoch metrics, wall time and the running sums of the current epoch travel inside the
  # checkpoint (one atomic save), so a run killed at any point resumes with identical history.
  progress = {'train_seconds': 0.0, 'history': {}, 'partial_epoch': None}
  if manager.latest_step() is not None:
    restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, state)),
        progress=ocp.args.JsonRestore()))
    state, progress = restored['state'], restored['progress']
    log(f'resumed from step {int(state["step"])} in {workdir}')
  start_step = int(state['step'])
  checkpoint_every = config.checkpoint_every_steps or steps_per_epoch
  train_x = dataset.splits['train']
  writer = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  metrics = {}

  def check_finite(step):
    if not bool(state['ok']):
      last = manager.latest_step()
      manager.wait_until_finished()
      latest = ', '.join(f'{k}={float(v):.4g}' for k, v in metrics.items())
      raise NonFiniteLossError(
          f'non-finite loss or gradient at step {int(state["step"])} (detected by step {step}; '
          f'latest metrics: {latest}); training stopped, last good checkpoint: step {last} in '
          f'{workdir}/checkpoints')

  t0 = time.time()

  def train_seconds():  # wall time of all training sessions of this run
    return progress['train_seconds'] + (time.time() - t0 if start_step < total_steps else 0.0)

  order, epoch_of_order = None, -1
  partial = progress['partial_epoch']
  epoch_sums = {k: jnp.float32(v) for k, v in partial['sums'].items()} if partial else None
  epoch_count = partial['count'] if partial else 0
  bar = tqdm.tqdm(total=total_steps, initial=start_step, desc='train', disable=None)
  for step in range(start_step, total_steps):
    epoch, i = divmod(step, steps_per_epoch)
    if epoch != epoch_of_order:
      order, epoch_of_order = epoch_order(config.seed, epoch, len(train_x)), epoch
    idx = order[i * config.batch_size:(i + 1) * config.batch_size]
    state, metrics = train_step(state, shard_batch(train_x[idx], mesh), run_key)
    epoch_sums = metrics if epoch_sums is None else jax.tree.map(jnp.add, epoch_sums, metrics)
    epoch_count += 1
    done = step + 1
    bar.update(1)
    if done % config.log_every_steps == 0:
      check_finite(done)
      for name, value in metrics.items():
        writer.add_scalar(f'train/{name}', float(value), done)
      bar.set_postfix(loss=f'{float(metrics["loss"]):.2f}')
    if done % steps_per_epoch == 0:
      check_finite(done)
      means = {k: float(v) / epoch_count for k, v in epoch_sums.items()}
      progress['history'][str(epoch + 1)] = means
      for name, value in means.items():
        writer.add_scalar(f'epoch/{name}', value, epoch + 1)
      epoch_sums, epoch_count = None, 0
      if config.eval_every_epochs and (epoch + 1) % config.eval_every_epochs == 0:
        means.update(_periodic_eval(model, state['params'], dataset, config, writer, epoch + 1))
    if done % checkpoint_every == 0 or done == total_steps:
      check_finite(done)
      progress['partial_epoch'] = (
          {'sums': {k: float(v) for k, v in epoch_sums.items()}, 'count': epoch_count}
          if epoch_sums is not None else None)
      manager.save(done, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          progress=ocp.args.JsonSave({**progress, 'train_seconds': train_seconds()})))
      manager.wait_until_finished()
  bar.close()
  check_finite(total_steps)
  train_total = train_seconds()

  t1 = time.time()
  results = {'settings': _settings_json(config), 'versions': versions(),
             'dataset': {'name': dataset.name, 'source': dataset.source,
                         'binarization': dataset.binarization,
                         'sizes': {k: len(v) for k, v in dataset.splits.items()}},
             'steps': total_steps, 'evaluation': {}}
  sharding = (NamedSharding(mesh, P('data')) if config.eval.batch_size % mesh.size == 0
              else None)
  reports = evaluate_splits(model, state['params'], dataset, config,
                            jax.random.fold_in(jax.random.key(config.seed), 2), sharding)
  for split, report in reports.items():
    results['evaluation'][split] = report['summary']
    writer.add_scalar(f'final/{split}_log_px', report['summary']['log_px']['mean'], total_steps)
  if 'test' in reports:
    np.savez(os.path.join(workdir, 'test_per_example.npz'), **reports['test']['per_example'])
  results['train_seconds'] = train_total
  results['history'] = progress['history']
  results['eval_seconds'] = time.time() - t1
  writer.close()
  manager.close()
  _write_json(os.path.join(workdir, 'results.json'), results)
  return results


def _periodic_eval(model, params, dataset, config, writer, epoch: int) -> dict[str, float]:
  """Train/valid/test log-likelihood on subsets with few particles, for the epoch's history."""
  periodic = ml_collections.ConfigDict(config.to_dict())
  periodic.eval.num_samples = config.eval.periodic_num_samples
  periodic.eval.chunk_size = min(config.eval.chunk_size, config.eval.periodic_num_samples)
  periodic.eval.train_subset = config.eval.periodic_num_points
  subset = data_lib.Dataset(dataset.name, dataset.binarization, {
      s: x[:config.eval.periodic_num_points] for s, x in dataset.splits.items()}, dataset.source)
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), 3), epoch)
  out = {}
  for split, report in evaluate_splits(model, params, subset, periodic, key).items():
    out[f'{split}_log_px'] = report['summary']['log_px']['mean']
    out[f'{split}_kl_to_prior'] = report['summary']['kl_to_prior']
    writer.add_scalar(f'epoch/{split}_log_px', out[f'{split}_log_px'], epoch)
  return out


def results_table(results: dict) -> str:
  """A plain-text table of the final evaluation in `results` (as written to results.json)."""
  ks = [k for k in next(iter(results['evaluation'].values())) if k.startswith('iwae')]
  head = ['split', 'N', 'log p(x)', 'ELBO', *[f'L_{k[4:]}' for k in ks], 'gap', 'KL', 'AU']
  rows = [head]
  for split, s in results['evaluation'].items():
    rows.append([split, str(s['log_px']['num']),
                 f'{s["log_px"]["mean"]:.2f} ± {s["log_px"]["stderr"]:.2f}',
                 f'{s["elbo"]["mean"]:.2f}', *[f'{s[k]["mean"]:.2f}' for k in ks],
                 f'{s["inference_gap"]["mean"]:.2f}', f'{s["kl_to_prior"]:.2f}',
                 f'{s["active_units"]}/{s["latent_dim"]}'])
  widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
  lines = ['  '.join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
  d = results['dataset']
  lines.insert(0, f'{d["name"]} ({d["binarization"]} binarization, {d["source"]}), '
               f'method={results["settings"]["method"]}, K_eval={results["settings"]["eval"]["num_samples"]}')
  return '\n'.join(lines)
