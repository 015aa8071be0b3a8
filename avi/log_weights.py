"""Log-weights log p(x, z) - log q(z | x) of a Gaussian-encoder / Bernoulli-decoder model."""
import jax

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
  reparameterized path (the log-weight of STL and DReG).
  """
  mean, scale = model.apply(params, x if x_encoder is None else x_encoder, method='encode')
  z = dist.diag_gaussian_sample(key, mean, scale, num_samples)
  if stop_q_grad:
    mean, scale = jax.lax.stop_gradient((mean, scale))
  log_w = vae_log_joint(model, params, x, z) - dist.diag_gaussian_log_prob(z, mean, scale)
  return log_w, z
