import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from avi import bounds
from avi import config as config_lib
from avi import methods
from avi import models
from avi import networks


def _setup(k=5, num_samples=1):
  rng = np.random.default_rng(0)
  x = (rng.random((16, 20)) < 0.3).astype(np.float32)
  model, params = models.init_vae(
      jax.random.key(0), networks.Architecture((10,), 4), x)
  config = ml_collections.ConfigDict({'k': k, 'num_samples': num_samples})
  return model, params, jnp.asarray(x), config


def test_unknown_method_and_bad_k():
  model, _, _, config = _setup()
  with pytest.raises(ValueError, match="unknown method 'nope'.*iwae.*vae"):
    methods.build('nope', model, config)
  with pytest.raises(ValueError, match='k .* >= 1'):
    methods.build('iwae', model, ml_collections.ConfigDict({'k': 0, 'num_samples': 1}))
  with pytest.raises(ValueError, match='num_samples'):
    methods.build('vae', model, ml_collections.ConfigDict({'k': 1, 'num_samples': 0}))


def test_losses_are_negative_bounds_of_the_same_particles():
  model, params, x, config = _setup(k=5, num_samples=5)
  key = jax.random.key(3)
  log_w, z = model.log_weights(params, x, key, 5)
  assert log_w.shape == (5, 16) and z.shape == (5, 16, 4)
  iwae_loss, metrics = methods.build('iwae', model, config)(params, x, key)
  np.testing.assert_allclose(iwae_loss, -jnp.mean(bounds.iwae(log_w)), rtol=1e-6)
  vae_loss, _ = methods.build('vae', model, config)(params, x, key)
  np.testing.assert_allclose(vae_loss, -jnp.mean(bounds.elbo(log_w)), rtol=1e-6)
  assert vae_loss >= iwae_loss
  assert 1.0 <= metrics['ess'] <= 5.0


def test_iwae_with_one_particle_is_the_vae():
  model, params, x, config = _setup(k=1, num_samples=1)
  key = jax.random.key(4)
  g_iwae = jax.grad(lambda p: methods.build('iwae', model, config)(p, x, key)[0])(params)
  g_vae = jax.grad(lambda p: methods.build('vae', model, config)(p, x, key)[0])(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g_iwae, g_vae)


def test_warmup_tempers_prior_and_proposal_inside_every_weight():
  """beta rises linearly from beta0 to 1 over `warmup.steps`; the VAE's bound is then
  E[log p(x | z)] + beta E[log p(z) - log q(z | x)] and IWAE's the log-mean-exp of the
  same tempered weights, computed here from the particles independently."""
  model, params, x, config = _setup(k=5, num_samples=5)
  config.warmup = ml_collections.ConfigDict({'steps': 100, 'beta0': 0.2})
  key = jax.random.key(3)
  proposal = model.propose(params, x, key, 5)
  log_lik = model.log_likelihood(params, x, proposal.z)
  log_ratio = model.log_prior(proposal.z) - proposal.log_q
  for step, beta in ((0, 0.2), (50, 0.6), (100, 1.0), (5000, 1.0)):
    tempered = log_lik + beta * log_ratio
    loss, metrics = methods.build('vae', model, config)(params, x, key, step)
    np.testing.assert_allclose(loss, -jnp.mean(tempered), rtol=1e-5)
    np.testing.assert_allclose(metrics['beta'], beta, rtol=1e-6)
    loss, _ = methods.build('iwae', model, config)(params, x, key, step)
    np.testing.assert_allclose(loss, -jnp.mean(bounds.iwae(tempered)), rtol=1e-5)
  # The denoising bounds temper the same way (alpha = 0: the clean term's particles alone).
  config.air = ml_collections.ConfigDict({'denoise_sigma': 0.3, 'denoise_alpha': 0.0})
  key_clean = jax.random.split(key, 3)[0]
  proposal = model.propose(params, x, key_clean, 5)
  tempered = (model.log_likelihood(params, x, proposal.z)
              + 0.6 * (model.log_prior(proposal.z) - proposal.log_q))
  for method, bound in (('dvae', bounds.elbo), ('diwae', bounds.iwae)):
    loss, metrics = methods.build(method, model, config)(params, x, key, 50)
    np.testing.assert_allclose(loss, -jnp.mean(bound(tempered)), rtol=1e-5)
    np.testing.assert_allclose(metrics['beta'], 0.6, rtol=1e-6)
  config.method = 'piwae'
  with pytest.raises(ValueError, match=r'piwae has no warm-up \(warmup.steps = 100\); it is '
                     'defined for diwae, dvae, hvi_avo, iwae, vae'):
    methods.build('piwae', model, config)
  config.warmup.beta0 = 1.5
  with pytest.raises(ValueError, match=r'warmup.beta0 must lie in \[0, 1\]'):
    methods.build('vae', model, config)


