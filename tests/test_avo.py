"""Hierarchical VI and annealed variational objectives (Huang et al. 2018)."""
import dataclasses
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avi import avo
from avi import config as config_lib
from avi import data
from avi import distributions as dist
from avi import energies
from avi import energy_fit
from avi import evaluation
from avi import fitting
from avi import hvi
from avi import methods
from avi import models
from avi import networks


@pytest.mark.parametrize('name', ['c', 'd', 'e', 'f'])
def test_log_normalizers_match_quadrature(name):
  np.testing.assert_allclose(energies.quadrature_log_normalizer(name, num=1501),
                             energies.log_normalizer(name), atol=1e-4)


def test_quadrature_energies_are_finite_and_tables_are_normalized():
  for name in ('a', 'b'):
    assert math.isfinite(energies.log_normalizer(name))
  np.testing.assert_allclose(sum(energies.MIXTURE_WEIGHTS), 1.0)
  # Energy (d) is a density: its value at a mode is the weighted Gaussian peak (others ~0).
  peak = energies.log_density('d', jnp.array([0.0, 2.0]))
  np.testing.assert_allclose(peak, math.log(0.4 / (2 * math.pi * 0.2)), atol=1e-3)


def test_energy_bad_input():
  with pytest.raises(ValueError, match="unknown energy 'g'"):
    energies.log_density('g', jnp.zeros((3, 2)))
  with pytest.raises(ValueError, match=r'must be \[..., 2\]'):
    energies.log_density('a', jnp.zeros((3, 3)))


def _random_transitions(key, num_transitions=3, dim=2, context=None, hidden=16):
  """Transitions with every weight random (not the zero-output init), so tests see
  non-trivial gates, means and scales."""
  op = hvi.Refinement(hidden, 'relu')
  params = hvi.init_transitions(key, op, num_transitions, jnp.zeros((1, 1, dim)), context)
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
  leaves = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
  return op, jax.tree.unflatten(tree, leaves)


