"""Timing of jitted functions and of the training loop's step, for the benchmark binaries."""
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from avi import train


def compiled_flops(compiled: jax.stages.Compiled) -> float:
  """XLA's FLOP count of a compiled function."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost['flops'])


def flops_of(fn, *args) -> float:
  return compiled_flops(jax.jit(fn).lower(*args).compile())


def time_it(fn, min_seconds: float) -> float:
  """Seconds per call of `fn()` (which must block), after one warm-up call."""
  fn()
  calls, start = 0, time.perf_counter()
  while True:
    fn()
    calls += 1
    elapsed = time.perf_counter() - start
    if elapsed >= min_seconds and calls >= 3:
      return elapsed / calls


def train_step_call(loss_fn, tx, params, batch: np.ndarray, group_norms=None,
                    ) -> tuple[Callable[[], None], float]:
  """(call, flops): a blocking call of one training loop's compiled step on `batch` `[B, P]`,
  its state donated and threaded from call to call as in `train.train_and_evaluate`, and
  the step's FLOPs (one compilation for both)."""
  step = train.make_train_step(loss_fn, tx, False, group_norms)
  state = train.initial_state(jax.tree.map(jnp.copy, params), tx)  # donation consumes it
  batch, key = jnp.asarray(batch), jax.random.key(1)
  compiled = jax.jit(step, donate_argnums=0).lower(state, batch, key).compile()

  def call():
    nonlocal state
    state = jax.block_until_ready(compiled(state, batch, key)[0])

  return call, compiled_flops(compiled)


def time_train_step(loss_fn, tx, params, batch: np.ndarray, min_seconds: float,
                    group_norms=None) -> float:
  """Seconds per step of the training loop's step (`train_step_call`)."""
  return time_it(train_step_call(loss_fn, tx, params, batch, group_norms)[0], min_seconds)


def interleaved_medians(calls: dict, rounds: int, seconds_per_round: float,
                        ) -> dict[str, np.ndarray]:
  """Median seconds per call of each blocking `calls[name]()`, `[rounds]` each.

  The calls take turns, `seconds_per_round` each per round, so a slow spell of a shared
  machine hits every call alike and the per-round ratios between them stay comparable;
  the median of a round's calls ignores single interrupted calls."""
  for call in calls.values():
    call()  # compile
  out = {name: [] for name in calls}
  for _ in range(rounds):
    for name, call in calls.items():
      times, start = [], time.perf_counter()
      while time.perf_counter() - start < seconds_per_round or len(times) < 3:
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
      out[name].append(np.median(times))
  return {name: np.asarray(v) for name, v in out.items()}
