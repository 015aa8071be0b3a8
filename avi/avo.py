"""Annealed variational objectives (Huang et al. 2018): the HVI ELBO (eq. 3) and AVO (eq. 4).

Both take a `hvi.Chain` and the log-densities they need, and return per-example
objectives `[K, B]` to maximize. beta (deterministic warm-up) scales every
entropy and cross-entropy term, log r_t - log q_t - log q_0, as in Appendix D.
"""
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from avi.hvi import Chain

LogDensityFn = Callable[[jax.Array], jax.Array]  # z [..., D] -> [...]


def check_fraction(value: float, name: str) -> None:
  if not 0.0 <= value <= 1.0:
    raise ValueError(f'{name} must lie in [0, 1], got {value}')


def hvi_elbo(chain: Chain, log_q0: jax.Array, log_target: jax.Array,
             beta: float | jax.Array = 1.0) -> jax.Array:
  """Eq. 3: log f_T(z_T) + beta [sum_t log r_t(z_{t-1} | z_t) - sum_t log q_t(z_t | z_{t-1})
  - log q_0(z_0)]. log_q0 and log_target (log f_T(z_T)) are `[K, B]`; returns `[K, B]`."""
  return log_target + beta * (jnp.sum(chain.log_r - chain.log_q, axis=0) - log_q0)


def annealing_weights(num_transitions: int) -> jax.Array:
  """Linear alpha_t = t / T, t = 1..T (footnote 3). `[T]`."""
  return jnp.arange(1, num_transitions + 1) / num_transitions


def avo_objectives(chain: Chain, log_q0: jax.Array, log_f0: LogDensityFn,
                   log_fT: LogDensityFn, beta: float | jax.Array = 1.0) -> jax.Array:
  """Eq. 4 for every transition t = 1..T; `[T, K, B]`.

  Term t: log f_t(z_t) + beta [log r_t(z_{t-1} | z_t) - log q_t(z_t | z_{t-1})
  - log q_{t-1}(z_{t-1})], with the annealed target log f_t = alpha_t log f_T +
  (1 - alpha_t) log f_0. The marginal log q_{t-1}(z_{t-1}) is fixed (it does not
  depend on transition t): it enters as the running HVI estimate log q_0(z_0) +
  sum_{s<t} (log q_s - log r_s) under stop_gradient, so term t's value is the
  HVI bound on log Z_t of the first t transitions. With `sample_chain(...,
  cut_gradients=True)` transition t then learns from term t alone.
  """
  num_transitions = chain.log_q.shape[0]
  alpha = annealing_weights(num_transitions)[:, None, None]
  z = chain.zs[1:]
  log_ft = alpha * log_fT(z) + (1.0 - alpha) * log_f0(z)
  running = log_q0[None] + jnp.cumsum(chain.log_q - chain.log_r, axis=0)  # log q_t estimate
  log_q_prev = jax.lax.stop_gradient(jnp.concatenate([log_q0[None], running[:-1]]))
  return log_ft + beta * (chain.log_r - chain.log_q - log_q_prev)


def beta_schedule(anneal_fraction: float | jax.Array, total_steps: int,
                  beta0: float = 0.01) -> optax.Schedule:
  """Deterministic warm-up: beta rises linearly from beta0 to 1 over the first
  `anneal_fraction` of `total_steps`, then stays 1; fraction 0 is beta = 1 throughout.

  An optax-style schedule (step -> beta). The fraction may be traced (vmapped sweeps).
  """
  if isinstance(anneal_fraction, (int, float)):
    check_fraction(anneal_fraction, 'the beta-annealing fraction')
  ramp_steps = anneal_fraction * total_steps

  def schedule(count):
    progress = jnp.clip(count / jnp.maximum(ramp_steps, 1e-9), 0.0, 1.0)
    return jnp.where(ramp_steps > 0, beta0 + (1.0 - beta0) * progress, 1.0)

  return schedule
