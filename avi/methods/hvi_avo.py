"""Loss-calibrated AVO for amortized hierarchical VI (Huang et al. 2018, Sec. 4.3, 5.4).

The model needs refinement transitions (T >= 1). Each step is, with probability
a = `config.hvi.avo_a`, an AVO step, otherwise an ELBO step on the HVI bound (eq. 3)
for every parameter. In an AVO step the transitions (groups `forward` and `backward`)
learn from eq. 4 for every transition (targets log f_t = log p(z_t) + alpha_t
log p(x | z_t), f_0 the prior and f_T the joint, gradients cut between transitions),
while the decoder and q_0 learn from the HVI ELBO of the same chains: eq. 4 and Sec.
4.3 optimize q_t and r_t only, not a decoder fitted to the tempered targets at the
deliberately broad intermediate z_t. The choice
is drawn inside the compiled step (`methods.cond_loss`), so only the chosen step is computed.
M = `config.num_samples` chains per example. Plain HVI is the `vae` method with T >= 1.
`config.hvi.decoder_steps = 'elbo'` leaves the decoder and q_0 untrained in AVO steps
(an ablation: on MNIST it trains worse models, by 0.1-0.8 nats even given as many decoder
updates; on the noise model neither setting wins beyond the noise of its training;
docs/avo.md).

With a warm-up (`config.warmup`), beta scales every entropy and cross-entropy term of
both objectives: log p(z) - log q in the ELBO (eq. 2), and in eq. 4 the prior part of
every annealed target and log r_t - log q_t - log q_{t-1}.
"""

import jax
import jax.numpy as jnp

from avi import avo
from avi import bounds
from avi.methods import beta_metric
from avi.methods import check_num_samples
from avi.methods import cond_loss
from avi.methods import register
from avi.methods import route
from avi.methods import Terms
from avi.methods import warmup_beta

TRANSITIONS = ('forward', 'backward')


@register('hvi_avo', warmup=True)
def make_hvi_avo(model, config):
  num_samples = check_num_samples(config.num_samples, 'num_samples (M)')
  a = float(config.hvi.avo_a)
  avo.check_fraction(a, 'avo_a (the probability of an AVO step)')
  if model.num_transitions < 1:
    raise ValueError('hvi_avo needs refinement transitions: set num_transitions >= 1')
  beta_fn = warmup_beta(config)
  model_and_q0 = tuple(g for g in model.groups if g not in TRANSITIONS)
  decoder_steps = config.hvi.get('decoder_steps', 'all')
  if decoder_steps not in ('all', 'elbo'):
    raise ValueError(f"hvi.decoder_steps must be 'all' or 'elbo', got {decoder_steps!r}")
  # 'elbo': AVO steps train the transitions alone (the ablation of docs/avo.md); the other
  # groups' loss is then a constant, so the step computes no ELBO backward pass at all.
  model_loss = jnp.negative if decoder_steps == 'all' else jnp.zeros_like

  def elbo(params, x, key, beta):
    return bounds.elbo(model.log_weights(params, x, key, num_samples, beta)[0])

  def avo_sum(params, x, key, beta):
    """Eq. 4 summed over transitions; `[B]`."""
    proposal = model.propose(params, x, key, num_samples, cut_gradients=True)
    log_prior = lambda z: beta * model.log_prior(z)
    log_target = lambda z: model.log_likelihood(params, x, z) + log_prior(z)
    terms = avo.avo_objectives(proposal.chain, proposal.log_q0, log_prior, log_target, beta)
    return jnp.mean(jnp.sum(terms, axis=0), axis=0)

  def elbo_terms(params, batch, rng, step):
    beta = beta_fn(step)
    objective = elbo(params, batch, rng, beta)
    return Terms(objective, metrics={'elbo': jnp.mean(objective), **beta_metric(beta)})

  def avo_terms(params, batch, rng, step):
    beta = beta_fn(step)
    objective = elbo(params, batch, rng, beta)  # the same chains as avo_sum's (same key)
    return Terms(objective, {model_and_q0: model_loss(objective),
                             TRANSITIONS: -avo_sum(params, batch, rng, beta)},
                 {'elbo': jnp.mean(objective), **beta_metric(beta)})

  elbo_step = route(model, elbo_terms)
  avo_step = route(model, avo_terms, (model_and_q0, TRANSITIONS), 'hvi_avo')

  def loss_fn(params, batch, rng, step=0):
    key_choice, key = jax.random.split(rng)
    use_avo = jax.random.uniform(key_choice) < a
    loss, metrics = cond_loss(use_avo, avo_step, elbo_step, params, batch, key, step)
    return loss, {**metrics, 'avo_step': use_avo.astype(jnp.float32)}

  return loss_fn
