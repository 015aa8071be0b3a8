"""Objectives with separate generative-model (theta) and inference-network (phi) targets.

Each function maps log-weights to per-data-point surrogates `[B]` to *maximize*;
the pair (model, inference) is differentiated w.r.t. theta and phi respectively
(Rainforth et al. 2018, ICML version; Tucker et al. 2019). `log_w` is
log p(x, z) - log q(z | x) with z reparameterized; `log_w_stop_q` is the same
log-weight with q's parameters held fixed inside log q (z keeps its path), which
STL and DReG differentiate.
"""
import jax
import jax.numpy as jnp

from avi import bounds

sg = jax.lax.stop_gradient


def miwae(log_w: jax.Array) -> tuple[jax.Array, jax.Array]:
  """MIWAE(M, K) for both networks; `[M, K, B]`. M = 1 is IWAE, K = 1 the M-sample ELBO."""
  value = bounds.miwae(log_w)
  return value, value


def ciwae(log_w: jax.Array, beta: float) -> tuple[jax.Array, jax.Array]:
  """CIWAE(beta) = beta ELBO + (1 - beta) IWAE_K for both networks; `[K, B]`."""
  if not 0.0 <= beta <= 1.0:
    raise ValueError(f'CIWAE beta must lie in [0, 1], got {beta}')
  value = beta * bounds.elbo(log_w) + (1.0 - beta) * bounds.iwae(log_w)
  return value, value


def piwae(log_w: jax.Array) -> tuple[jax.Array, jax.Array]:
  """PIWAE: IWAE over all M K particles for theta, MIWAE(M, K) for phi; `[M, K, B]`."""
  flat = log_w.reshape(-1, *log_w.shape[2:])
  return bounds.iwae(flat), bounds.miwae(log_w)


def stl_inference(log_w_stop_q: jax.Array) -> jax.Array:
  """Sticking the landing (Roeder et al. 2017) for IWAE: sum_k sg(w~_k) log w_k, `[K, B]`.

  Drops the score term of log q; its gradient is the path derivative only.
  """
  weights = sg(bounds.normalized_weights(log_w_stop_q))
  return jnp.sum(weights * log_w_stop_q, axis=0)


def dreg_inference(log_w_stop_q: jax.Array) -> jax.Array:
  """Doubly reparameterized IWAE gradient (Tucker et al. 2019, eq. 6): sum_k sg(w~_k^2) log w_k.

  Its gradient w.r.t. phi has the same expectation as the IWAE gradient.
  """
  weights = sg(bounds.normalized_weights(log_w_stop_q))
  return jnp.sum(weights**2 * log_w_stop_q, axis=0)