def test_decoder_scores_clean_x_when_encoder_input_differs():
  model, params, x, _ = _setup()
  key = jax.random.key(5)
  clean, _ = model.log_weights(params, x, key, 3)
  noisy, _ = model.log_weights(params, x, key, 3, x_encoder=x + 0.5)
  mean, scale = model.encode(params, x + 0.5)[:2]
  z = mean + scale * jax.random.normal(key, (3, *mean.shape))
  from avi import distributions as dist  # pylint: disable=g-import-not-at-top
  expected = (dist.bernoulli_log_prob(x, model.logits(params, z))
              + dist.standard_normal_log_prob(z) - dist.diag_gaussian_log_prob(z, mean, scale))
  np.testing.assert_allclose(noisy, expected, rtol=1e-5)
  assert not np.allclose(clean, noisy)


def _grads(name, config, params, model, x, key):
  return jax.grad(lambda p: methods.build(name, model, config)(p, x, key)[0])(params)


def _close(a, b, **kw):
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, **kw), a, b)


def test_tighter_bound_methods_reduce_to_iwae_and_vae():
  model, params, x, _ = _setup()
  key = jax.random.key(6)
  iwae4 = _grads('iwae', ml_collections.ConfigDict({'k': 4, 'num_samples': 1}), params, model, x,
                 key)
  one_by_four = config_lib.from_dict({'k': 4, 'num_samples': 1, 'ciwae_beta': 0.0})
  for name in ('miwae', 'piwae', 'ciwae'):  # M = 1 / beta = 0: all are IWAE-4
    _close(_grads(name, one_by_four, params, model, x, key), iwae4, rtol=1e-4, atol=1e-6)
  vae4 = _grads('vae', ml_collections.ConfigDict({'k': 1, 'num_samples': 4}), params, model, x,
                key)
  four_by_one = ml_collections.ConfigDict({'k': 1, 'num_samples': 4})
  _close(_grads('miwae', four_by_one, params, model, x, key), vae4, rtol=1e-4, atol=1e-6)
  beta_one = config_lib.from_dict({'k': 4, 'num_samples': 1, 'ciwae_beta': 1.0})
  _close(_grads('ciwae', beta_one, params, model, x, key),
         _grads('vae', ml_collections.ConfigDict({'k': 1, 'num_samples': 4}), params, model, x,
                key), rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match='beta'):
    methods.build('ciwae', model, config_lib.from_dict(
        {'k': 4, 'num_samples': 1, 'ciwae_beta': 2.0}))


def test_piwae_routes_different_objectives():
  model, params, x, _ = _setup()
  key = jax.random.key(7)
  config = ml_collections.ConfigDict({'k': 2, 'num_samples': 3})
  piwae = _grads('piwae', config, params, model, x, key)
  miwae = _grads('miwae', config, params, model, x, key)
  iwae6 = _grads('iwae', ml_collections.ConfigDict({'k': 6, 'num_samples': 1}), params, model, x,
                 key)
  _close(piwae['params']['decoder'], iwae6['params']['decoder'], rtol=1e-4, atol=1e-6)
  _close(piwae['params']['encoder'], miwae['params']['encoder'], rtol=1e-4, atol=1e-6)


def test_stl_and_dreg_keep_the_iwae_decoder_gradient():
  model, params, x, _ = _setup()
  key = jax.random.key(8)
  config = ml_collections.ConfigDict({'k': 5, 'num_samples': 1})
  iwae = _grads('iwae', config, params, model, x, key)
  for name in ('iwae_stl', 'iwae_dreg'):
    g = _grads(name, config, params, model, x, key)
    _close(g['params']['decoder'], iwae['params']['decoder'], rtol=1e-4, atol=1e-6)
    enc, ref = g['params']['encoder']['mean']['kernel'], iwae['params']['encoder']['mean']['kernel']
    assert not np.allclose(enc, ref, rtol=1e-3)


