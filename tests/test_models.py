"""The model interface: declared groups, gradient routing by group, extended-space proposals."""
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from avi import config as config_lib
from avi import distributions as dist
from avi import methods
from avi import models
from avi import networks


def _vae(num_transitions=2):
  x = (np.random.default_rng(0).random((5, 12)) < 0.4).astype(np.float32)
  arch = networks.Architecture((8,), 2, num_transitions=num_transitions, transition_hidden=8)
  model, params = models.init_vae(jax.random.key(0), arch, x)
  return model, params, jnp.asarray(x)


def _flat(tree):
  return np.concatenate([np.ravel(v) for v in jax.tree.leaves(tree)])


def test_groups_cover_every_parameter_and_norms_are_per_group():
  model, params, _ = _vae()
  assert {name: g.role for name, g in model.groups.items()} == {
      'decoder': 'generative', 'encoder': 'inference', 'forward': 'inference',
      'backward': 'inference'}
  ones = jax.tree.map(jnp.ones_like, params)
  norms = model.group_norms(ones)
  p = params['params']
  expected = {'decoder': p['decoder'], 'encoder': p['encoder'],
              'forward': p['transitions']['forward'], 'backward': p['transitions']['backward']}
  for name, subtree in expected.items():
    np.testing.assert_allclose(norms[name], np.sqrt(_flat(subtree).size), rtol=1e-6)
  labels = model.group_tree(params)['params']
  for name, subtree in {'decoder': labels['decoder'], 'encoder': labels['encoder'],
                        'forward': labels['transitions']['forward'],
                        'backward': labels['transitions']['backward']}.items():
    assert set(jax.tree.leaves(subtree)) == {name}


@pytest.mark.parametrize('selector, trained', [
    ('generative', {'decoder'}), ('inference', {'encoder', 'forward', 'backward'}),
    ('forward', {'forward'}), ('encoder', {'encoder'})])
def test_trainable_passes_gradient_to_the_selected_groups_only(selector, trained):
  model, params, x = _vae()
  grads = jax.grad(lambda p: jnp.sum(model.log_weights(
      model.trainable(p, selector), x, jax.random.key(1), 3)[0]))(params)
  norms = model.group_norms(grads)
  assert {g for g, n in norms.items() if n > 0} == trained
  with pytest.raises(ValueError, match="'transitions' names no parameter group"):
    model.trainable(params, 'transitions')


def test_extended_space_log_density_is_q0_plus_forward_minus_backward():
  model, params, x = _vae()
  key = jax.random.key(2)
  proposal = model.propose(params, x, key, 4)
  chain = proposal.chain
  mean, scale, _ = model.encode(params, x)
  np.testing.assert_allclose(proposal.log_q0, dist.diag_gaussian_log_prob(chain.zs[0], mean,
                                                                          scale), rtol=1e-6)
  np.testing.assert_allclose(
      proposal.log_q, proposal.log_q0 + jnp.sum(chain.log_q - chain.log_r, 0), rtol=1e-6)
  log_w, z = model.log_weights(params, x, key, 4)
  np.testing.assert_array_equal(z, chain.zs[-1])
  np.testing.assert_allclose(log_w, model.log_joint(params, x, z) - proposal.log_q, rtol=1e-6)


@dataclasses.dataclass(frozen=True)
class _Forgetful(models.BernoulliVAE):
  """Declares no group for the transitions."""

  @property
  def groups(self):
    return {k: v for k, v in super().groups.items() if k in ('decoder', 'encoder')}


def test_an_undeclared_parameter_and_an_untrained_group_fail_by_name():
  model, params, x = _vae()
  forgetful = _Forgetful(model.module)
  with pytest.raises(ValueError, match='parameter transitions/backward/.* belongs to no '
                                       'declared group'):
    forgetful.group_norms(params)

  def terms_fn(p, batch, rng, step):
    objective = jnp.mean(model.log_weights(p, batch, rng, 2)[0], 0)
    return methods.Terms(objective, {'decoder': -objective, 'encoder': -objective})

  with pytest.raises(ValueError, match="trains the parameter group 'forward' of BernoulliVAE by "
                                       "0 losses"):
    methods.route(model, terms_fn, ('decoder', 'encoder'), 'half_method')
  with pytest.raises(ValueError, match="group 'decoder' .* by 2 losses"):
    methods.route(model, terms_fn, ('generative', 'decoder', 'inference'), 'double_method')


