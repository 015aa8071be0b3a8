"""Log-weights log p(x, z) - log q(z | x) of a Gaussian-encoder / Bernoulli-decoder model.

With refinement transitions (hierarchical VI) the weight is that of the extended
space, log p(x, z_T) + sum_t log r_t - sum_t log q_t - log q_0(z_0) (Huang et al.
2018, eq. 3): its mean is the HVI ELBO and its log-mean-exp an unbiased-in-p(x)
importance-sampling estimate, so every bound and evaluator applies unchanged.
"""
import jax
import jax.numpy as jnp

from avi import distributions as dist


def vae_log_joint(model, params, x: jax.Array, z: jax.Array) -> jax.Array:
  """log p(x | z) + log p(z) for particles z `[K, B, D]` of data x `[B, P]`; `[K, B]`."""
  return (dist.bernoulli_log_prob(x, model.apply(params, z, method='decode'))
          + dist.standard_normal_log_prob(z))


def vae_log_weights(model, params, x: jax.Array, key: jax.Array, num_samples: int,
                    x_encoder: jax.Array | None = None, stop_q_grad: bool = False,
                    ) -> tuple[jax.Array, jax.Array]:
  """Draws z ~ q(z | x) and scores them. x `[B, P]` -> (log_w `[K, B]`, z `[K, B, D]`).

  `x_encoder` (default x) is what the encoder sees; the decoder always scores x,
  so a corrupted encoder input (denoising) changes q only. With `stop_q_grad`,
  log q(z | x) is scored with q's parameters held fixed while z keeps its
  reparameterized path (the log-weight of STL and DReG). With transitions, z is z_T.
  """
  x_enc = x if x_encoder is None else x_encoder
  if model.arch.num_transitions:
    if stop_q_grad:
      raise ValueError('stop_q_grad (STL, DReG) is not defined for hierarchical proposals')
    key_0, key_chain = jax.random.split(key)
    mean, scale, context = model.apply(params, x_enc, method='encode_with_context')
    z0 = dist.diag_gaussian_sample(key_0, mean, scale, num_samples)
    chain = model.apply(params, z0, context, key_chain, method='refine')
    z = chain.zs[-1]
    log_w = (vae_log_joint(model, params, x, z) + jnp.sum(chain.log_r - chain.log_q, axis=0)
             - dist.diag_gaussian_log_prob(z0, mean, scale))
    return log_w, z
  mean, scale = model.apply(params, x_enc, method='encode')
  z = dist.diag_gaussian_sample(key, mean, scale, num_samples)
  if stop_q_grad:
    mean, scale = jax.lax.stop_gradient((mean, scale))
  log_w = vae_log_joint(model, params, x, z) - dist.diag_gaussian_log_prob(z, mean, scale)
  return log_w, z
