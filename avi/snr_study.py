"""The gradient signal-to-noise study of Rainforth et al. (2018) on the Gaussian model.

For each estimator and budget MK, draw R gradient estimates Delta_{M,K} (the
gradient of (1/M) sum_m log Z_hat_{m,K}, averaged over all N data points) with
`jax.grad`, and summarize them with `avi.gradients`.

Estimators: `iwae` (M = 1, K = budget), `vae` (K = 1, M = budget), and `dreg`
and `stl` (M = 1, K = budget: theta's gradient is IWAE's, phi's comes from the
DReG / STL surrogate on the same particles).
"""
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from avi import estimators
from avi import gaussian_model as gm
from avi import gradients

ESTIMATORS = ('iwae', 'vae', 'dreg', 'stl')
THETA, PHI = ('mu',), ('A', 'b')


def split_mk(name: str, budget: int) -> tuple[int, int]:
  """(M, K) of estimator `name` at total budget M K."""
  if name not in ESTIMATORS:
    raise ValueError(f'unknown estimator {name!r}; known: {", ".join(ESTIMATORS)}')
  return (budget, 1) if name == 'vae' else (1, budget)


def gradient_fn(name: str, x: jax.Array, budget: int,
                proposal_var: float = gm.DEFAULT_PROPOSAL_VAR) -> Callable:
  """(params, key) -> {'mu', 'A', 'b'} gradient draw of estimator `name` at this budget."""
  num_outer, num_particles = split_mk(name, budget)

  def iwae_grad(params, key):
    return jax.grad(gm.iwae_objective)(params, x, key, num_outer, num_particles, proposal_var)

  if name in ('iwae', 'vae'):
    return iwae_grad
  surrogate = {'dreg': estimators.dreg_inference, 'stl': estimators.stl_inference}[name]

  def fn(params, key):
    # One set of particles: IWAE's gradient for theta, the surrogate's for phi.
    eps = jax.random.normal(key, (num_particles, *x.shape), x.dtype)

    def objective(theta, phi):
      log_w = gm.log_weights_from_noise({**jax.lax.stop_gradient(phi), **theta}, x, eps,
                                        proposal_var)
      log_w_phi = gm.log_weights_from_noise({**jax.lax.stop_gradient(theta), **phi}, x, eps,
                                            proposal_var, stop_q_grad=True)
      return jnp.mean(jax.nn.logsumexp(log_w, 0)) + jnp.mean(surrogate(log_w_phi))

    g_theta, g_phi = jax.grad(objective, argnums=(0, 1))(
        {k: params[k] for k in THETA}, {k: params[k] for k in PHI})
    return {**g_theta, **g_phi}

  return fn


