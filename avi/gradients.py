"""Statistics of stochastic gradient estimators, for any `(params, key) -> grads` function.

Gradients are pytrees; a batch of R draws has a leading `[R, ...]` axis on every
leaf. SNR and DSNR follow Rainforth et al. (2018), eq. 5 and eq. 13.
"""
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

Pytree = Any


def sample(grad_fn: Callable[[Pytree, jax.Array], Pytree], params: Pytree, key: jax.Array,
           num_draws: int, chunk_size: int = 100) -> Pytree:
  """R = num_draws independent gradient draws, `[R, ...]` per leaf.

  vmapped within chunks of `chunk_size` keys and `lax.map`ped over chunks, so memory
  is that of one chunk whatever R. Draw r uses key fold_in(key, r).
  """
  if num_draws < 1 or chunk_size < 1:
    raise ValueError(f'num_draws and chunk_size must be >= 1, got {num_draws}, {chunk_size}')
  chunk_size = min(chunk_size, num_draws)
  num_chunks = -(-num_draws // chunk_size)
  keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(num_chunks * chunk_size))
  keys = keys.reshape(num_chunks, chunk_size)
  draws = jax.lax.map(jax.vmap(lambda k: grad_fn(params, k)), keys)
  return jax.tree.map(lambda g: g.reshape(-1, *g.shape[2:])[:num_draws], draws)


def snr(draws: Pytree) -> Pytree:
  """Per-coordinate |E[g]| / std[g] over the draw axis (eq. 5)."""
  return jax.tree.map(lambda g: jnp.abs(g.mean(0)) / g.std(0, ddof=1), draws)


def _flatten_draws(draws: Pytree) -> jax.Array:
  """`[R, total_dim]`: every leaf's coordinates side by side."""
  return jnp.concatenate([g.reshape(g.shape[0], -1) for g in jax.tree.leaves(draws)], axis=1)


def dsnr(draws: Pytree, direction: Pytree | None = None) -> dict[str, float]:
  """Directional SNR E[||g_par|| / ||g_perp||] (eq. 13) with its quartiles.

  `direction` defaults to the mean of the draws themselves (Figure 5); pass a
  reference gradient, e.g. E[Delta_{1,1000}] (Figure 6), to measure against it.
  """
  g = _flatten_draws(draws)
  u = g.mean(0) if direction is None else jnp.concatenate(
      [d.reshape(-1) for d in jax.tree.leaves(direction)])
  u = u / jnp.linalg.norm(u)
  par = (g @ u)[:, None] * u
  ratio = np.asarray(jnp.linalg.norm(par, axis=1) / jnp.linalg.norm(g - par, axis=1))
  q1, median, q3 = np.percentile(ratio, [25, 50, 75])
  return {'dsnr': float(ratio.mean()), 'q1': float(q1), 'median': float(median), 'q3': float(q3)}


def random_dsnr(dim: int, key: jax.Array, num_draws: int = 10_000) -> float:
  """DSNR of unit-Gaussian random vectors in `dim` dimensions: the 'no information' level."""
  g = jax.random.normal(key, (num_draws, dim))
  return dsnr(g, direction=jnp.ones(dim))['dsnr']


def rmse(draws: Pytree, true: Pytree) -> Pytree:
  """Per-leaf root mean squared error sqrt(E ||g - true||^2) over the draws."""
  return jax.tree.map(
      lambda g, t: jnp.sqrt(jnp.mean(jnp.sum((g - t).reshape(g.shape[0], -1)**2, axis=1))),
      draws, true)


def loglog_slope(budgets, values) -> np.ndarray:
  """Least-squares slope of log(values) against log(budgets), per trailing coordinate.

  budgets `[n]`, values `[n, ...]` -> slopes `[...]`.
  """
  x = np.log(np.asarray(budgets, np.float64))
  y = np.log(np.asarray(values, np.float64))
  x = x - x.mean()
  return np.tensordot(x, y - y.mean(0), axes=(0, 0)) / np.sum(x**2)