def test_chain_shapes_and_scores():
  op, params = _random_transitions(jax.random.key(0))
  z0 = jax.random.normal(jax.random.key(1), (5, 4, 2))
  chain = hvi.sample_chain(op, params, z0, jax.random.key(2))
  chex.assert_shape(chain.zs, (4, 5, 4, 2))
  chex.assert_shape((chain.log_q, chain.log_r), (3, 5, 4))
  # Independent recomputation of transition 2's scores from the sampled states.
  fwd = jax.tree.map(lambda x: x[1], params['forward'])
  bwd = jax.tree.map(lambda x: x[1], params['backward'])
  mean, scale = op.apply(fwd, chain.zs[1])
  r_mean, r_scale = op.apply(bwd, chain.zs[2])
  np.testing.assert_allclose(chain.log_q[1], dist.diag_gaussian_log_prob(chain.zs[2], mean, scale),
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(chain.log_r[1],
                             dist.diag_gaussian_log_prob(chain.zs[1], r_mean, r_scale),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('start,init_scale,c,atol', [
    ('stationary', 0.5, 1 - 1 / (1 + math.exp(2)), 0.02),
    ('identity', 0.3, 1.0, 0.06),  # log v = 0.17; r_t is a worse proposal here
])
def test_marginal_estimate_matches_closed_form_at_init(start, init_scale, c, atol):
  """At init every transition is z_t = c z_{t-1} + s eps (stationary: c = 1 - sigmoid(-2);
  identity: c = 1; s = init_scale plus the 1e-3 floor), so with T = 2 and q_0 = N(0, I),
  q_2 = N(0, v I), v = c^4 + s^2 c^2 + s^2."""
  op = hvi.Refinement(16, 'relu', start, init_scale)
  params = hvi.init_transitions(jax.random.key(3), op, 2, jnp.zeros((1, 1, 2)))
  s2 = (init_scale + op.min_scale)**2
  v = c**4 + s2 * c**2 + s2
  z = jax.random.normal(jax.random.key(4), (50, 2)) * math.sqrt(v)
  log_q = evaluation.hvi_log_marginal(op, params, z, jax.random.key(5), num_samples=2000)
  exact = dist.standard_normal_log_prob(z / math.sqrt(v)) - math.log(v)
  np.testing.assert_allclose(log_q, exact, atol=atol)


def test_identity_start_is_its_own_reverse_with_a_context():
  """The amortized start: mean z and std init_scale + 1e-3 in both directions, whatever the
  context, so every log r_t - log q_t is exactly 0."""
  op = hvi.Refinement(32, 'elu', 'identity', 0.05)
  context = jax.random.normal(jax.random.key(0), (4, 6))
  params = hvi.init_transitions(jax.random.key(1), op, 3, jnp.zeros((1, 1, 2)), context)
  z0 = 3.0 * jax.random.normal(jax.random.key(2), (5, 4, 2))
  chain = hvi.sample_chain(op, params, z0, jax.random.key(3), context)
  np.testing.assert_array_equal(chain.log_r, chain.log_q)
  steps = (chain.zs[1:] - chain.zs[:-1]) / 0.051
  assert 0.7 < float(jnp.std(steps)) < 1.3
  with pytest.raises(ValueError, match="unknown transition init 'eye'"):
    hvi.Refinement(4, 'elu', 'eye').init(jax.random.key(0), z0)
  with pytest.raises(ValueError, match='init_scale must be > 0'):
    hvi.Refinement(4, 'elu', 'identity', 0.0).init(jax.random.key(0), z0)


def test_hvi_elbo_lower_bounds_log_normalizer_and_last_avo_term_is_the_elbo():
  op, params = _random_transitions(jax.random.key(5), num_transitions=4)
  z0 = jax.random.normal(jax.random.key(6), (4000, 1, 2))
  chain = hvi.sample_chain(op, params, z0, jax.random.key(7))
  log_q0 = dist.standard_normal_log_prob(z0)
  log_f = lambda z: energies.log_density('d', z)
  elbo = avo.hvi_elbo(chain, log_q0, log_f(chain.zs[-1]))
  assert float(jnp.mean(elbo)) < energies.log_normalizer('d')
  terms = avo.avo_objectives(chain, log_q0, dist.standard_normal_log_prob, log_f)
  chex.assert_shape(terms, (4, 4000, 1))
  np.testing.assert_allclose(terms[-1], elbo, rtol=1e-4, atol=1e-3)
  # beta scales exactly the entropy and cross-entropy terms.
  half = avo.hvi_elbo(chain, log_q0, log_f(chain.zs[-1]), 0.5)
  error = jnp.abs(2 * half - elbo - log_f(chain.zs[-1]))
  assert jnp.all(error <= 1e-6 * jnp.abs(elbo - half) + 1e-3)  # float32 cancellation
  # Eq. 4 under a warm-up: every term is log f_t + beta (its beta = 1 term - log f_t), and
  # the last one is the tempered HVI bound.
  tempered = avo.avo_objectives(chain, log_q0, dist.standard_normal_log_prob, log_f, 0.5)
  alpha = avo.annealing_weights(4)[:, None, None]
  log_ft = (alpha * log_f(chain.zs[1:])
            + (1.0 - alpha) * dist.standard_normal_log_prob(chain.zs[1:]))
  np.testing.assert_allclose(tempered, log_ft + 0.5 * (terms - log_ft), rtol=1e-4, atol=2e-3)
  np.testing.assert_allclose(tempered[-1], half, rtol=1e-4, atol=2e-3)


def _grad_norms_by_transition(objective: str, term: int):
  op, params = _random_transitions(jax.random.key(8), num_transitions=3)

  def value(p):
    z0 = jax.random.normal(jax.random.key(9), (16, 1, 2))
    chain = hvi.sample_chain(op, p, z0, jax.random.key(10), cut_gradients=objective == 'avo')
    log_q0 = dist.standard_normal_log_prob(z0)
    log_f = lambda z: energies.log_density('d', z)
    if objective == 'avo':
      return jnp.mean(avo.avo_objectives(chain, log_q0, dist.standard_normal_log_prob,
                                         log_f)[term])
    return jnp.mean(avo.hvi_elbo(chain, log_q0, log_f(chain.zs[term + 1])))

  grads = jax.grad(value)(params)['forward']
  return np.array([sum(float(jnp.sum(jnp.abs(g[t]))) for g in jax.tree.leaves(grads))
                   for t in range(3)])


def test_avo_cuts_gradients_between_transitions():
  norms = _grad_norms_by_transition('avo', term=1)  # term of transition 2
  assert norms[1] > 0 and norms[0] == 0 and norms[2] == 0
  # Without the cut an earlier transition does get gradient through z_1.
  assert _grad_norms_by_transition('elbo', term=1)[0] > 0


def test_annealing_and_beta_schedules():
  np.testing.assert_allclose(avo.annealing_weights(4), [0.25, 0.5, 0.75, 1.0])
  beta = avo.beta_schedule(0.5, 100)
  np.testing.assert_allclose([beta(0), beta(25), beta(50), beta(99)],
                             [0.01, 0.505, 1.0, 1.0], rtol=1e-6)
  np.testing.assert_allclose(avo.beta_schedule(0.0, 100)(0), 1.0)
  with pytest.raises(ValueError, match=r'fraction must lie in \[0, 1\]'):
    avo.beta_schedule(1.5, 100)


@pytest.mark.parametrize('settings, fraction, message', [
    (energy_fit.Settings(energy='z'), 0.0, "unknown energy 'z'"),
    (energy_fit.Settings(objective='iwae'), 0.0, "unknown objective 'iwae'"),
    (energy_fit.Settings(num_transitions=0), 0.0, 'T must be >= 1'),
    (energy_fit.Settings(), -0.1, r'fraction must lie in \[0, 1\]'),
])
def test_fit_bad_input(settings, fraction, message):
  with pytest.raises(ValueError, match=message):
    energy_fit.check(settings, fraction)


@pytest.mark.slow
def test_avo_finds_all_four_modes_of_energy_d():
  """The small-scale version of the README's energy (d) experiment (one seed)."""
  settings = energy_fit.Settings(energy='d', objective='avo', steps=2000)
  params, losses = jax.jit(lambda k: energy_fit.fit(settings, k))(jax.random.key(0))
  assert np.all(np.isfinite(losses))
  z = energy_fit.sample(settings, params, jax.random.key(1), 2000)[-1]
  assert np.all(energy_fit.mode_coverage(z) > 0.05), energy_fit.mode_coverage(z)
  kl = energy_fit.kl_estimate(settings, params, z, jax.random.key(2), num_inner=200)
  untrained = energy_fit.init(settings, jax.random.key(0))
  z_init = energy_fit.sample(settings, untrained, jax.random.key(1), 2000)[-1]
  kl_init = energy_fit.kl_estimate(settings, untrained, z_init, jax.random.key(2), num_inner=200)
  assert 0 < kl['kl'] < 0.5 < kl_init['kl'], (kl, kl_init)


def _hvi_model(num_transitions=2, latent_dim=2, scale=0.2):
  arch = dataclasses.replace(networks.PRESETS['avo'], hidden=(32,), latent_dim=latent_dim,
                             num_transitions=num_transitions, transition_hidden=16,
                             transition_init_scale=0.5)
  x = (np.random.default_rng(0).random((6, 20)) < 0.4).astype(np.float32)
  model, params = models.init_vae(jax.random.key(0), arch, x)
  # Perturb every weight so the transitions differ from their identity-like init.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(tree, [p + scale * jax.random.normal(k, p.shape)
                                     for p, k in zip(leaves, keys)])
  return model, params, jnp.asarray(x)


