"""A run's directory: its settings lock, checkpoints and results.

DIR/config.json holds the run's full config; a later command may change what does
not alter the training trajectory (`config.NOT_TRAJECTORY`: more epochs, another
evaluation), and is refused, naming the fields, for anything else.
DIR/checkpoints holds orbax checkpoints of the training state and its progress;
DIR/best the params of the best-on-valid epoch when early stopping is on.
"""
import json
import os
from typing import Callable

import jax
import ml_collections
import orbax.checkpoint as ocp

from avi import config as config_lib


def write_json(path: str, obj) -> None:
  """Atomic: a killed write leaves the previous file."""
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2)
  os.replace(tmp, path)


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


def settings(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


def saved_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: is {workdir} a training workdir?')
  return config_lib.from_dict(read_json(path))


def lock(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes DIR/config.json, or checks that `config` continues the run it holds."""
  path = os.path.join(workdir, 'config.json')
  if os.path.exists(path):
    saved = config_lib.trajectory(saved_config(workdir))
    wanted = config_lib.trajectory(config)
    diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if diff:
      changes = ', '.join(f'{k}: {saved.get(k)!r} -> {wanted.get(k)!r}' for k in diff)
      raise ValueError(
          f'{workdir} holds a run with different settings ({changes}). To evaluate that run '
          f'differently use `python -m experiments.evaluate --workdir={workdir}`; to train with '
          'these settings use a new --workdir')
  write_json(path, settings(config))


def stored_results(workdir: str, config: ml_collections.ConfigDict, total_steps: int):
  """DIR/results.json if it evaluates the latest checkpoint, at `total_steps` or where early
  stopping ended the run, with `config.eval` and `config.early_stopping`; else None."""
  path = os.path.join(workdir, 'results.json')
  if not os.path.exists(path):
    return None
  stored = read_json(path)
  with checkpoint_manager(workdir) as manager:
    latest = manager.latest_step()
  # Settings written before a field existed get its default (as when the run is resumed).
  have, wanted = settings(config_lib.from_dict(stored['settings'])), settings(config)
  finished = stored['steps'] == total_steps or stored.get('early_stopping', {}).get('stopped')
  if (latest == stored['steps'] and finished
      and all(have[k] == wanted[k] for k in ('eval', 'early_stopping'))):
    return stored
  return None


def checkpoint_manager(workdir: str, keep: int = 2) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), 'checkpoints'),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def restore(manager: ocp.CheckpointManager, state_template):
  """(state, progress) of the latest checkpoint, the state shaped (and sharded) like the
  template."""
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f'no checkpoint in {manager.directory}')
  template = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_template)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(template), progress=ocp.args.JsonRestore()))
  return restored['state'], restored['progress']


def best_manager(workdir: str) -> ocp.CheckpointManager:
  """DIR/best: the params of best-on-valid epochs, keyed by step and pruned by the loop
  (`prune_best`), not by orbax: a best saved after the last regular checkpoint belongs to a
  trajectory that a kill may lose."""
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'best'),
                               options=ocp.CheckpointManagerOptions(create=True))


def save_best(workdir: str, step: int, params) -> None:
  with best_manager(workdir) as manager:
    if step not in manager.all_steps():  # a resumed run re-reaches the same best exactly
      manager.save(step, args=ocp.args.StandardSave(params))
      manager.wait_until_finished()


def prune_best(workdir: str, keep: Callable[[int], bool]) -> None:
  """Deletes the best-on-valid checkpoints whose step `keep` rejects."""
  if not os.path.isdir(os.path.join(workdir, 'best')):
    return
  with best_manager(workdir) as manager:
    for step in manager.all_steps():
      if not keep(step):
        manager.delete(step)


def restore_best(workdir: str, params_template, step: int):
  """The params saved in DIR/best at `step` (the best epoch's last step), shaped like the
  template."""
  with best_manager(workdir) as manager:
    if step not in manager.all_steps():
      raise FileNotFoundError(f'no best-on-valid checkpoint of step {step} in {workdir}/best '
                              f'(it holds steps {sorted(manager.all_steps())})')
    template = jax.tree.map(ocp.utils.to_shape_dtype_struct, params_template)
    return manager.restore(step, args=ocp.args.StandardRestore(template))


def save(manager: ocp.CheckpointManager, step: int, state, progress: dict) -> None:
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                             progress=ocp.args.JsonSave(progress)))
  manager.wait_until_finished()
