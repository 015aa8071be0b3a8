"""The gradient signal-to-noise study of Rainforth et al. (2018) on the Gaussian model.

For each estimator and budget MK, draw R gradient estimates Delta_{M,K} (the
gradient of (1/M) sum_m log Z_hat_{m,K}, averaged over all N data points) by
reverse-mode autodiff, and summarize them per coordinate.

Estimators: `iwae` (M = 1, K = budget), `vae` (K = 1, M = budget), and `dreg`
and `stl` (M = 1, K = budget: theta's gradient is IWAE's, phi's comes from the
DReG / STL surrogate on the same particles).

The sweep runs in passes; a pass draws particles once per gradient draw and
computes every cell it holds from them.

* Shared draws (the default): one pass for IWAE, DReG and STL at every K, one for
  the VAE at every M. The particles of budget b are the first b particles of the
  largest budget (nested budgets). Draw r of a cell uses its own key, so each
  cell's R draws are still i.i.d. draws of its own estimator and its mean, SNR and
  DSNR are exactly those of independent sampling; only the differences between
  cells become correlated (common random numbers, which make them less noisy).
  The reference direction E[Delta_{1,K_max}] is the IWAE K_max cell itself.
  Particles drawn: max(budgets) per pass instead of sum(budgets) per estimator.
* Independent draws (`shared=False`, the earlier design, kept for comparison): one
  pass per (estimator, budget), common random numbers across estimators at a
  budget, and a separate pass for the reference.

Statistics stream: per-coordinate running means and second moments (the pairwise
update of Chan et al. 1979, float64 on the host) over blocks of draws; histograms
and DSNR use the first `num_kept` draws of each cell. With a `workdir`, a pass
saves its running state after every block and its cells when it completes
(atomic renames), so a killed sweep resumes and ends with the same numbers.
"""
import dataclasses
import hashlib
import json
import os
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from avi import fitting
from avi import gaussian_model as gm
from avi import gradients

ESTIMATORS = ('iwae', 'vae', 'dreg', 'stl')
# Flat gradient layout of one draw: mu [D] (theta), then A [D, D] and b [D] (phi).
LEAVES = ('mu', 'A', 'b')


def split_mk(name: str, budget: int) -> tuple[int, int]:
  """(M, K) of estimator `name` at total budget M K."""
  if name not in ESTIMATORS:
    raise ValueError(f'unknown estimator {name!r}; known: {", ".join(ESTIMATORS)}')
  return (budget, 1) if name == 'vae' else (1, budget)


def data_chunk(num_data: int, particles: int, dim: int, max_elements: int = 2**19) -> int:
  """Data points per chunk of a draw: the largest divisor of N keeping `[K, chunk, D]` small."""
  fits = [c for c in range(1, num_data + 1)
          if num_data % c == 0 and particles * c * dim <= max_elements]
  return max(fits, default=1)


