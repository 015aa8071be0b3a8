"""Importance-sampling log-likelihood, bounds, inference gap, KL to the prior, active units.

The estimators take any `log_weights_fn(key, x, num_samples) -> [K, B]`, so the
same evaluator serves every model: a Flax VAE, a closed-form test model, a
refined (IW-SVI) proposal.
"""
import functools
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from avi import bounds
from avi import distributions as dist
from avi import hvi

LogWeightsFn = Callable[[jax.Array, jax.Array, int], jax.Array]


def chunked_estimates(log_weights_fn: LogWeightsFn, x: jax.Array, key: jax.Array,
                      num_samples: int, chunk_size: int,
                      iwae_ks: Sequence[int] = ()) -> dict[str, jax.Array]:
  """Per-example estimates from K = num_samples particles drawn chunk by chunk.

  Memory is that of one `[chunk_size, B]` chunk whatever K: an online
  log-sum-exp accumulates log sum_k w_k across chunks (`lax.scan`).

  Returns `[B]` arrays: `log_px` = log (1/K) sum_k w_k (the IS estimate, itself
  IWAE-K), `elbo` (mean log-weight over all K) and `iwae{k}` for each k in
  `iwae_ks`: the mean of IWAE-k over disjoint groups of k particles inside the
  full chunks (an unbiased estimate of E[L_k]; each k must divide chunk_size).
  """
  if num_samples < 1 or chunk_size < 1:
    raise ValueError(f'num_samples and chunk_size must be >= 1, got {num_samples}, {chunk_size}')
  chunk_size = min(chunk_size, num_samples)
  for k in iwae_ks:
    if chunk_size % k:
      raise ValueError(f'iwae k={k} must divide the chunk size {chunk_size}')
  num_chunks, remainder = divmod(num_samples, chunk_size)
  batch_shape = x.shape[:1]

  def body(carry, i):
    lse, sum_lw, sums = carry
    log_w = log_weights_fn(jax.random.fold_in(key, i), x, chunk_size)
    lse = jnp.logaddexp(lse, jax.nn.logsumexp(log_w, axis=0))
    sums = {k: sums[k] + bounds.grouped_iwae(log_w, k) for k in iwae_ks}
    return (lse, sum_lw + jnp.sum(log_w, axis=0), sums), None

  init = (jnp.full(batch_shape, -jnp.inf), jnp.zeros(batch_shape),
          {k: jnp.zeros(batch_shape) for k in iwae_ks})
  (lse, sum_lw, sums), _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
  if remainder:
    log_w = log_weights_fn(jax.random.fold_in(key, num_chunks), x, remainder)
    lse = jnp.logaddexp(lse, jax.nn.logsumexp(log_w, axis=0))
    sum_lw = sum_lw + jnp.sum(log_w, axis=0)
  out = {'log_px': lse - math.log(num_samples), 'elbo': sum_lw / num_samples}
  out.update({f'iwae{k}': sums[k] / num_chunks for k in iwae_ks})
  return out


def evaluate_dataset(log_weights_fn: LogWeightsFn, data: np.ndarray, key: jax.Array,
                     num_samples: int = 5000, batch_size: int = 100, chunk_size: int = 500,
                     iwae_ks: Sequence[int] = (), sharding=None) -> dict[str, np.ndarray]:
  """`chunked_estimates` over a whole dataset `[N, P]`, batch by batch; `[N]` arrays.

  Batch i uses key fold_in(key, i); the last batch is padded (and the padding
  dropped) so one compiled function serves every batch. `sharding`, when given,
  places each batch (e.g. over a data-parallel mesh).
  """
  estimate = jax.jit(functools.partial(
      chunked_estimates, log_weights_fn, num_samples=num_samples, chunk_size=chunk_size,
      iwae_ks=tuple(iwae_ks)))
  return _over_batches(estimate, data, key, batch_size, sharding)


def _over_batches(estimate: Callable[[jax.Array, jax.Array], dict[str, jax.Array]],
                  data: np.ndarray, key: jax.Array, batch_size: int,
                  sharding) -> dict[str, np.ndarray]:
  """`estimate(batch [batch_size, P], key) -> {name: [batch_size]}` over `data` `[N, P]`,
  as `evaluate_dataset` describes, with the inference gap log p(x) - ELBO added where the
  estimates hold log p(x)."""
  results = []
  for i, start in enumerate(range(0, len(data), batch_size)):
    batch = np.asarray(data[start:start + batch_size], np.float32)
    valid = len(batch)
    if valid < batch_size:
      batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - valid, 0)])
    batch = jax.device_put(batch, sharding) if sharding is not None else jnp.asarray(batch)
    out = estimate(batch, jax.random.fold_in(key, i))
    results.append({name: np.asarray(v)[:valid] for name, v in out.items()})
  out = {name: np.concatenate([r[name] for r in results]) for name in results[0]}
  if 'log_px' in out:
    out['inference_gap'] = out['log_px'] - out['elbo']
  return out


def mean_and_stderr(values: np.ndarray) -> dict[str, float]:
  """Mean with its standard error std / sqrt(N); non-finite entries are counted, not dropped."""
  values = np.asarray(values, np.float64)
  finite = np.isfinite(values)
  n = len(values)
  stderr = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float('nan')
  return {'mean': float(values.mean()), 'stderr': stderr, 'num': n,
          'num_nonfinite': int(n - finite.sum())}


