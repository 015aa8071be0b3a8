"""Loss-calibrated AVO for amortized hierarchical VI (Huang et al. 2018, Sec. 4.3, 5.4).

The model needs refinement transitions (`config.num_transitions` T >= 1). Each
step is, with probability a = `config.avo_a`, an AVO step (eq. 4 for every
transition, targets log f_t = log p(z_t) + alpha_t log p(x | z_t), i.e. f_0 is
the prior and f_T the joint, gradients cut between transitions), otherwise an
ELBO step on the HVI bound (eq. 3). The choice is drawn inside the compiled step
(`lax.cond`), so only the chosen objective is computed. M = `config.num_samples`
chains per example. Plain HVI is the `vae` method with T >= 1 (a = 0).
"""
import functools

import jax
import jax.numpy as jnp

from avi import avo
from avi import distributions as dist
from avi.log_weights import vae_log_joint
from avi.log_weights import vae_log_weights
from avi.methods import register
from avi.methods.vae_iwae import check_num_samples


@register('hvi_avo')
def make_hvi_avo(model, config):
  num_samples = check_num_samples(config.num_samples, 'num_samples (M)')
  a = float(config.avo_a)
  avo.check_fraction(a, 'avo_a (the probability of an AVO step)')
  if model.arch.num_transitions < 1:
    raise ValueError('hvi_avo needs refinement transitions: set num_transitions >= 1')

  def elbo_loss(params, x, key):
    return -jnp.mean(vae_log_weights(model, params, x, key, num_samples)[0])

  def avo_loss(params, x, key):
    key_0, key_chain = jax.random.split(key)
    mean, scale, context = model.apply(params, x, method='encode_with_context')
    z0 = dist.diag_gaussian_sample(key_0, mean, scale, num_samples)
    chain = model.apply(params, z0, context, key_chain, True, method='refine')
    terms = avo.avo_objectives(chain, dist.diag_gaussian_log_prob(z0, mean, scale),
                               dist.standard_normal_log_prob,
                               functools.partial(vae_log_joint, model, params, x))
    return -jnp.mean(jnp.sum(terms, axis=0))

  def loss_fn(params, batch, rng):
    key_choice, key = jax.random.split(rng)
    use_avo = jax.random.uniform(key_choice) < a
    loss = jax.lax.cond(use_avo, avo_loss, elbo_loss, params, batch, key)
    return loss, {'avo_step': use_avo.astype(jnp.float32)}

  return loss_fn
