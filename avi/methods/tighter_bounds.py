"""Training methods with separate model and inference-network objectives.

MIWAE, CIWAE and PIWAE (Rainforth et al. 2018, ICML version) and the IWAE
inference-network estimators STL (Roeder et al. 2017) and DReG (Tucker et al.
2019). The generative model (decoder) and the inference network (encoder) each
get the gradient of their own surrogate: parameters outside a surrogate's
network are held fixed with `stop_gradient` (`avi.methods.trainable`), so one scalar
loss carries both; with refinement transitions the inference objective trains them
too. Config fields: `k` (K), `num_samples` (M), `ciwae_beta`.
"""
import jax
import jax.numpy as jnp

from avi import estimators
from avi.log_weights import vae_log_weights
from avi.methods import refuse_transitions
from avi.methods import register
from avi.methods import trainable
from avi.methods.vae_iwae import check_num_samples


def _mk(config) -> tuple[int, int]:
  return (check_num_samples(config.num_samples, 'num_samples (M)'),
          check_num_samples(config.k, 'k (K)'))


def _routed(model, objective_fn, num_outer: int, num_particles: int):
  """loss = -(model objective on the decoder) - (inference objective on the encoder)."""

  def loss_fn(params, batch, rng):
    shape = (num_outer, num_particles, batch.shape[0])
    log_w_model = vae_log_weights(model, trainable(params, 'generative'), batch, rng,
                                  num_outer * num_particles)[0].reshape(shape)
    log_w_inference = vae_log_weights(model, trainable(params, 'inference'), batch, rng,
                                      num_outer * num_particles)[0].reshape(shape)
    model_obj, _ = objective_fn(log_w_model)
    _, inference_obj = objective_fn(log_w_inference)
    return -jnp.mean(model_obj) - jnp.mean(inference_obj), {
        'model_objective': jnp.mean(model_obj), 'inference_objective': jnp.mean(inference_obj)}

  return loss_fn


@register('miwae')
def make_miwae(model, config):
  """MIWAE(M, K) for both networks."""
  return _routed(model, estimators.miwae, *_mk(config))


@register('piwae')
def make_piwae(model, config):
  """IWAE over M K particles for the decoder, MIWAE(M, K) for the encoder."""
  return _routed(model, estimators.piwae, *_mk(config))


@register('ciwae')
def make_ciwae(model, config):
  """beta ELBO + (1 - beta) IWAE_K for both networks; beta = config.ciwae_beta."""
  beta = float(config.ciwae_beta)
  estimators.ciwae(jnp.zeros((1, 1)), beta)  # validates beta before training starts
  return _routed(model, lambda log_w: estimators.ciwae(log_w[0], beta), 1,
                 check_num_samples(config.k, 'k (K)'))


def _path_estimator(model, config, inference_surrogate, name: str):
  refuse_transitions(model, name, 'its path derivative needs log q(z | x) of z alone, which '
                     'a hierarchical proposal does not have in closed form')
  num_particles = check_num_samples(config.k, 'k (K)')

  def loss_fn(params, batch, rng):
    log_w = vae_log_weights(model, trainable(params, 'generative'), batch, rng, num_particles)[0]
    log_w_stop_q = vae_log_weights(model, trainable(params, 'inference'), batch, rng, num_particles,
                                   stop_q_grad=True)[0]
    model_obj = jax.nn.logsumexp(log_w, axis=0) - jnp.log(num_particles)
    inference_obj = inference_surrogate(log_w_stop_q)
    return -jnp.mean(model_obj) - jnp.mean(inference_obj), {
        f'iwae{num_particles}': jnp.mean(model_obj)}

  return loss_fn


@register('iwae_stl')
def make_iwae_stl(model, config):
  """IWAE for the decoder; sticking-the-landing path gradient for the encoder."""
  return _path_estimator(model, config, estimators.stl_inference, 'iwae_stl')


@register('iwae_dreg')
def make_iwae_dreg(model, config):
  """IWAE for the decoder; doubly reparameterized gradient for the encoder."""
  return _path_estimator(model, config, estimators.dreg_inference, 'iwae_dreg')
