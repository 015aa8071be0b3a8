"""Loss-calibrated AVO for amortized hierarchical VI (Huang et al. 2018, Sec. 4.3, 5.4).

The model needs refinement transitions (T >= 1). Each step is, with probability
a = `config.hvi.avo_a`, an AVO step (eq. 4 for every transition, targets
log f_t = log p(z_t) + alpha_t log p(x | z_t), i.e. f_0 is the prior and f_T the
joint, gradients cut between transitions), otherwise an ELBO step on the HVI
bound (eq. 3). The choice is drawn inside the compiled step (`lax.cond`), so only
the chosen objective is computed. M = `config.num_samples` chains per example.
Plain HVI is the `vae` method with T >= 1 (a = 0).
"""
import functools

import jax
import jax.numpy as jnp

from avi import avo
from avi import bounds
from avi.methods import check_num_samples
from avi.methods import register
from avi.methods import route
from avi.methods import Terms


@register('hvi_avo')
def make_hvi_avo(model, config):
  num_samples = check_num_samples(config.num_samples, 'num_samples (M)')
  a = float(config.hvi.avo_a)
  avo.check_fraction(a, 'avo_a (the probability of an AVO step)')
  if model.num_transitions < 1:
    raise ValueError('hvi_avo needs refinement transitions: set num_transitions >= 1')

  def elbo(params, x, key):
    return bounds.elbo(model.log_weights(params, x, key, num_samples)[0])

  def avo_sum(params, x, key):
    proposal = model.propose(params, x, key, num_samples, cut_gradients=True)
    terms = avo.avo_objectives(proposal.chain, proposal.log_q0, model.log_prior,
                               functools.partial(model.log_joint, params, x))
    return jnp.mean(jnp.sum(terms, axis=0), axis=0)

  def terms_fn(params, batch, rng):
    key_choice, key = jax.random.split(rng)
    use_avo = jax.random.uniform(key_choice) < a
    objective = jax.lax.cond(use_avo, avo_sum, elbo, params, batch, key)
    return Terms(objective, metrics={'avo_step': use_avo.astype(jnp.float32)})

  return route(model, terms_fn)