def test_amortized_hvi_weights_estimate_log_px_by_quadrature():
  """With a 2-d latent, log p(x) = log of the integral of p(x | z) p(z) on a grid; the
  extended-space weights of the HVI proposal must estimate it (and their mean bound it).
  Perturbed weights (scale 0.05) keep the proposal good enough for K = 20000 (ESS > 900)."""
  model, params, x = _hvi_model(scale=0.05)
  axis = np.linspace(-6, 6, 241)
  grid = jnp.asarray(np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 1, 2), jnp.float32)
  log_joint = model.log_joint(params, x, grid)  # [G, B]
  exact = jax.nn.logsumexp(log_joint, axis=0) + 2 * np.log(axis[1] - axis[0])
  log_w, z = model.log_weights(params, x, jax.random.key(2), 20000)
  chex.assert_shape(z, (20000, 6, 2))
  estimate = jax.nn.logsumexp(log_w, axis=0) - np.log(20000)
  np.testing.assert_allclose(estimate, exact, atol=0.05)
  assert np.all(np.asarray(jnp.mean(log_w, 0)) < np.asarray(exact))


def test_marginal_q_of_fresh_transitions_matches_the_closed_form():
  """At init each identity-start transition adds N(0, s^2) noise whatever x (s = 0.5 + 1e-3),
  so q_T(z | x) = N(mean, scale^2 + T s^2): the backward-chain estimate must find it."""
  model, params, x = _hvi_model(scale=0.0)
  mean, scale, _ = model.encode(params, x)
  z = model.propose(params, x, jax.random.key(1), 20).z
  log_q = model.log_marginal_q(params, x, z, jax.random.key(2), num_chains=2000)
  exact = dist.diag_gaussian_log_prob(z, mean, jnp.sqrt(scale**2 + 2 * 0.501**2))
  chex.assert_shape(log_q, (20, 6))
  assert float(jnp.max(jnp.abs(log_q - exact))) < 0.25  # the tails: r_t is a poorer proposal
  assert abs(float(jnp.mean(log_q - exact))) < 0.02