def encoder_statistics(encode_fn: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
                       data: np.ndarray, batch_size: int = 1000,
                       threshold: float = 0.01) -> dict[str, float]:
  """Mean KL(q(z | x) || N(0, I)) and active units over `data` `[N, P]`; `encode_fn`
  maps a batch to q(z | x)'s (mean, scale) (jit it: it is called per batch as given).

  A unit d is active when Cov_x(E_q[z_d | x]) > threshold (Burda et al. 2016, Sec. 5.2).
  """
  means, kls = [], []
  for start in range(0, len(data), batch_size):
    mean, scale = encode_fn(jnp.asarray(data[start:start + batch_size], jnp.float32))
    means.append(np.asarray(mean, np.float64))
    kls.append(np.asarray(dist.diag_gaussian_kl_to_standard(mean, scale)))
  means = np.concatenate(means)
  variances = means.var(axis=0)
  return {'kl_to_prior': float(np.concatenate(kls).mean()),
          'active_units': int((variances > threshold).sum()),
          'latent_dim': int(means.shape[1])}


def usable_iwae_ks(iwae_ks: Sequence[int], num_samples: int, chunk_size: int) -> tuple[int, ...]:
  """The k of `iwae_ks` that `chunked_estimates` can estimate with these K and chunk size."""
  chunk = min(chunk_size, num_samples)
  return tuple(k for k in iwae_ks if chunk % k == 0)


# The model is static and its params an argument, so one compiled program per model, settings
# and batch shape serves every split, periodic evaluation and checkpoint of a run.
@functools.partial(jax.jit, static_argnames=('model', 'num_samples', 'chunk_size', 'iwae_ks'))
def _model_estimates(model, params, x: jax.Array, key: jax.Array, num_samples: int,
                     chunk_size: int, iwae_ks: tuple[int, ...]) -> dict[str, jax.Array]:
  def log_weights_fn(k, xx, n):
    return model.log_weights(params, xx, k, n)[0]
  return chunked_estimates(log_weights_fn, x, key, num_samples, chunk_size, iwae_ks)


@functools.partial(jax.jit, static_argnums=0)
def _encoder_moments(model, params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  return model.encode(params, x)[:2]


def evaluate_model(model, params, data: np.ndarray, key: jax.Array, num_samples: int = 5000,
                   batch_size: int = 100, chunk_size: int = 500, iwae_ks: Sequence[int] = (),
                   sharding=None) -> dict:
  """The full report for a `models.LatentVariableModel` on `data` `[N, P]`: summaries
  (KL to the prior and active units of q_0) plus per-example arrays.

  Bounds L_k whose k does not divide min(chunk_size, num_samples) are left out.
  With `sharding` (a `NamedSharding` of the batch) the params are replicated over its mesh.
  """
  ks = usable_iwae_ks(iwae_ks, num_samples, chunk_size)
  if sharding is not None:
    params = jax.device_put(params, NamedSharding(sharding.mesh, P()))
  per_example = _over_batches(
      lambda x, k: _model_estimates(model, params, x, k, num_samples, chunk_size, ks),
      data, key, batch_size, sharding)
  summary = {name: mean_and_stderr(v) for name, v in per_example.items()}
  summary.update(encoder_statistics(functools.partial(_encoder_moments, model, params), data))
  summary['num_samples'] = num_samples
  return {'summary': summary, 'per_example': per_example}


@functools.partial(jax.jit, static_argnames=('model', 'num_particles', 'num_chains'))
def _marginal_estimates(model, params, x: jax.Array, key: jax.Array, num_particles: int,
                        num_chains: int) -> dict[str, jax.Array]:
  key_z, key_chains = jax.random.split(key)
  proposal = model.propose(params, x, key_z, num_particles)
  log_joint = model.log_joint(params, x, proposal.z)
  log_q_T = model.log_marginal_q(params, x, proposal.z, key_chains, num_chains)
  elbo, marginal = (jnp.mean(log_joint - log_q, axis=0) for log_q in (proposal.log_q, log_q_T))
  return {'elbo': elbo, 'marginal_elbo': marginal, 'auxiliary_gap': marginal - elbo}


def marginal_elbo(model, params, data: np.ndarray, key: jax.Array, num_particles: int = 10,
                  num_chains: int = 300, batch_size: int = 100) -> dict[str, np.ndarray]:
  """Where a hierarchical proposal's bound loses, per example of `data` `[N, P]` (`[N]` each).

  The extended-space ELBO that HVI trains (Huang et al. 2018, eq. 3) is the marginal ELBO
  E[log p(x, z_T) - log q_T(z_T | x)] minus the auxiliary gap
  E[KL(q(z_0..z_{T-1} | z_T, x) || r(z_0..z_{T-1} | z_T, x))] >= 0: what the backward
  transitions fail to invert. Both use the same `num_particles` z_T; log q_T takes
  `num_chains` backward chains each (`log_marginal_q`), so the marginal ELBO and the gap are
  biased high, less as num_chains grows. At T = 0 the gap is exactly 0.
  """
  if num_particles < 1:
    raise ValueError(f'num_particles must be >= 1, got {num_particles}')
  return _over_batches(
      lambda x, k: _marginal_estimates(model, params, x, k, num_particles, num_chains),
      data, key, batch_size, sharding=None)


def hvi_log_marginal(op, params: dict, z_T: jax.Array, key: jax.Array, num_samples: int = 2000,
                     log_q0_fn=dist.standard_normal_log_prob, chunk_size: int = 500,
                     ) -> jax.Array:
  """Importance-sampling estimate of the HVI marginal log q_T(z_T) for z_T `[B, D]`, `[B]`,
  from backward chains (`hvi.backward_log_weights`); biased low (a lower bound in
  expectation, tight as num_samples grows)."""
  def log_weights_fn(k, z, n):
    return hvi.backward_log_weights(op, params, z, k, n, log_q0_fn)
  return chunked_estimates(log_weights_fn, z_T, key, num_samples, chunk_size)['log_px']
