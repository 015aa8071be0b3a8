"""The VAE (ELBO averaged over M samples) and the IWAE-K objective (Burda et al. 2016)."""
import jax.numpy as jnp

from avi import bounds
from avi.log_weights import vae_log_weights
from avi.methods import register


def check_num_samples(value: int, name: str) -> int:
  if int(value) != value or value < 1:
    raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
  return int(value)


@register('vae')
def make_vae(model, config):
  """-ELBO with M = config.num_samples reparameterized samples per data point."""
  num_samples = check_num_samples(config.num_samples, 'num_samples (M)')

  def loss_fn(params, batch, rng):
    log_w, _ = vae_log_weights(model, params, batch, rng, num_samples)
    objective = bounds.elbo(log_w)
    return -jnp.mean(objective), {'elbo': jnp.mean(objective)}

  return loss_fn


@register('iwae')
def make_iwae(model, config):
  """-IWAE_K with K = config.k; reduces to the VAE at K = 1."""
  k = check_num_samples(config.k, 'k (K)')

  def loss_fn(params, batch, rng):
    log_w, _ = vae_log_weights(model, params, batch, rng, k)
    objective = bounds.iwae(log_w)
    return -jnp.mean(objective), {
        f'iwae{k}': jnp.mean(objective),
        'elbo': jnp.mean(bounds.elbo(log_w)),
        'ess': jnp.mean(bounds.effective_sample_size(log_w)),
    }

  return loss_fn
