"""Training methods with separate model and inference-network objectives.

MIWAE, CIWAE and PIWAE (Rainforth et al. 2018, ICML version) and the IWAE
inference-network estimators STL (Roeder et al. 2017) and DReG (Tucker et al.
2019). Where the two objectives differ (PIWAE, STL, DReG) the generative group
gets the gradient of the model objective and every inference group (encoder, and
with T > 0 the transitions) that of the inference objective (`avi.methods.route`).
Config fields: `k` (K), `num_samples` (M), `ciwae.beta`.
"""
import jax
import jax.numpy as jnp

from avi import estimators
from avi.methods import check_num_samples
from avi.methods import refuse_transitions
from avi.methods import register
from avi.methods import route
from avi.methods import Terms
from avi.models import GENERATIVE
from avi.models import INFERENCE


def _mk(config) -> tuple[int, int]:
  return (check_num_samples(config.num_samples, 'num_samples (M)'),
          check_num_samples(config.k, 'k (K)'))


def _make(model, objective_fn, num_outer: int, num_particles: int, name: str, split: bool):
  """`objective_fn(log_w [M, K, B]) -> (model objective, inference objective)`. With `split`
  the generative group learns from the first and the inference groups from the second;
  otherwise they are one objective and one pass trains every group."""

  def terms_fn(params, batch, rng, step):
    log_w = model.log_weights(params, batch, rng, num_outer * num_particles)[0]
    model_obj, inference_obj = objective_fn(log_w.reshape(num_outer, num_particles, -1))
    metrics = {'model_objective': jnp.mean(model_obj),
               'inference_objective': jnp.mean(inference_obj)}
    losses = {GENERATIVE: -model_obj, INFERENCE: -inference_obj} if split else None
    return Terms(model_obj, losses, metrics)

  return route(model, terms_fn, (GENERATIVE, INFERENCE) if split else None, name)


@register('miwae')
def make_miwae(model, config):
  """MIWAE(M, K) for both networks."""
  return _make(model, estimators.miwae, *_mk(config), 'miwae', split=False)


@register('piwae')
def make_piwae(model, config):
  """IWAE over M K particles for the decoder, MIWAE(M, K) for the encoder."""
  return _make(model, estimators.piwae, *_mk(config), 'piwae', split=True)


@register('ciwae')
def make_ciwae(model, config):
  """beta ELBO + (1 - beta) IWAE_K for both networks; beta = config.ciwae.beta."""
  beta = float(config.ciwae.beta)
  estimators.ciwae(jnp.zeros((1, 1)), beta)  # validates beta before training starts
  return _make(model, lambda log_w: estimators.ciwae(log_w[0], beta), 1,
               check_num_samples(config.k, 'k (K)'), 'ciwae', split=False)


def _path_estimator(model, config, inference_surrogate, name: str):
  refuse_transitions(model, name, 'its path derivative needs log q(z | x) of z alone, which '
                     'a hierarchical proposal does not have in closed form')
  num_particles = check_num_samples(config.k, 'k (K)')

  def terms_fn(params, batch, rng, step):
    log_w = model.log_weights(params, batch, rng, num_particles)[0]
    # The same particles scored with q's parameters held fixed: the STL/DReG log-weight.
    log_w_stop_q = model.log_weights(params, batch, rng, num_particles, stop_q_grad=True)[0]
    model_obj = jax.nn.logsumexp(log_w, axis=0) - jnp.log(num_particles)
    return Terms(model_obj, {GENERATIVE: -model_obj,
                             INFERENCE: -inference_surrogate(log_w_stop_q)},
                 {f'iwae{num_particles}': jnp.mean(model_obj)})

  return route(model, terms_fn, (GENERATIVE, INFERENCE), name)


@register('iwae_stl')
def make_iwae_stl(model, config):
  """IWAE for the decoder; sticking-the-landing path gradient for the encoder."""
  return _path_estimator(model, config, estimators.stl_inference, 'iwae_stl')


@register('iwae_dreg')
def make_iwae_dreg(model, config):
  """IWAE for the decoder; doubly reparameterized gradient for the encoder."""
  return _path_estimator(model, config, estimators.dreg_inference, 'iwae_dreg')