@pytest.mark.parametrize('name, power', [('iwae_stl', 1), ('iwae_dreg', 2)])
def test_stl_and_dreg_encoder_gradients_against_their_surrogates(name, power):
  """STL: sum_k sg(w~_k) log w_k; DReG (Tucker et al. 2019, eq. 6): sg(w~_k^2), with log q's
  parameters held fixed. Written out here, independently of `avi.estimators`."""
  model, params, x, _ = _setup()
  key = jax.random.key(8)
  config = ml_collections.ConfigDict({'k': 5, 'num_samples': 1})

  def surrogate(p):
    log_w = model.log_weights(p, x, key, 5, stop_q_grad=True)[0]
    w = jax.lax.stop_gradient(jax.nn.softmax(log_w, 0))
    return jnp.mean(jnp.sum(w**power * log_w, 0))

  expected = jax.grad(surrogate)(params)['params']['encoder']
  got = _grads(name, config, params, model, x, key)['params']['encoder']
  jax.tree.map(lambda g, e: np.testing.assert_allclose(-g, e, rtol=1e-4, atol=1e-6), got,
               expected)


# The default run covers T = 0 without WNI and T = 2 with it; the two mixed corners run with
# --slow (T = 2 compiles slowly, and each corner repeats what the other two check).
_MATRIX = [pytest.param(name, t, h, marks=[pytest.mark.slow] if bool(t) != bool(h) else [])
           for name in methods.names() if not name.startswith('test_')
           for t in (0, 2) for h in (0.0, 0.7)]
_REFUSE_TRANSITIONS = {'iwae_stl', 'iwae_dreg', 'rem_v1', 'rem_v2', 'rws'}


@pytest.mark.parametrize('name, num_transitions, max_norm', _MATRIX)
def test_every_method_trains_every_parameter_or_refuses(name, num_transitions, max_norm):
  """Every leaf gets a finite, non-zero gradient, or the build names the group it can't train."""
  rng = np.random.default_rng(0)
  x = (rng.random((6, 12)) < 0.4).astype(np.float32)
  arch = networks.Architecture((8,), 2, encoder_max_norm=max_norm,
                               num_transitions=num_transitions, transition_hidden=8)
  model, params = models.init_vae(jax.random.key(0), arch, x)
  # Away from the init, where zero-initialized transition outputs block some gradients.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(tree, [p + 0.1 * jax.random.normal(k, p.shape)
                                     for p, k in zip(leaves, keys)])
  config = config_lib.from_dict({'k': 4, 'num_samples': 2, 'denoise_sigma': 0.3,
                                 'denoise_alpha': 0.5, 'avo_a': 0.5})
  if num_transitions and name in _REFUSE_TRANSITIONS:
    refusal = f"{name} cannot train the parameter groups 'forward' and 'backward'"
    with pytest.raises(ValueError, match=refusal):
      methods.build(name, model, config)
    return
  if not num_transitions and name == 'hvi_avo':
    with pytest.raises(ValueError, match='needs refinement transitions'):
      methods.build(name, model, config)
    return
  loss_fn = methods.build(name, model, config)
  # hvi_avo draws its step type: accumulate keys until both an AVO and an ELBO step ran.
  grad_fn = jax.jit(jax.grad(lambda p, key: loss_fn(p, jnp.asarray(x), key)[0]))
  grads = [grad_fn(params, jax.random.key(k)) for k in range(4 if name == 'hvi_avo' else 1)]
  total = jax.tree.map(lambda *g: sum(np.abs(np.asarray(v)) for v in g), *grads)
  for path, g in jax.tree_util.tree_leaves_with_path(total):
    where = jax.tree_util.keystr(path)
    assert np.all(np.isfinite(g)), f'{name}: non-finite gradient at {where}'
    assert np.any(g > 0), f'{name} (T={num_transitions}, H={max_norm}): zero gradient at {where}'


@pytest.mark.parametrize('pred', [True, False])
def test_cond_loss_has_the_value_and_gradient_of_a_differentiated_lax_cond(pred):
  first = lambda p, b, r, s: (jnp.sum(p['w'] * b) ** 2, {'m': jnp.sum(b)})
  second = lambda p, b, r, s: (jnp.sum(jnp.sin(p['w'])) * s, {'m': -jnp.sum(b)})
  params, batch, key = {'w': jnp.arange(3.0)}, jnp.array([0.5, -1.0, 2.0]), jax.random.key(0)

  def scaled(cond):  # the loss's cotangent 3 must scale the gradient
    loss, metrics = cond(jnp.asarray(pred), first, second, params, batch, key, 2)
    return 3.0 * loss, metrics
  ours = jax.value_and_grad(lambda p: scaled(
      lambda c, f, s, _, *a: methods.cond_loss(c, f, s, p, *a)), has_aux=True)(params)
  plain = jax.value_and_grad(lambda p: scaled(
      lambda c, f, s, _, *a: jax.lax.cond(c, f, s, p, *a)), has_aux=True)(params)
  chex.assert_trees_all_close(ours, plain, rtol=1e-6)