def test_routed_losses_give_each_group_the_gradient_of_its_own_loss():
  """A made-up method: the decoder learns from the ELBO, the encoder from IWAE."""
  model, params, x = _vae(num_transitions=0)
  key = jax.random.key(3)

  def terms_fn(p, batch, rng, step):
    log_w = model.log_weights(p, batch, rng, 4)[0]
    elbo, iwae = jnp.mean(log_w, 0), jax.nn.logsumexp(log_w, 0) - jnp.log(4.0)
    return methods.Terms(iwae, {'generative': -elbo, 'inference': -iwae})

  loss_fn = methods.route(model, terms_fn, ('generative', 'inference'), 'mixed')
  got = jax.grad(lambda p: loss_fn(p, x, key)[0])(params)
  terms = lambda p: terms_fn(p, x, key, 0)
  elbo_loss_grad = jax.grad(lambda p: jnp.mean(terms(p).losses['generative']))(params)
  iwae_loss_grad = jax.grad(lambda p: -jnp.mean(terms(p).objective))(params)
  np.testing.assert_allclose(_flat(got['params']['decoder']),
                             _flat(elbo_loss_grad['params']['decoder']), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(_flat(got['params']['encoder']),
                             _flat(iwae_loss_grad['params']['encoder']), rtol=1e-5, atol=1e-7)


def test_from_config_reads_the_model_fields():
  config = ml_collections.ConfigDict({
      'architecture': 'rem', 'latent_dim': 3, 'seed': 0,
      'air': {'encoder_max_norm': 2.0}, 'decoder_chunk_rows': 500,
      'hvi': {'num_transitions': 1, 'hidden': 7, 'start': 'stationary', 'init_scale': 0.5,
              'context_rank': 4, 'min_scale': 0.02}})
  x = (np.random.default_rng(0).random((4, 784)) < 0.4).astype(np.float32)
  model, params = models.from_config(config, x)
  assert model.arch == dataclasses.replace(networks.PRESETS['rem'], latent_dim=3,
                                           encoder_max_norm=2.0, num_transitions=1,
                                           transition_hidden=7, transition_start='stationary',
                                           transition_init_scale=0.5,
                                           transition_context_rank=4,
                                           transition_min_scale=0.02)
  assert set(model.groups) == {'decoder', 'encoder', 'forward', 'backward'}
  assert model.chunk_rows == 500
  assert params['params']['transitions']['forward']['params']['hidden']['v'].shape == (1, 3, 7)
  config.hvi.hidden = 0
  with pytest.raises(ValueError, match='the transitions need >= 1 hidden unit, got 0'):
    models.from_config(config, x)
  config.hvi.hidden = 7
  config.decoder_chunk_rows = -1
  with pytest.raises(ValueError, match='decoder_chunk_rows must be an integer >= 0'):
    models.from_config(config, x)
  config.architecture = 'huge'
  with pytest.raises(ValueError, match="unknown architecture 'huge'"):
    models.from_config(config, x)


def test_the_configs_transition_width_is_the_architectures_default():
  """One default width, 100 units (docs/avo.md, "Transition width")."""
  assert config_lib.get_config().hvi.hidden == networks.Architecture.transition_hidden == 100


@pytest.mark.parametrize('method, num_transitions, k', [
    ('iwae', 0, 6), ('iwae', 0, 7), ('iwae_dreg', 0, 6), ('vae', 2, 6), ('hvi_avo', 2, 6)])
def test_particle_chunks_give_the_unchunked_loss_and_gradients(method, num_transitions, k):
  model, params, x = _vae(num_transitions)
  chunked = dataclasses.replace(model, chunk_rows=10)  # B = 5: 2 particles a chunk (K = 7: 1)
  config = ml_collections.ConfigDict({
      'k': k, 'num_samples': k, 'hvi': {'avo_a': 0.5, 'decoder_steps': 'all'}})

  def loss_and_grads(m):
    loss_fn = methods.build(method, m, config)
    return jax.value_and_grad(lambda p: loss_fn(p, x, jax.random.key(3))[0])(params)

  (loss, grads), (chunked_loss, chunked_grads) = loss_and_grads(model), loss_and_grads(chunked)
  np.testing.assert_allclose(chunked_loss, loss, rtol=1e-6)
  np.testing.assert_allclose(_flat(chunked_grads), _flat(grads), rtol=1e-5, atol=1e-6)


def test_particle_chunks_are_a_loop_only_when_k_times_b_exceeds_the_rows():
  fn = lambda z: jnp.sum(jnp.tanh(z), -1)
  z = jnp.ones((6, 5, 3))
  loops = lambda rows: 'scan' in str(jax.make_jaxpr(
      lambda z: models.map_particle_chunks(fn, z, rows))(z))
  assert not loops(0) and not loops(30) and loops(29) and loops(1)
  np.testing.assert_allclose(models.map_particle_chunks(fn, z, 10), fn(z), rtol=1e-6)
