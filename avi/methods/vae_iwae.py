"""The VAE (ELBO averaged over M samples) and the IWAE-K objective (Burda et al. 2016)."""
import jax.numpy as jnp

from avi import bounds
from avi.methods import check_num_samples
from avi.methods import register
from avi.methods import route
from avi.methods import Terms


@register('vae')
def make_vae(model, config):
  """-ELBO with M = config.num_samples reparameterized samples per data point."""
  num_samples = check_num_samples(config.num_samples, 'num_samples (M)')

  def terms_fn(params, batch, rng):
    objective = bounds.elbo(model.log_weights(params, batch, rng, num_samples)[0])
    return Terms(objective, metrics={'elbo': jnp.mean(objective)})

  return route(model, terms_fn)


@register('iwae')
def make_iwae(model, config):
  """-IWAE_K with K = config.k; reduces to the VAE at K = 1."""
  k = check_num_samples(config.k, 'k (K)')

  def terms_fn(params, batch, rng):
    log_w = model.log_weights(params, batch, rng, k)[0]
    objective = bounds.iwae(log_w)
    return Terms(objective, metrics={
        f'iwae{k}': jnp.mean(objective), 'elbo': jnp.mean(bounds.elbo(log_w)),
        'ess': jnp.mean(bounds.effective_sample_size(log_w))})

  return route(model, terms_fn)
