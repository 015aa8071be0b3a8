"""Amortized inference regularization by denoising (Shu et al. 2018, eqs. 13 and 16).

Gaussian noise eps ~ N(0, sigma^2 I) perturbs the *encoder's* input only; the
decoder scores the clean x. With mixing weight alpha the objective is

  alpha * E_eps[bound with q(z | x + eps)] + (1 - alpha) * [bound with q(z | x)],

for the ELBO (`dvae`, M = config.num_samples) and IWAE-K (`diwae`, K = config.k).
alpha = 0 is exactly the VAE / IWAE (the noisy term is not even computed).
Config fields `air.denoise_sigma`, `air.denoise_alpha`; a deterministic warm-up
(`config.warmup`) tempers both terms' weights as in `vae` / `iwae`. Weight-normalized inference
is an encoder option (`air.encoder_max_norm`), so it composes with every method.
"""
import jax
import jax.numpy as jnp

from avi import bounds
from avi.methods import beta_metric
from avi.methods import check_num_samples
from avi.methods import register
from avi.methods import route
from avi.methods import Terms
from avi.methods import warmup_beta


def check_denoising(sigma: float, alpha: float) -> None:
  if sigma < 0:
    raise ValueError(f'denoise_sigma must be >= 0, got {sigma}')
  if not 0.0 <= alpha <= 1.0:
    raise ValueError(f'denoise_alpha must lie in [0, 1], got {alpha}')


def _make(model, config, num_samples: int, reduce):
  sigma, alpha = float(config.air.denoise_sigma), float(config.air.denoise_alpha)
  check_denoising(sigma, alpha)
  beta_fn = warmup_beta(config)

  def terms_fn(params, batch, rng, step):
    key_clean, key_noisy, key_eps = jax.random.split(rng, 3)
    beta = beta_fn(step)
    objective, metrics = 0.0, beta_metric(beta)
    if alpha < 1.0:
      clean = reduce(model.log_weights(params, batch, key_clean, num_samples, beta)[0])
      objective += (1.0 - alpha) * clean
      metrics['clean_bound'] = jnp.mean(clean)
    if alpha > 0.0:
      noisy_input = batch + sigma * jax.random.normal(key_eps, batch.shape, batch.dtype)
      noisy = reduce(model.log_weights(params, batch, key_noisy, num_samples, beta,
                                       x_encoder=noisy_input)[0])
      objective += alpha * noisy
      metrics['denoising_bound'] = jnp.mean(noisy)
    return Terms(objective, metrics=metrics)

  return route(model, terms_fn)


@register('dvae', warmup=True)
def make_dvae(model, config):
  """Partially denoising VAE: the ELBO with M = config.num_samples samples."""
  return _make(model, config, check_num_samples(config.num_samples, 'num_samples (M)'),
               bounds.elbo)


@register('diwae', warmup=True)
def make_diwae(model, config):
  """Partially denoising IWAE-K, K = config.k."""
  return _make(model, config, check_num_samples(config.k, 'k (K)'), bounds.iwae)