def test_marginal_elbo_lies_between_the_extended_elbo_and_log_px():
  """Extended ELBO <= marginal ELBO <= log p(x) (quadrature) per example, the auxiliary
  gap shrinking as the backward chains multiply (its estimate is biased high); exactly 0
  at T = 0."""
  model, params, x = _hvi_model(scale=0.05)
  axis = np.linspace(-6, 6, 241)
  grid = jnp.asarray(np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 1, 2), jnp.float32)
  exact = jax.nn.logsumexp(model.log_joint(params, x, grid), axis=0) + 2 * np.log(axis[1] - axis[0])
  few, many = (evaluation.marginal_elbo(model, params, np.asarray(x), jax.random.key(0),
                                        num_particles=200, num_chains=m, batch_size=6)
               for m in (3, 300))
  np.testing.assert_array_equal(few['elbo'], many['elbo'])  # the same particles
  assert np.all(many['elbo'] < many['marginal_elbo'])
  assert np.all(many['marginal_elbo'] < np.asarray(exact))
  assert np.all(few['auxiliary_gap'] > many['auxiliary_gap'])
  plain, plain_params, _ = _hvi_model(num_transitions=0, scale=0.05)
  out = evaluation.marginal_elbo(plain, plain_params, np.asarray(x), jax.random.key(0),
                                 num_particles=10, num_chains=1)
  np.testing.assert_array_equal(out['auxiliary_gap'], 0.0)
  with pytest.raises(ValueError, match='num_chains must be >= 1'):
    evaluation.marginal_elbo(model, params, np.asarray(x), jax.random.key(0), num_chains=0)
  with pytest.raises(ValueError, match='num_particles must be >= 1'):
    evaluation.marginal_elbo(model, params, np.asarray(x), jax.random.key(0), num_particles=0)


def test_hvi_avo_method_and_bad_input():
  model, params, x = _hvi_model()
  config = config_lib.from_dict({'num_samples': 3, 'avo_a': 0.5})
  loss_fn = jax.jit(methods.build('hvi_avo', model, config))
  losses = [loss_fn(params, x, jax.random.key(i)) for i in range(20)]
  steps = np.array([float(m['avo_step']) for _, m in losses])
  assert 0 < steps.mean() < 1  # both objectives were drawn
  assert all(np.isfinite(float(loss)) for loss, _ in losses)  # gradients: test_methods' matrix
  with pytest.raises(ValueError, match=r'avo_a .* must lie in \[0, 1\]'):
    methods.build('hvi_avo', model, config_lib.from_dict({'num_samples': 1, 'avo_a': 2.0}))
  plain, _, _ = _hvi_model(num_transitions=0)
  with pytest.raises(ValueError, match='num_transitions >= 1'):
    methods.build('hvi_avo', plain, config)
  with pytest.raises(ValueError, match='not defined for hierarchical proposals'):
    model.log_weights(params, x, jax.random.key(0), 2, stop_q_grad=True)


def test_hvi_avo_steps_train_transitions_by_cut_avo_and_the_rest_by_the_hvi_elbo():
  """a = 1: the transitions get the gradient of eq. 4 summed over t on a chain with the
  gradient cut between transitions (Sec. 4.3), the decoder and q_0 that of the HVI ELBO
  (eq. 3) of the same chains; a = 0: every group gets the HVI ELBO's."""
  model, params, x = _hvi_model()
  key = jax.random.key(3)
  step_key = jax.random.split(key)[1]  # the method's key after drawing the step type

  def avo_loss(p, cut):
    key_0, key_chain = jax.random.split(step_key)
    mean, scale, context = model.encode(p, x)
    z0 = dist.diag_gaussian_sample(key_0, mean, scale, 3)
    chain = model.refine(p, z0, context, key_chain, cut)
    terms = avo.avo_objectives(chain, dist.diag_gaussian_log_prob(z0, mean, scale),
                               dist.standard_normal_log_prob,
                               functools.partial(model.log_joint, p, x))
    return -jnp.mean(jnp.sum(terms, 0))

  def elbo_loss(p):
    return -jnp.mean(model.log_weights(p, x, step_key, 3)[0])

  def method_loss(p, a):
    config = config_lib.from_dict({'num_samples': 3, 'avo_a': a})
    return methods.build('hvi_avo', model, config)(p, x, key)[0]

  grad = lambda f, *args: jax.jit(jax.grad(f), static_argnums=1)(params, *args)
  got, cut, uncut = grad(method_loss, 1.0), grad(avo_loss, True), grad(avo_loss, False)
  elbo = jax.jit(jax.grad(elbo_loss))(params)
  close = lambda a, b: jax.tree.map(  # float32: the two graphs sum in different orders
      lambda g, e: np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-5), a, b)
  for group, expected in (('transitions', cut), ('decoder', elbo), ('encoder', elbo)):
    close(got['params'][group], expected['params'][group])
  # The cut matters here: without it the first transitions also learn from the later terms.
  fwd = lambda g: np.concatenate([np.ravel(v) for v in jax.tree.leaves(
      g['params']['transitions']['forward'])])
  assert np.abs(fwd(cut) - fwd(uncut)).max() > 1e-4
  close(grad(method_loss, 0.0), elbo)
  # The ablation: AVO steps that train the transitions alone.
  config = config_lib.from_dict({'num_samples': 3, 'avo_a': 1.0,
                                 'hvi': {'decoder_steps': 'elbo'}})
  ablated = jax.jit(jax.grad(lambda p: methods.build('hvi_avo', model, config)(p, x, key)[0]))(
      params)
  close(ablated['params']['transitions'], cut['params']['transitions'])
  for group in ('decoder', 'encoder'):
    assert all(np.all(g == 0) for g in jax.tree.leaves(ablated['params'][group]))
  config.hvi.decoder_steps = 'never'
  with pytest.raises(ValueError, match="decoder_steps must be 'all' or 'elbo'"):
    methods.build('hvi_avo', model, config)
  losses = jax.jit(lambda p: [method_loss(p, a) for a in (0.0, 1.0)])(params)
  np.testing.assert_allclose(losses[0], elbo_loss(params), rtol=1e-5)
  np.testing.assert_allclose(losses[1], elbo_loss(params) + avo_loss(params, True), rtol=1e-5)