def draw_fn(estimators: Sequence[str], budgets: Sequence[int], x: jax.Array,
            proposal_var: float = gm.DEFAULT_PROPOSAL_VAR, max_elements: int = 2**19) -> Callable:
  """(params, key) -> `[E, nb, P]`: one gradient draw of every (estimator, budget) cell.

  `estimators` is ('vae',) or a subset of ('iwae', 'dreg', 'stl'); `budgets` ascend;
  P = D + D^2 + D (mu, A, b flattened). All cells share the particles: budget b uses the
  first b of the max(budgets) particles. The data axis is processed in chunks of
  `data_chunk(...)` points (key fold_in(key, chunk)) so the `[K, chunk, D]` tensors stay
  in cache. Each log-weight depends on its own particle only, so one VJP with unit
  cotangents gives every particle's derivatives with respect to mu, q's mean and z;
  every cell's gradient is then a weighted sum of them (an einsum over particles), and
  one more VJP takes q's mean back to (A, b).
  """
  if tuple(estimators) != ('vae',) and not set(estimators) <= {'iwae', 'dreg', 'stl'}:
    raise ValueError(f'a pass holds the VAE alone or IWAE/DReG/STL, got {estimators}')
  num_data, dim = x.shape
  k_max = budgets[-1]
  chunk = data_chunk(num_data, k_max, dim, max_elements)
  x_chunks = x.reshape(num_data // chunk, chunk, dim)
  scale = np.sqrt(proposal_var)

  def chunk_grads(params, key, xc):
    mean, vjp_mean = jax.vjp(lambda a, b: xc @ a.T + b, params['A'], params['b'])
    eps = jax.random.normal(key, (k_max, *xc.shape), xc.dtype)
    inputs = (jnp.broadcast_to(params['mu'], eps.shape), jnp.broadcast_to(mean, eps.shape),
              mean + scale * eps)
    # Inputs broadcast to `[K, chunk, D]`, so the VJP returns per-particle derivatives.
    lw, vjp = jax.vjp(lambda *a: gm.log_weight(*a, xc, proposal_var), *inputs)
    d_mu, d_q_mean, d_z = vjp(jnp.ones_like(lw))
    if estimators[0] == 'vae':  # the M-sample ELBO: mean over m of log w_m
      w = [jnp.full((b, chunk), 1.0 / b, lw.dtype) for b in budgets]
    else:  # d LSE_k(log w_k) = sum_k softmax_k d log w_k, over the first b particles
      w = [jax.nn.softmax(lw[:b], axis=0) for b in budgets]

    def weigh(power, d):  # sum_k w_k^power d_k for every budget: `[nb, chunk, D]`
      return jnp.stack([jnp.einsum('kn,knd->nd', wb**power, d[:b]) for wb, b in zip(w, budgets)])

    # Full reparameterized path: z = mean + scale eps, and log q's own mean.
    phi = {'full': weigh(1, d_z + d_q_mean)}
    # STL: sum_k sg(w~_k) log w_k and DReG (Tucker et al. 2019, eq. 6): sg(w~_k^2), both
    # with q's parameters held fixed inside log q, i.e. the derivative through z alone.
    if 'stl' in estimators:
      phi['stl'] = weigh(1, d_z)
    if 'dreg' in estimators:
      phi['dreg'] = weigh(2, d_z)
    theta = weigh(1, d_mu).sum(1)  # [nb, D]
    return {name: jnp.concatenate([theta, *[g.reshape(len(budgets), -1) for g in
                                            jax.vmap(vjp_mean)(d)]], 1)
            for name, d in phi.items()}

  def fn(params, key):
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(x_chunks.shape[0]))
    grads = jax.lax.map(lambda a: chunk_grads(params, *a), (keys, x_chunks))
    grads = jax.tree.map(lambda g: g.sum(0) / num_data, grads)
    # theta (mu) always takes the IWAE / VAE gradient; phi takes the surrogate's.
    return jnp.stack([grads['full'] if name in ('iwae', 'vae') else grads[name]
                      for name in estimators])

  return fn


