"""Reductions of log-weights over an explicit particle axis.

A log-weight is log w = log p(x, z) - log q(z | x) for z ~ q(z | x). Arrays are
`[K, B]` (particles first, one column per data point) or `[M, K, B]` for the
multi-sample bounds; every reduction is per data point, never over the batch.
"""
import jax
import jax.numpy as jnp


def log_mean_exp(x: jax.Array, axis: int = 0) -> jax.Array:
  """log (1/K) sum_k exp(x_k) along `axis`, stable; -inf entries contribute 0.

  If every entry along `axis` is -inf the result is -inf (no NaN).
  """
  return jax.nn.logsumexp(x, axis=axis) - jnp.log(x.shape[axis])


def elbo(log_w: jax.Array, axis: int = 0) -> jax.Array:
  """ELBO estimate: the mean log-weight over the particle axis. `[K, B] -> [B]`."""
  return jnp.mean(log_w, axis=axis)


def iwae(log_w: jax.Array, axis: int = 0) -> jax.Array:
  """IWAE bound L_K = log (1/K) sum_k w_k (Burda et al. 2016, eq. 8). `[K, B] -> [B]`.

  Its gradient is sum_k w~_k grad log w_k with w~ the normalized weights; the
  weights are differentiated once, through logsumexp.
  """
  return log_mean_exp(log_w, axis=axis)


def miwae(log_w: jax.Array) -> jax.Array:
  """MIWAE(M, K): mean over M of IWAE-K bounds. `[M, K, B] -> [B]`; normalizes over K."""
  return jnp.mean(iwae(log_w, axis=1), axis=0)


def normalized_weights(log_w: jax.Array, axis: int = 0) -> jax.Array:
  """Self-normalized importance weights w~_k = w_k / sum_j w_j. Same shape as `log_w`."""
  return jax.nn.softmax(log_w, axis=axis)


def effective_sample_size(log_w: jax.Array, axis: int = 0) -> jax.Array:
  """Kish's ESS (sum w)^2 / sum w^2 = 1 / sum_k w~_k^2 with w~ = softmax(log_w), in [1, K].
  `[K, B] -> [B]`. Normalizing first keeps it exact in float32 for any offset of log_w
  (the difference of two log-sum-exps loses digits at log-weights of -1e6)."""
  return 1.0 / jnp.sum(jnp.square(jax.nn.softmax(log_w, axis=axis)), axis=axis)


def grouped_iwae(log_w: jax.Array, k: int) -> jax.Array:
  """Mean of IWAE-k over the K // k disjoint groups of k particles. `[K, B] -> [B]`.

  An unbiased estimate of E[L_k] from one draw of K particles (K divisible by k).
  """
  num_particles = log_w.shape[0]
  if num_particles % k:
    raise ValueError(f'grouped_iwae: K={num_particles} is not divisible by k={k}.')
  return miwae(log_w.reshape(num_particles // k, k, *log_w.shape[1:]))