def test_fresh_identity_transitions_keep_a_trained_vaes_elbo():
  """A trained VAE's encoder and decoder under 5 fresh transitions: the HVI bound at init
  stays within a nat of the VAE's ELBO (the identity start), while the stationary start
  (mean 0.88 z, std 0.5, for q_0 = N(0, I)) destroys it."""
  train, test = (jnp.asarray(data.load('embedded').splits[s]) for s in ('train', 'test'))
  arch = networks.Architecture(hidden=(200,), latent_dim=20)
  model, params = models.init_vae(jax.random.key(0), arch, np.asarray(train))
  loss_fn = methods.build('vae', model, config_lib.get_config())

  def batch_loss(p, t):
    idx = jax.random.randint(jax.random.fold_in(jax.random.key(1), t), (100,), 0, len(train))
    return loss_fn(p, train[idx], jax.random.fold_in(jax.random.key(2), t))[0]

  params, _ = jax.jit(lambda p: fitting.fit_adam(batch_loss, p, 2000, 1e-3))(params)
  assert float(jnp.median(model.encode(params, test)[1])) < 0.4  # a sharp q_0 (curvature)
  key, x = jax.random.key(4), test[:500]
  vae = float(jnp.mean(model.log_weights(params, x, key, 100)[0]))

  def bound(start, init_scale):
    arch_t = dataclasses.replace(arch, num_transitions=5, transition_start=start,
                                 transition_init_scale=init_scale)
    hvi_model, fresh = models.init_vae(jax.random.key(3), arch_t, np.asarray(train))
    p = {'params': {**params['params'], 'transitions': fresh['params']['transitions']}}
    return float(jnp.mean(hvi_model.log_weights(p, x, key, 100)[0]))

  assert abs(bound('identity', 0.01) - vae) < 1.0
  assert bound('stationary', 0.5) < vae - 20.0


def test_hvi_avo_warmup_tempers_the_extended_space_weights():
  """With a warm-up, an ELBO step of hvi_avo maximizes log p(x | z_T) + beta [log p(z_T) -
  log q(z_0..z_T | x) + log r]: the `vae` warm-up bound of the same chains."""
  model, params, x = _hvi_model()
  config = config_lib.from_dict({'num_samples': 3, 'avo_a': 0.0,
                                 'warmup': {'steps': 10, 'beta0': 0.5}})
  key = jax.random.key(3)
  loss, metrics = methods.build('hvi_avo', model, config)(params, x, key, 0)
  proposal = model.propose(params, x, jax.random.split(key)[1], 3)
  expected = (model.log_likelihood(params, x, proposal.z)
              + 0.5 * (model.log_prior(proposal.z) - proposal.log_q))
  np.testing.assert_allclose(loss, -jnp.mean(expected), rtol=1e-5)
  assert float(metrics['beta']) == 0.5
  vae_loss, _ = methods.build('vae', model, config)(params, x, jax.random.split(key)[1], 0)
  np.testing.assert_allclose(loss, vae_loss, rtol=1e-6)