def draws_per_chunk(particles: int, num_data: int, dim: int, max_elements: int = 2**19) -> int:
  """Gradient draws vmapped together so one chunk holds about `max_elements` particle coords."""
  return max(1, max_elements // (particles * num_data * dim))


def block_fn(estimators: Sequence[str], budgets: Sequence[int], x: jax.Array,
             proposal_var: float, num_draws: int, max_elements: int = 2**19) -> Callable:
  """Jitted (params, key, start) -> `[num_draws, E, nb, P]`: draws start .. start + n - 1.

  Draw r uses key fold_in(key, r), whatever the block it falls in. `max_elements` bounds
  the particle coordinates held at once, by vmapping several small draws together or by
  splitting a large one over the data (which changes its random stream: see `draw_fn`).
  """
  fn = draw_fn(estimators, budgets, x, proposal_var, max_elements)
  chunk = draws_per_chunk(max(budgets), *x.shape, max_elements)

  @jax.jit
  def block(params, key, start):
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(start + jnp.arange(num_draws))
    return jax.lax.map(lambda k: fn(params, k), keys, batch_size=min(chunk, num_draws))

  return block


@dataclasses.dataclass(frozen=True)
class Pass:
  """Cells computed from one stream of draws: estimators x budgets, with one key."""
  name: str
  estimators: tuple[str, ...]
  budgets: tuple[int, ...]
  key: jax.Array
  prefix: str = ''

  def cell_ids(self) -> list[str]:
    return [f'{self.prefix}{e}_{b}' for e in self.estimators for b in self.budgets]


def plan(estimator_names: Sequence[str], budgets: Sequence[int], key: jax.Array,
         shared: bool = True) -> tuple[list[Pass], str]:
  """The passes of a sweep and the id of the reference cell (IWAE at the largest budget)."""
  budgets = tuple(sorted(budgets))
  if shared:
    family = tuple(e for e in ('iwae', 'dreg', 'stl') if e == 'iwae' or e in estimator_names)
    passes = [Pass('_'.join(family), family, budgets, jax.random.fold_in(key, 0))]
    if 'vae' in estimator_names:
      passes.append(Pass('vae', ('vae',), budgets, jax.random.fold_in(key, 1)))
    return passes, f'iwae_{budgets[-1]}'
  passes = [Pass('reference', ('iwae',), budgets[-1:], jax.random.fold_in(key, 10**6),
                 'reference_')]
  for name in estimator_names:
    for j, b in enumerate(budgets):  # the same key at a budget: common random numbers
      passes.append(Pass(f'{name}_{b}', (name,), (b,), jax.random.fold_in(key, j)))
  return passes, f'reference_iwae_{budgets[-1]}'


def _update(state: dict, draws: np.ndarray, num_kept: int) -> dict:
  """Adds a block `[n, ...]` of draws to running (count, mean, M2, kept draws)."""
  n_b = draws.shape[0]
  mean_b = draws.mean(0)
  n = state['n'] + n_b
  delta = mean_b - state['mean']
  keep = draws[:max(0, num_kept - state['kept'].shape[0])].astype(np.float32)
  return {'n': n, 'mean': state['mean'] + delta * (n_b / n),
          'm2': state['m2'] + ((draws - mean_b)**2).sum(0) + delta**2 * (state['n'] * n_b / n),
          'kept': np.concatenate([state['kept'], keep])}


def summarize(name: str, budget: int, n: int, mean: np.ndarray, m2: np.ndarray,
              kept: np.ndarray, true_mu: np.ndarray, reference: np.ndarray | None) -> dict:
  """One cell's statistics from its running moments `[P]` and kept draws `[k, P]`."""
  dim = true_mu.shape[0]
  std = np.sqrt(m2 / (n - 1))
  snr = np.abs(mean) / std
  parts = {'theta': slice(0, dim), 'phi': slice(dim, None)}
  num_outer, num_particles = split_mk(name, budget)
  out = {
      'budget': budget, 'M': num_outer, 'K': num_particles, 'num_draws': int(n),
      'num_kept': int(kept.shape[0]),
      'snr_mu': snr[:dim].tolist(), 'snr_b': snr[-dim:].tolist(),
      'snr_A': _percentiles(snr[dim:-dim]),
      # DSNR against the cell's own mean direction (Figure 5), from the kept draws.
      'dsnr': {part: gradients.dsnr(kept[:, sl], mean[sl]) for part, sl in parts.items()},
      # sqrt(E ||g - grad_mu log p(x)||^2) = sqrt(sum_d var_d + bias_d^2).
      'rmse_mu': float(np.sqrt(np.sum(m2[:dim] / n + (mean[:dim] - true_mu)**2))),
      'mean_grad_mu': mean[:dim].tolist(), 'mean_grad_b': mean[-dim:].tolist(),
      'mean_grad_A': mean[dim:-dim].reshape(dim, dim).tolist(),
      'hist_mu0': kept[:, 0].tolist(), 'hist_b0': kept[:, dim + dim * dim].tolist(),
  }
  if reference is not None:
    out['dsnr_ref'] = {part: gradients.dsnr(kept[:, sl], reference[sl])
                       for part, sl in parts.items()}
  return out


def _percentiles(values: np.ndarray) -> dict:
  q = np.percentile(values, [5, 25, 50, 75, 95])
  return {'median': float(q[2]), 'p5': float(q[0]), 'p25': float(q[1]), 'p75': float(q[3]),
          'p95': float(q[4])}


def _flat_mean(cell: dict) -> np.ndarray:
  return np.concatenate([np.ravel(cell[f'mean_grad_{leaf}']) for leaf in LEAVES])


def _atomic_write(path: str, write: Callable) -> None:
  tmp = f'{path}.tmp'
  with open(tmp, 'wb') as f:
    write(f)
  os.replace(tmp, path)


class _Progress:
  """Per-block progress lines with an ETA for the pass and for the whole sweep."""

  def __init__(self, passes: Sequence[Pass], num_draws: int, log: Callable[[str], None]):
    self.work = {p.name: num_draws * sum(p.budgets) * len(p.estimators) for p in passes}
    self.num_draws, self.log = num_draws, log
    self.remaining = sum(self.work.values())
    self.done, self.start = 0, time.time()

  def skip(self, p: Pass, draws: int) -> None:
    self.remaining -= self.work[p.name] * draws / self.num_draws

  def block(self, p: Pass, draws_done: int, draws: int) -> None:
    work = self.work[p.name] * draws / self.num_draws
    self.done += work
    self.remaining -= work
    rate = self.done / (time.time() - self.start)
    pass_left = self.work[p.name] * (1 - draws_done / self.num_draws) / rate
    self.log(f'{p.name}: {draws_done}/{self.num_draws} draws, {time.time() - self.start:.0f} s; '
             f'ETA pass {pass_left:.0f} s, sweep {self.remaining / rate:.0f} s')


def run(problem: gm.Problem, estimator_names: Sequence[str], budgets: Sequence[int],
        num_draws: int, key: jax.Array, *, shared: bool = True, num_kept: int = 2000,
        block_size: int = 500, workdir: str | None = None, max_chunk_elements: int = 2**19,
        log: Callable[[str], None] = lambda s: None) -> dict:
  """Every (estimator, budget) cell, slopes of SNR against the budget, and the reference.

  Returns {'reference': E[Delta_{1,K_max}] of IWAE, name: {field: [per budget]}}. With
  `workdir`, resumes from DIR/snr_state/ and DIR/snr_cells/ (see the module docstring).
  """
  if not budgets:
    raise ValueError('budgets must not be empty')
  if any(b < 1 for b in budgets) or num_draws < 2:
    raise ValueError(f'budgets must be >= 1 and num_draws >= 2, got {budgets}, {num_draws}')
  if num_kept < 2 or block_size < 1:
    raise ValueError(f'num_kept must be >= 2 and block_size >= 1, got {num_kept}, {block_size}')
  for name in estimator_names:
    split_mk(name, 1)
  budgets = sorted(budgets)
  passes, reference_id = plan(estimator_names, budgets, key, shared)
  if workdir:
    _lock_settings(workdir, problem, key, num_draws, budgets, shared, num_kept,
                   max_chunk_elements)
  true_mu = np.asarray(gm.grad_mu_log_px(problem.params, problem.x), np.float64)
  progress = _Progress(passes, num_draws, log)
  cells, reference = {}, None
  for p in passes:
    paths = {c: os.path.join(workdir, 'snr_cells', f'{c}.json') for c in p.cell_ids()
             } if workdir else {}
    if paths and all(os.path.exists(f) for f in paths.values()):
      for c, f in paths.items():
        with open(f) as fh:
          cells[c] = json.load(fh)
      progress.skip(p, num_draws)
      log(f'{p.name}: cells already in {workdir}/snr_cells, skipped')
    else:
      state = _run_pass(p, problem, num_draws, num_kept, block_size, workdir,
                        max_chunk_elements, progress)
      ids = np.asarray(p.cell_ids()).reshape(len(p.estimators), len(p.budgets))
      if reference is None and reference_id in ids:
        reference = state['mean'][tuple(np.argwhere(ids == reference_id)[0])]
      for (i, j), c in np.ndenumerate(ids):
        cells[c] = summarize(p.estimators[i], p.budgets[j], state['n'], state['mean'][i, j],
                             state['m2'][i, j], state['kept'][:, i, j], true_mu, reference)
        if workdir:
          os.makedirs(os.path.dirname(paths[c]), exist_ok=True)
          _atomic_write(paths[c], lambda f, c=c: f.write(json.dumps(cells[c]).encode()))
      log(f'{p.name}: {len(ids.flat)} cells done')
    if reference is None and reference_id in cells:
      reference = _flat_mean(cells[reference_id])
  dim = problem.x.shape[1]
  results = {'reference': {'estimator': 'iwae', 'K': budgets[-1], 'mu': reference[:dim].tolist(),
                           'b': reference[-dim:].tolist(),
                           'A': reference[dim:-dim].reshape(dim, dim).tolist()}}
  for name in estimator_names:
    table = [cells[f'{name}_{b}'] for b in budgets]
    table = {field: [c[field] for c in table] for field in table[0]}
    for leaf in ('mu', 'b'):
      slopes = gradients.loglog_slope(budgets, np.asarray(table[f'snr_{leaf}']))
      table[f'slope_snr_{leaf}'] = float(np.median(slopes)) if len(budgets) > 1 else None
    results[name] = table
  return results


def _run_pass(p: Pass, problem: gm.Problem, num_draws: int, num_kept: int, block_size: int,
              workdir: str | None, max_chunk_elements: int, progress: _Progress) -> dict:
  """Streams the pass's draws block by block, resuming from its saved state."""
  num_data, dim = problem.x.shape
  shape = (len(p.estimators), len(p.budgets), dim * (dim + 2))
  state = {'n': 0, 'mean': np.zeros(shape), 'm2': np.zeros(shape),
           'kept': np.zeros((0, *shape), np.float32)}
  # The moments are saved every block; the kept draws (the bulk) only while they grow.
  path = os.path.join(workdir, 'snr_state', f'{p.name}.npz') if workdir else None
  kept_path = path and path.replace('.npz', '_kept.npy')
  if path and os.path.exists(path):
    with np.load(path) as saved:
      state = {k: saved[k] for k in ('n', 'mean', 'm2')}
    state['n'] = int(state['n'])
    # A kill between the two writes can leave kept draws of an uncounted block: cut them.
    state['kept'] = np.load(kept_path)[:min(state['n'], num_kept)]
    progress.skip(p, state['n'])
  blocks = {}
  while state['n'] < num_draws:
    n = min(block_size, num_draws - state['n'])
    if n not in blocks:
      blocks[n] = block_fn(p.estimators, p.budgets, problem.x, problem.proposal_var, n,
                           max_chunk_elements)
    draws = blocks[n](problem.params, p.key, state['n'])
    num_kept_before = state['kept'].shape[0]
    state = _update(state, np.asarray(draws, np.float64), num_kept)
    if path:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      if state['kept'].shape[0] > num_kept_before or not os.path.exists(kept_path):
        _atomic_write(kept_path, lambda f: np.save(f, state['kept']))
      _atomic_write(path, lambda f: np.savez(f, n=state['n'], mean=state['mean'],
                                             m2=state['m2']))
    progress.block(p, state['n'], n)
  return state


def _lock_settings(workdir: str, problem: gm.Problem, key: jax.Array, num_draws: int,
                   budgets: Sequence[int], shared: bool, num_kept: int,
                   max_chunk_elements: int) -> None:
  """Refuses to resume a workdir made with settings that change the draws or the statistics."""
  digest = hashlib.sha256()
  for a in (problem.x, *[problem.params[leaf] for leaf in LEAVES], jax.random.key_data(key)):
    digest.update(np.asarray(a).tobytes())
  settings = {'problem_and_key': digest.hexdigest(), 'proposal_var': problem.proposal_var,
              'num_draws': num_draws, 'budgets': list(budgets), 'shared': shared,
              'num_kept': num_kept, 'chunk_elements': max_chunk_elements}
  path = os.path.join(workdir, 'snr_settings.json')
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    changed = sorted(k for k in settings if old.get(k) != settings[k])
    if changed:
      raise ValueError(f'{workdir} holds a sweep with other {", ".join(changed)}; use a new '
                       f'workdir (or delete {workdir}/snr_state and {workdir}/snr_cells)')
    return
  os.makedirs(workdir, exist_ok=True)
  _atomic_write(path, lambda f: f.write(json.dumps(settings).encode()))


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
  dim = x.shape[1]
  k_init, k_run = jax.random.split(key)
  shapes = {'mu': (dim,), 'A': (dim, dim), 'b': (dim,)}
  params = {name: jax.random.uniform(k, shape, minval=1.5, maxval=2.5)
            for (name, shape), k in zip(shapes.items(), jax.random.split(k_init, 3))}
  target = gm.optimum(x)

  def loss_fn(params, t):
    return -gm.iwae_objective(params, x, jax.random.fold_in(k_run, t), num_outer,
                              num_particles, proposal_var)

  def trace(params, loss):
    dist_theta = jnp.linalg.norm(params['mu'] - target['mu'])
    dist_phi = jnp.sqrt(jnp.sum((params['A'] - target['A'])**2)
                        + jnp.sum((params['b'] - target['b'])**2))
    return -loss, dist_theta, dist_phi

  _, (bound, dist_theta, dist_phi) = jax.jit(
      lambda p: fitting.fit_adam(loss_fn, p, steps, learning_rate, trace))(params)
  keep = np.arange(0, steps, log_every)
  return {'step': keep.tolist(), 'bound': np.asarray(bound)[keep].tolist(),
          'dist_theta': np.asarray(dist_theta)[keep].tolist(),
          'dist_phi': np.asarray(dist_phi)[keep].tolist()}
