"""Importance-weighted stochastic variational inference (IW-SVI; Shu et al. 2018, Appendix C).

Starting from the amortized q(z | x), each example's own Gaussian proposal
(mean, log-std) `[B, D]` is refined by Adam on its IWAE-k bound for S steps
(`vmap` over examples, `lax.scan` over steps); log p(x) is then estimated by
importance sampling from the refined proposal with the chunked evaluator.
Examples whose refinement goes non-finite are reported, never averaged away.
"""
import functools
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from avi import bounds
from avi import distributions as dist
from avi import evaluation

LogJointFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, P], z [K, B, D]) -> [K, B]


def check_settings(steps: int, k: int, learning_rate: float) -> None:
  if steps < 0:
    raise ValueError(f'IW-SVI steps must be >= 0, got {steps}')
  if k < 1:
    raise ValueError(f'IW-SVI k must be >= 1, got {k}')
  if learning_rate <= 0:
    raise ValueError(f'IW-SVI learning_rate must be > 0, got {learning_rate}')


def refine(log_joint_fn: LogJointFn, x: jax.Array, mean: jax.Array, scale: jax.Array,
           key: jax.Array, steps: int = 300, k: int = 5, learning_rate: float = 3e-2,
           ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """S Adam steps on each example's IWAE-k bound. x `[B, P]`, mean/scale `[B, D]`.

  Returns the refined (mean, scale) `[B, D]` and the per-step mean bound `[S]`.
  """
  check_settings(steps, k, learning_rate)
  tx = optax.adam(learning_rate)

  def example_bound(phi, x_b, step_key):  # one example: phi = (mean [D], log_scale [D])
    m, log_s = phi
    z = dist.diag_gaussian_sample(step_key, m[None], jnp.exp(log_s)[None], k)  # [k, 1, D]
    log_w = log_joint_fn(x_b[None], z) - dist.diag_gaussian_log_prob(z, m, jnp.exp(log_s))
    return bounds.iwae(log_w)[0]

  grad_fn = jax.vmap(jax.value_and_grad(example_bound), in_axes=(0, 0, 0))

  def step(carry, t):
    phi, opt_state = carry
    keys = jax.random.split(jax.random.fold_in(key, t), x.shape[0])
    value, grads = grad_fn(phi, x, keys)
    updates, opt_state = tx.update(jax.tree.map(jnp.negative, grads), opt_state, phi)
    return (optax.apply_updates(phi, updates), opt_state), jnp.mean(value)

  phi = (mean, jnp.log(scale))
  (phi, _), trace = jax.lax.scan(step, (phi, tx.init(phi)), jnp.arange(steps))
  return phi[0], jnp.exp(phi[1]), trace


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7, 8, 9, 10))
def _batch_estimates(model, params, x: jax.Array, key: jax.Array, steps: int, k: int,
                     learning_rate: float, num_samples: int, amortized_num_samples: int,
                     chunk_size: int, iwae_ks: tuple[int, ...]) -> dict[str, jax.Array]:
  """`log_likelihood` for one batch `[B, P]`: one compiled program per model, settings and
  batch shape, cached across calls."""
  log_joint_fn = functools.partial(model.log_joint, params)

  def estimate(mean, scale, key, ks, n_total):
    def log_weights_fn(kk, xx, n):
      z = dist.diag_gaussian_sample(kk, mean, scale, n)
      return log_joint_fn(xx, z) - dist.diag_gaussian_log_prob(z, mean, scale)
    return evaluation.chunked_estimates(log_weights_fn, x, key, n_total, chunk_size, ks)

  mean, scale, _ = model.encode(params, x)
  amortized = estimate(mean, scale, jax.random.fold_in(key, 0), iwae_ks, amortized_num_samples)
  r_mean, r_scale, _ = refine(log_joint_fn, x, mean, scale, jax.random.fold_in(key, 1), steps,
                              k, learning_rate)
  refined = estimate(r_mean, r_scale, jax.random.fold_in(key, 2), (), num_samples)
  bad = ~(jnp.all(jnp.isfinite(r_mean), -1) & jnp.all(jnp.isfinite(r_scale), -1)
          & jnp.isfinite(refined['log_px']))
  return {'log_px': refined['log_px'], 'amortized_log_px': amortized['log_px'],
          'elbo': amortized['elbo'], 'nonfinite': bad,
          **{f'iwae{k}': amortized[f'iwae{k}'] for k in iwae_ks}}


def log_likelihood(model, params, data: np.ndarray, key: jax.Array, steps: int = 300,
                   k: int = 5, learning_rate: float = 3e-2, num_samples: int = 2000,
                   batch_size: int = 100, chunk_size: int = 100,
                   iwae_ks: Sequence[int] = (),
                   amortized_num_samples: Optional[int] = None) -> dict[str, np.ndarray]:
  """IW-SVI estimates for a dataset `[N, P]` under a `models.LatentVariableModel` with a
  Gaussian encoder, `[N]` each.

  `log_px` (IS from the refined proposals, K = num_samples), `amortized_log_px` (IS
  from q(z | x) itself, K = amortized_num_samples, default num_samples), the amortized
  `elbo` and amortized `iwae{k}` (E[L_k], k in `iwae_ks`, each dividing chunk_size, from
  the same K), the `inference_gap` log p(x) - ELBO, and a
  `nonfinite` mask of examples whose refinement diverged (their `log_px` is NaN).
  The amortized proposal is the model's q_0(z | x) (`model.encode`). The defaults come
  from the convergence curve in docs/air.md. A last partial batch is padded with zero
  rows, so one compiled program serves every batch; fewer than `batch_size` points are
  one batch of their own size.
  """
  check_settings(steps, k, learning_rate)
  batch_size = min(batch_size, len(data))
  outs = []
  for i, start in enumerate(range(0, len(data), batch_size)):
    x = np.asarray(data[start:start + batch_size], np.float32)
    padded = np.pad(x, ((0, batch_size - len(x)), (0, 0)))
    out = _batch_estimates(model, params, jnp.asarray(padded), jax.random.fold_in(key, i),
                           steps, k, learning_rate, num_samples,
                           amortized_num_samples or num_samples, chunk_size, tuple(iwae_ks))
    outs.append({name: np.asarray(v)[:len(x)] for name, v in out.items()})
  out = {name: np.concatenate([o[name] for o in outs]) for name in outs[0]}
  out['inference_gap'] = out['log_px'] - out['elbo']
  return out


def summarize(out: dict[str, np.ndarray]) -> dict:
  """Mean and standard error of each `log_likelihood` output over the finite examples,
  with the indices of the non-finite ones (reported, never averaged away)."""
  ok = ~out['nonfinite']
  summary = {name: evaluation.mean_and_stderr(v[ok]) for name, v in out.items()
             if name != 'nonfinite'}
  summary['nonfinite_examples'] = np.flatnonzero(out['nonfinite']).tolist()
  return summary