def draws_per_chunk(budget: int, num_data: int, dim: int, max_elements: int = 2**22) -> int:
  """Gradient draws vmapped together so one chunk holds about `max_elements` particle coords."""
  return max(1, max_elements // (budget * num_data * dim))


def measure(problem: gm.Problem, name: str, budget: int, num_draws: int, key: jax.Array,
            reference: dict | None = None) -> dict:
  """The statistics of one (estimator, budget) cell; lists are per coordinate."""
  num_data, dim = problem.x.shape
  fn = gradient_fn(name, problem.x, budget, problem.proposal_var)
  chunk = draws_per_chunk(budget, num_data, dim)
  draws = jax.jit(gradients.sample, static_argnums=(0, 3, 4))(
      fn, problem.params, key, num_draws, chunk)
  snr = gradients.snr(draws)
  true_mu = gm.grad_mu_log_px(problem.params, problem.x)
  num_outer, num_particles = split_mk(name, budget)
  out = {
      'budget': budget, 'M': num_outer, 'K': num_particles,
      'snr_mu': np.asarray(snr['mu']).tolist(),
      'snr_b': np.asarray(snr['b']).tolist(),
      'snr_A': _summary(np.asarray(snr['A'])),
      'dsnr': {part: gradients.dsnr({k: draws[k] for k in keys})
               for part, keys in (('theta', THETA), ('phi', PHI))},
      'rmse_mu': float(gradients.rmse({'mu': draws['mu']}, {'mu': true_mu})['mu']),
      'mean_grad_mu': np.asarray(draws['mu'].mean(0)).tolist(),
      'mean_grad_b': np.asarray(draws['b'].mean(0)).tolist(),
      'mean_grad_A': np.asarray(draws['A'].mean(0)).tolist(),
      'hist_mu0': np.asarray(draws['mu'][:, 0]).tolist(),
      'hist_b0': np.asarray(draws['b'][:, 0]).tolist(),
  }
  if reference is not None:
    out['dsnr_ref'] = {part: gradients.dsnr({k: draws[k] for k in keys},
                                            {k: jnp.asarray(reference[k]) for k in keys})
                       for part, keys in (('theta', THETA), ('phi', PHI))}
  return out


def _summary(values: np.ndarray) -> dict:
  q = np.percentile(values, [5, 25, 50, 75, 95])
  return {'median': float(q[2]), 'p5': float(q[0]), 'p25': float(q[1]), 'p75': float(q[3]),
          'p95': float(q[4])}


def run(problem: gm.Problem, estimator_names: Sequence[str], budgets: Sequence[int],
        num_draws: int, key: jax.Array, reference_budget: int | None = None,
        log: Callable[[str], None] = lambda s: None) -> dict:
  """Every (estimator, budget) cell, slopes of SNR against the budget, and the reference.

  The reference direction for `dsnr_ref` is E[Delta_{1, K_ref}] of IWAE (the paper's
  E[Delta_{1,1000}]), K_ref = `reference_budget` (default: the largest budget).
  """
  if not budgets:
    raise ValueError('budgets must not be empty')
  if any(b < 1 for b in budgets) or num_draws < 2:
    raise ValueError(f'budgets must be >= 1 and num_draws >= 2, got {budgets}, {num_draws}')
  for name in estimator_names:
    split_mk(name, 1)
  reference_budget = reference_budget or max(budgets)
  ref = measure(problem, 'iwae', reference_budget, num_draws, jax.random.fold_in(key, 10**6))
  reference = {'mu': ref['mean_grad_mu'], 'b': ref['mean_grad_b'], 'A': ref['mean_grad_A']}
  results = {'reference': {'estimator': 'iwae', 'K': reference_budget, **reference}}
  for name in estimator_names:
    cells = []
    for j, budget in enumerate(budgets):
      # Common random numbers: every estimator sees the same particles at a budget.
      cells.append(measure(problem, name, budget, num_draws, jax.random.fold_in(key, j),
                           reference))
      log(f'{name} budget={budget}: median SNR mu {np.median(cells[-1]["snr_mu"]):.3g}, '
          f'b {np.median(cells[-1]["snr_b"]):.3g}')
    table = {field: [c[field] for c in cells] for field in cells[0]}
    for leaf in ('mu', 'b'):
      slopes = gradients.loglog_slope(budgets, np.asarray(table[f'snr_{leaf}']))
      table[f'slope_snr_{leaf}'] = float(np.median(slopes)) if len(budgets) > 1 else None
    results[name] = table
  return results


def elbo_gradient_check(problem: gm.Problem, k1_cell: dict, num_draws: int) -> dict:
  """Mean K = M = 1 gradient against the closed-form ELBO gradient, in standard errors."""
  exact = jax.grad(lambda p: jnp.mean(gm.expected_elbo(p, problem.x, problem.proposal_var)))(
      problem.params)
  out = {}
  for leaf in ('mu', 'b'):
    mean = np.asarray(k1_cell[f'mean_grad_{leaf}'])
    # std = |mean| / SNR, so the standard error of the mean is |mean| / (SNR sqrt(R)).
    stderr = np.abs(mean) / np.maximum(np.asarray(k1_cell[f'snr_{leaf}']), 1e-30) / np.sqrt(
        num_draws)
    z = np.abs(mean - np.asarray(exact[leaf])) / stderr
    out[leaf] = {'closed_form': np.asarray(exact[leaf]).tolist(), 'max_abs_z': float(z.max()),
                 'mean_abs_z': float(z.mean())}
  return out


def optimize(x: jax.Array, num_outer: int, num_particles: int, key: jax.Array, steps: int,
             learning_rate: float, proposal_var: float = gm.DEFAULT_PROPOSAL_VAR,
             log_every: int = 50) -> dict:
  """Adam on (mu, A, b) from U[1.5, 2.5] inits (Figure 7): bound and L2 distances to the optimum."""
  import optax  # pylint: disable=g-import-not-at-top
  dim = x.shape[1]
  k_init, k_run = jax.random.split(key)
  shapes = {'mu': (dim,), 'A': (dim, dim), 'b': (dim,)}
  params = {name: jax.random.uniform(k, shape, minval=1.5, maxval=2.5)
            for (name, shape), k in zip(shapes.items(), jax.random.split(k_init, 3))}
  tx = optax.adam(learning_rate)
  target = gm.optimum(x)

  def step(carry, t):
    params, opt_state = carry
    loss_fn = lambda p: -gm.iwae_objective(p, x, jax.random.fold_in(k_run, t), num_outer,
                                           num_particles, proposal_var)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state)
    params = optax.apply_updates(params, updates)
    dist_theta = jnp.linalg.norm(params['mu'] - target['mu'])
    dist_phi = jnp.sqrt(jnp.sum((params['A'] - target['A'])**2)
                        + jnp.sum((params['b'] - target['b'])**2))
    return (params, opt_state), (-loss, dist_theta, dist_phi)

  _, (bound, dist_theta, dist_phi) = jax.jit(
      lambda p: jax.lax.scan(step, (p, tx.init(p)), jnp.arange(steps)))(params)
  keep = np.arange(0, steps, log_every)
  return {'step': keep.tolist(), 'bound': np.asarray(bound)[keep].tolist(),
          'dist_theta': np.asarray(dist_theta)[keep].tolist(),
          'dist_phi': np.asarray(dist_phi)[keep].tolist()}
