"""The VAE (ELBO averaged over M samples) and the IWAE-K objective (Burda et al. 2016).

Both take the deterministic warm-up of `config.warmup` (`methods.warmup_beta`): beta
tempers log p(z) - log q inside every importance weight (`models.LatentVariableModel.
log_weights`), so the VAE's bound is E[log p(x | z)] - beta KL and IWAE's the
log-mean-exp of the tempered weights; both are the usual bounds once beta = 1.
"""
import jax.numpy as jnp

from avi import bounds
from avi.methods import beta_metric
from avi.methods import check_num_samples
from avi.methods import register
from avi.methods import route
from avi.methods import Terms
from avi.methods import warmup_beta


@register('vae', warmup=True)
def make_vae(model, config):
  """-ELBO with M = config.num_samples reparameterized samples per data point."""
  num_samples = check_num_samples(config.num_samples, 'num_samples (M)')
  beta_fn = warmup_beta(config)

  def terms_fn(params, batch, rng, step):
    beta = beta_fn(step)
    objective = bounds.elbo(model.log_weights(params, batch, rng, num_samples, beta)[0])
    return Terms(objective, metrics={'elbo': jnp.mean(objective), **beta_metric(beta)})

  return route(model, terms_fn)


@register('iwae', warmup=True)
def make_iwae(model, config):
  """-IWAE_K with K = config.k; reduces to the VAE at K = 1."""
  k = check_num_samples(config.k, 'k (K)')
  beta_fn = warmup_beta(config)

  def terms_fn(params, batch, rng, step):
    beta = beta_fn(step)
    log_w = model.log_weights(params, batch, rng, k, beta)[0]
    objective = bounds.iwae(log_w)
    return Terms(objective, metrics={
        f'iwae{k}': jnp.mean(objective), 'elbo': jnp.mean(bounds.elbo(log_w)),
        'ess': jnp.mean(bounds.effective_sample_size(log_w)), **beta_metric(beta)})

  return route(model, terms_fn)
