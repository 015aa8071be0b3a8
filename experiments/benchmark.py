r"""Training-step and evaluation throughput, as fractions of this machine's matmul peak.

  python -m experiments.benchmark --json=runs/benchmark.json

FLOPs come from XLA's cost analysis of the compiled step (evaluation: of one
chunk, times the number of chunks); the peak is the best float32 matmul rate
measured in the same process.
"""
import dataclasses
import inspect
import json
import multiprocessing
import resource
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from avi import config as config_lib
from avi import data as data_lib
from avi import energy_fit
from avi import evaluation
from avi import gaussian_model as gm
from avi import iw_svi
from avi import methods
from avi import models
from avi import networks
from avi import snr_study
from avi import train
from avi import workdir as workdir_lib
from experiments.timing import flops_of
from experiments.timing import interleaved_medians
from experiments.timing import time_it
from experiments.timing import time_train_step
from experiments.timing import train_step_call

_JSON = flags.DEFINE_string('json', None, 'Also write the results here as JSON.')
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', ['20', '100'], 'Training batch sizes.')
_KS = flags.DEFINE_list('ks', ['1', '5', '50'], 'IWAE K of the training steps.')
_EVAL_K = flags.DEFINE_integer('eval_k', 5000, 'K of the evaluation benchmark.')
_EVAL_POINTS = flags.DEFINE_integer('eval_points', 200, 'Data points timed for evaluation.')
_MIN_SECONDS = flags.DEFINE_float('min_seconds', 2.0, 'Minimum timed duration per row.')
_MEMORY = flags.DEFINE_bool('memory', True, 'Also measure the peak memory of the IWAE step at '
                            'batch 100 and each K of --memory_ks, unchunked and chunked.')
_MEMORY_KS = flags.DEFINE_list('memory_ks', ['50', '500'], 'IWAE K of the memory rows.')
_SNR = flags.DEFINE_bool('snr', True, 'Also time the gradient-SNR sweep (experiments.snr).')
_REM = flags.DEFINE_bool('rem', True, 'Also time REM v1/v2 and RWS against IWAE (REM preset).')
_AVO = flags.DEFINE_bool('avo', True, 'Also time toy HVI fitting and amortized HVI-AVO steps.')
_WIDTHS = flags.DEFINE_list('transition_widths', [str(networks.Architecture.transition_hidden)],
                            'Units per transition of the timed amortized HVI / AVO steps '
                            '(default: the library\'s; one set of rows each).')
_TRANSITIONS = flags.DEFINE_integer('num_transitions', 5, 'T of the timed amortized HVI / AVO '
                                    'steps (Table 1a of Huang et al. 2018: 5).')
_ROUNDS = flags.DEFINE_integer('rounds', 7, 'Interleaved timing rounds of the amortized HVI / '
                               'AVO steps (--min_seconds each).')
_IW_SVI = flags.DEFINE_bool('iw_svi', True, 'Also time IW-SVI (its defaults and the earlier ones).')
_IW_SVI_WORKDIR = flags.DEFINE_string(
    'iw_svi_workdir', None, 'A trained experiments.train workdir: IW-SVI is timed on its model '
    'and its convergence curve (estimate against S, k, rate and K) computed on its test split.')
_IW_SVI_POINTS = flags.DEFINE_integer('iw_svi_points', 100, 'Test points of the IW-SVI curve.')


def matmul_peak_gflops(min_seconds: float) -> float:
  best = 0.0
  for n in (1024, 2048, 4096):
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    seconds = time_it(lambda: mm(a).block_until_ready(), min_seconds)
    best = max(best, 2 * n**3 / seconds / 1e9)
  return best


def make_model(rng: np.random.Generator, preset: str = 'burda', num_transitions: int = 0,
               transition_hidden: int = networks.Architecture.transition_hidden):
  x = (rng.random((1000, 784)) < 0.13).astype(np.float32)
  arch = dataclasses.replace(networks.PRESETS[preset], num_transitions=num_transitions,
                             transition_hidden=transition_hidden)
  model, params = models.init_vae(jax.random.key(0), arch, x,
                                  config_lib.get_config().decoder_chunk_rows)
  return model, params, x


def plain_iwae_step_seconds(x: np.ndarray, batch_size: int, k: int, min_seconds: float,
                            hidden: int = 200, latent: int = 50) -> float:
  """Seconds per step of an IWAE-k step written the obvious way in plain JAX: the Burda MLPs
  (2 x 200 tanh, 50-d) as dicts of arrays, `jax.grad` of -mean IWAE_k, optax Adam, one
  `jax.jit`. The reference our step is compared to, with no PyTorch needed."""
  def dense(key, n_in, n_out):
    return {'w': jax.random.normal(key, (n_in, n_out)) / np.sqrt(n_in), 'b': jnp.zeros(n_out)}

  def mlp(layers, h):
    for layer in layers[:-1]:
      h = jnp.tanh(h @ layer['w'] + layer['b'])
    return h @ layers[-1]['w'] + layers[-1]['b']

  keys = jax.random.split(jax.random.key(0), 6)
  sizes = (x.shape[1], hidden, hidden, 2 * latent), (latent, hidden, hidden, x.shape[1])
  params = {name: [dense(keys[3 * j + i], a, b) for i, (a, b) in enumerate(zip(dims, dims[1:]))]
            for j, (name, dims) in enumerate(zip(('encoder', 'decoder'), sizes))}

  def loss(params, xb, key):
    mean, log_std = jnp.split(mlp(params['encoder'], xb), 2, axis=-1)
    eps = jax.random.normal(key, (k, *mean.shape))
    z = mean + jnp.exp(log_std) * eps
    logits = mlp(params['decoder'], z)
    log_lik = jnp.sum(xb * logits - jnp.logaddexp(0.0, logits), -1)
    log_prior = -0.5 * jnp.sum(z**2 + jnp.log(2 * jnp.pi), -1)
    log_q = -0.5 * jnp.sum(eps**2 + jnp.log(2 * jnp.pi), -1) - jnp.sum(log_std, -1)
    log_w = log_lik + log_prior - log_q
    return -jnp.mean(jax.nn.logsumexp(log_w, 0) - jnp.log(k))

  tx = optax.adam(1e-3)

  @jax.jit
  def step(params, opt_state, xb, key):
    grads = jax.grad(loss)(params, xb, key)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt_state, xb = tx.init(params), jnp.asarray(x[:batch_size])
  return time_it(lambda: jax.block_until_ready(step(params, opt_state, xb, jax.random.key(1))),
                 min_seconds)


def train_row(model, params, x, batch_size: int, k: int, peak: float, min_seconds: float,
              method: str = 'iwae', avo_a: float = 0.5) -> dict:
  """The loop's step for `method` at this batch and K; FLOPs (and the fraction of peak) are
  those of the unchunked step, the useful work, whatever `model.chunk_rows` recomputes."""
  config = config_lib.get_config()
  config.k, config.num_samples, config.hvi.avo_a = k, 1, avo_a
  tx = train.make_optimizer(config, 1, 1)
  seconds = time_train_step(methods.build(method, model, config), tx, params, x[:batch_size],
                            min_seconds, model.group_norms)
  unchunked = dataclasses.replace(model, chunk_rows=0)
  step = train.make_train_step(methods.build(method, unchunked, config), tx, False,
                               model.group_norms)
  flops = flops_of(step, train.initial_state(params, tx), jnp.asarray(x[:batch_size]),
                   jax.random.key(1))
  return {'method': method, 'batch_size': batch_size, 'k': k, 'chunk_rows': model.chunk_rows,
          'step_seconds': seconds, 'examples_per_second': batch_size / seconds,
          'gflops_per_step': flops / 1e9, 'fraction_of_peak': flops / seconds / 1e9 / peak}


def peak_memory_row(batch_size: int, k: int, chunk_rows: int) -> dict:
  """Peak resident memory of a fresh process that runs 3 IWAE-k steps, and XLA's temporary
  buffers of the compiled step. In a spawned process, so earlier rows do not count."""
  with multiprocessing.get_context('spawn').Pool(1) as pool:
    return pool.apply(_peak_memory, (batch_size, k, chunk_rows))


def _peak_memory(batch_size: int, k: int, chunk_rows: int) -> dict:
  model, params, x = make_model(np.random.default_rng(0))
  model = dataclasses.replace(model, chunk_rows=chunk_rows)
  config = config_lib.get_config()
  config.k = k
  tx = train.make_optimizer(config, 1, 1)
  step = train.make_train_step(methods.build('iwae', model, config), tx, False,
                               model.group_norms)
  state, batch = train.initial_state(params, tx), jnp.asarray(x[:batch_size])
  compiled = jax.jit(step, donate_argnums=0).lower(state, batch, jax.random.key(1)).compile()
  for _ in range(3):
    state = jax.block_until_ready(compiled(state, batch, jax.random.key(1))[0])
  return {'batch_size': batch_size, 'k': k, 'chunk_rows': chunk_rows,
          'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          'xla_temp_mb': compiled.memory_analysis().temp_size_in_bytes / 2**20}


def eval_row(model, params, x, k: int, num_points: int, peak: float) -> dict:
  """`evaluation.evaluate_model` on `num_points` points: its first call (which compiles) and
  its second (which reuses the program, as every later split and checkpoint does). FLOPs
  are counted unchunked: XLA's cost analysis counts a loop's body once."""
  batch_size, chunk = 100, 100
  unchunked = dataclasses.replace(model, chunk_rows=0)

  def log_weights_fn(key, xx, n):
    return unchunked.log_weights(params, xx, key, n)[0]

  chunk_flops = flops_of(lambda xx, key: log_weights_fn(key, xx, chunk),
                         jnp.asarray(x[:batch_size]), jax.random.key(0))
  flops_per_point = chunk_flops * (k / chunk) / batch_size
  data = x[:num_points]
  calls = []
  for _ in range(2):
    start = time.perf_counter()
    evaluation.evaluate_model(model, params, data, jax.random.key(2), k, batch_size, chunk)
    calls.append(time.perf_counter() - start)
  first, seconds = calls
  return {'k': k, 'points_per_second': num_points / seconds,
          'seconds_per_10000_points': 10_000 * seconds / num_points,
          'first_call_seconds': first,
          'fraction_of_peak': flops_per_point * num_points / seconds / 1e9 / peak}


def toy_rows(min_seconds: float) -> list[dict]:
  """Adam steps per second of HVI on energy (d), T = 10, batch 64 (Huang et al., Sec. 5.3)."""
  rows = []
  for objective in energy_fit.OBJECTIVES:
    settings = energy_fit.Settings(energy='d', objective=objective, steps=500)
    fit = jax.jit(lambda k, s=settings: energy_fit.fit(s, k)[1])
    seconds = time_it(lambda: fit(jax.random.key(0)).block_until_ready(), min_seconds)
    rows.append({'objective': objective, 'steps_per_second': settings.steps / seconds})
  return rows


# The amortized steps of issue 13: (name, method, a, hvi.decoder_steps, with transitions).
AMORTIZED_STEPS = (('vae', 'vae', 0.0, 'all', False),
                   ('hvi (ELBO step)', 'vae', 0.0, 'all', True),
                   ('hvi_avo (AVO step)', 'hvi_avo', 1.0, 'all', True),
                   ("hvi_avo (AVO step, decoder_steps='elbo')", 'hvi_avo', 1.0, 'elbo', True))


def amortized_rows(vae, hvi_models: dict, peak: float, seconds_per_round: float,
                   rounds: int) -> list[dict]:
  """The loop's VAE, HVI ELBO and AVO steps at batch 100, M = 1 (each `model, params, x`;
  `hvi_models` by transition width, each row's `transition_hidden` and `num_transitions`).

  Timed in interleaved rounds (`interleaved_medians`): `step_seconds` is the median over
  rounds, `ratio_to_vae` the median of the same round's ratio and `ratio_range` its
  range. a = 0 and a = 1 time the two kinds of hvi_avo step apart: with probability a
  a step costs a * AVO + (1 - a) * ELBO.
  """
  calls, flops, widths, depths = {}, {}, {}, {}
  steps = [(name, *rest, None) for name, *rest, transitions in AMORTIZED_STEPS if not transitions]
  steps += [(name if len(hvi_models) == 1 else f'{name}, {width}-unit transitions', *rest, width)
            for width in hvi_models for name, *rest, transitions in AMORTIZED_STEPS if transitions]
  for name, method, a, decoder_steps, width in steps:
    model, params, x = vae if width is None else hvi_models[width]
    widths[name], depths[name] = width, model.num_transitions
    config = config_lib.get_config()
    config.k, config.num_samples, config.hvi.avo_a = 1, 1, a
    config.hvi.decoder_steps = decoder_steps
    tx = train.make_optimizer(config, 1, 1)
    loss_fn = methods.build(method, model, config)
    calls[name], flops[name] = train_step_call(loss_fn, tx, params, x[:100], model.group_norms)
  seconds = interleaved_medians(calls, rounds, seconds_per_round)
  rows = []
  for name, s in seconds.items():
    ratio = s / seconds['vae']
    rows.append({'method': name, 'transition_hidden': widths[name],
                 'num_transitions': depths[name],
                 'step_seconds': float(np.median(s)),
                 'round_seconds': s.tolist(), 'ratio_to_vae': float(np.median(ratio)),
                 'ratio_range': [float(ratio.min()), float(ratio.max())],
                 'gflops_per_step': flops[name] / 1e9,
                 'flops_ratio_to_vae': flops[name] / flops['vae'],
                 'fraction_of_peak': flops[name] / np.median(s) / 1e9 / peak})
  return rows


def avo_flops_floor(vae, vae_step_flops: float, elbo_ablation_flops: float) -> dict:
  """XLA FLOPs of the least an AVO step can do while the decoder and q_0 learn from the ELBO.

  That is eq. 4 alone (the `decoder_steps='elbo'` step, `elbo_ablation_flops`) plus the part
  of a VAE step (`vae_step_flops`) that eq. 4 does not already do: the VAE step minus its
  forward pass and minus the decoder's input gradient, which eq. 4 computes at z_T too, i.e.
  the encoder's and decoder's weight gradients and the encoder's input gradient. A lower
  bound: it leaves out the ELBO's input gradient through the chain. Ratios are to the VAE step.
  """
  model, params, x = vae
  config = config_lib.get_config()
  config.k = config.num_samples = 1
  loss_fn = methods.build('vae', model, config)
  batch, key = jnp.asarray(x[:100]), jax.random.key(1)
  forward = flops_of(lambda p: loss_fn(p, batch, key)[0], params)
  z = jnp.zeros((1, 100, model.latent_dim))
  log_lik = lambda z: jnp.sum(model.log_likelihood(params, batch, z))
  decoder_input_grad = flops_of(jax.grad(log_lik), z) - flops_of(log_lik, z)
  ratio = lambda f: f / vae_step_flops
  return {'vae_forward': ratio(forward), 'decoder_input_grad': ratio(decoder_input_grad),
          'floor': ratio(elbo_ablation_flops + vae_step_flops - forward - decoder_input_grad)}


# The settings timed against the defaults: before issue 14, and its first defaults.
IW_SVI_BEFORE = ({'steps': 100, 'k': 100, 'learning_rate': 1e-3, 'num_samples': 5000,
                  'amortized_num_samples': 5000},
                 {'steps': 200, 'k': 10, 'learning_rate': 3e-2, 'num_samples': 5000,
                  'amortized_num_samples': 1000})


def iw_svi_settings(**overrides) -> dict:
  """`iw_svi.log_likelihood`'s defaults, with overrides."""
  params = inspect.signature(iw_svi.log_likelihood).parameters
  names = ('steps', 'k', 'learning_rate', 'num_samples', 'amortized_num_samples')
  return {**{n: params[n].default for n in names}, **overrides}


def iw_svi_row(model, params, x, num_points: int, settings: dict) -> dict:
  """Seconds per 1,000 points of `iw_svi.log_likelihood` under `settings`."""
  run = lambda: iw_svi.log_likelihood(model, params, x[:num_points], jax.random.key(3),
                                      **settings)
  run()  # compile
  start = time.perf_counter()
  run()
  return {**settings, 'seconds_per_1000_points': 1000 * (time.perf_counter() - start) / num_points}


# (S, k, learning rate, K) of the convergence curve, the library's defaults (300, 5, 3e-2)
# against K last; the reference is the most expensive.
IW_SVI_GRID = ((0, 1, 1e-3, 5000), (100, 100, 1e-3, 5000), (100, 10, 1e-2, 5000),
               (200, 10, 1e-2, 5000), (400, 10, 1e-2, 5000), (50, 10, 3e-2, 5000),
               (100, 10, 3e-2, 5000), (200, 10, 3e-2, 5000), (400, 10, 3e-2, 5000),
               (100, 10, 1e-1, 5000), (200, 100, 1e-2, 5000), (200, 100, 3e-2, 5000),
               (200, 10, 3e-2, 2000), (200, 5, 3e-2, 3000), (150, 10, 3e-2, 2000),
               (250, 5, 3e-2, 2000), (300, 4, 3e-2, 2000), (300, 5, 3e-2, 1500),
               (300, 5, 5e-2, 2000), (400, 5, 3e-2, 1000), (400, 2, 3e-2, 2000),
               (300, 5, 3e-2, 500), (300, 5, 3e-2, 1000), (300, 5, 3e-2, 2000),
               (300, 5, 3e-2, 5000))
IW_SVI_REFERENCE = (400, 100, 3e-2, 5000)
_IW_SVI_GRID = flags.DEFINE_list(
    'iw_svi_grid', [':'.join(f'{v:g}' for v in row) for row in IW_SVI_GRID],
    'Settings S:k:rate:K of the IW-SVI curve (with --iw_svi_workdir).')
_IW_SVI_REFERENCE = flags.DEFINE_string(
    'iw_svi_reference', ':'.join(f'{v:g}' for v in IW_SVI_REFERENCE),
    'S:k:rate:K of the IW-SVI curve\'s reference estimate.')


def parse_iw_svi_setting(text: str) -> tuple[int, int, float, int]:
  """'S:k:rate:K' -> (S, k, rate, K)."""
  try:
    steps, k, rate, num_samples = text.split(':')
    return int(steps), int(k), float(rate), int(num_samples)
  except ValueError:
    raise app.UsageError(f'an IW-SVI setting is S:k:rate:K (e.g. 300:5:0.03:2000), got '
                         f'{text!r}') from None


def iw_svi_curve(model, params, x: np.ndarray, grid=IW_SVI_GRID,
                 reference=IW_SVI_REFERENCE) -> dict:
  """IW-SVI log p(x) of the same points `[N, P]` for each (S, k, Adam rate, K) of `grid`:
  its mean over the points and its mean paired difference (± SE) to the `reference`
  setting's; the same key throughout (common draws). `cost` counts the decoder passes per
  point of the refinement and the final K, in thousands (a refinement step's k particles
  cost two: forward and backward); the amortized pass, which log p(x) does not use, is cut
  to 100 particles here."""
  defaults = iw_svi_settings(amortized_num_samples=100)
  names = ('steps', 'k', 'learning_rate', 'num_samples')

  def estimate(values):
    return iw_svi.log_likelihood(model, params, x, jax.random.key(5),
                                 **{**defaults, **dict(zip(names, values))})['log_px']
  reference_log_px = estimate(reference)

  def row(values):
    diff = estimate(values) - reference_log_px
    settings = {**defaults, **dict(zip(names, values))}
    cost = (2 * settings['steps'] * settings['k'] + settings['num_samples']) / 1000
    return {**settings, 'cost': cost, 'log_px': float((diff + reference_log_px).mean()),
            'minus_reference': float(diff.mean()),
            'minus_reference_stderr': float(diff.std(ddof=1) / np.sqrt(len(diff)))}
  return {'num_points': len(x), 'reference': dict(zip(names, reference)),
          'reference_log_px': float(reference_log_px.mean()), 'grid': [row(v) for v in grid]}


def raw_normal_rate(min_seconds: float, shape=(200, 1024, 20)) -> float:
  """jax.random.normal draws per second (the default threefry key), written to memory."""
  draw = jax.jit(lambda k: jax.random.normal(k, shape))
  seconds = time_it(lambda: draw(jax.random.key(0)).block_until_ready(), min_seconds)
  return float(np.prod(shape)) / seconds


def snr_rows(min_seconds: float, dim: int = 20, num_data: int = 1024,
             num_draws: int = 10_000) -> dict:
  """Particle coordinates drawn per second by each pass of the SNR sweep, gradients included.

  Projects the wall time of experiments.snr's default sweep (R = 10^4, budgets 1..1000, four
  estimators) with independent draws per cell (the earlier design) and with shared draws.
  Shared passes are also timed with the budgets cut at 10 and 100.
  """
  raw = raw_normal_rate(min_seconds)
  problem = gm.make_problem(jax.random.key(0), dim, num_data)
  budgets = (1, 3, 10, 30, 100, 300, 1000)
  out = {'raw_normal_per_second': raw, 'rows': []}
  for shared in (False, True):
    passes, _ = snr_study.plan(snr_study.ESTIMATORS, budgets, jax.random.key(1), shared)
    if shared:
      passes = [dataclasses.replace(p, budgets=tuple(b for b in budgets if b <= top))
                for top in (10, 100, 1000) for p in passes]
    projected = 0.0
    for p in passes:
      n = max(2, snr_study.draws_per_chunk(max(p.budgets), num_data, dim))
      block = snr_study.block_fn(p.estimators, p.budgets, problem.x, problem.proposal_var, n)
      seconds = time_it(lambda: jax.block_until_ready(  # pylint: disable=cell-var-from-loop
          block(problem.params, p.key, 0)), min_seconds) / n
      rate = max(p.budgets) * num_data * dim / seconds
      out['rows'].append({'shared': shared, 'pass': p.name, 'max_budget': max(p.budgets),
                          'seconds_per_draw': seconds, 'coords_per_second': rate,
                          'fraction_of_raw_normal': rate / raw})
      if max(p.budgets) == budgets[-1] or not shared:
        projected += num_draws * seconds
    out['projected_seconds_shared' if shared else 'projected_seconds_independent'] = projected
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  svi_grid = [parse_iw_svi_setting(t) for t in _IW_SVI_GRID.value]
  svi_reference = parse_iw_svi_setting(_IW_SVI_REFERENCE.value)
  peak = matmul_peak_gflops(_MIN_SECONDS.value)
  print(f'float32 matmul peak: {peak:.1f} GFLOP/s on {jax.devices()[0].device_kind} '
        f'({jax.device_count()} device(s))')
  model, params, x = make_model(np.random.default_rng(0))
  unchunked = dataclasses.replace(model, chunk_rows=0)
  rows = []
  print(f'IWAE training step: unchunked (before) and over decoder chunks of '
        f'{model.chunk_rows} rows (after, the default); plain JAX: the obvious step')
  print('| batch | K | before (ms) | fraction of peak | after (ms) | fraction of peak | '
        'speed-up | plain JAX (ms) | plain / after |')
  print('|---|---|---|---|---|---|---|---|---|')
  for b in map(int, _BATCH_SIZES.value):
    for k in map(int, _KS.value):
      before = train_row(unchunked, params, x, b, k, peak, _MIN_SECONDS.value)
      r = train_row(model, params, x, b, k, peak, _MIN_SECONDS.value)
      r['unchunked_step_seconds'] = before['step_seconds']
      r['unchunked_fraction_of_peak'] = before['fraction_of_peak']
      r['plain_jax_step_seconds'] = plain_iwae_step_seconds(x, b, k, _MIN_SECONDS.value)
      rows.append(r)
      print(f'| {b} | {k} | {1e3 * before["step_seconds"]:.2f} | '
            f'{before["fraction_of_peak"]:.1%} | {1e3 * r["step_seconds"]:.2f} | '
            f'{r["fraction_of_peak"]:.1%} | {before["step_seconds"] / r["step_seconds"]:.2f} | '
            f'{1e3 * r["plain_jax_step_seconds"]:.2f} | '
            f'{r["plain_jax_step_seconds"] / r["step_seconds"]:.2f} |')
  memory = []
  if _MEMORY.value:
    print('| batch | K | decoder chunk rows | peak RSS (MB) | XLA temporaries (MB) |')
    print('|---|---|---|---|---|')
    for k in map(int, _MEMORY_KS.value):
      for chunk_rows in (0, model.chunk_rows):
        m = peak_memory_row(100, k, chunk_rows)
        memory.append(m)
        print(f'| 100 | {k} | {chunk_rows} | {m["peak_rss_mb"]:.0f} | {m["xla_temp_mb"]:.0f} |')
  ev = eval_row(model, params, x, _EVAL_K.value, _EVAL_POINTS.value, peak)
  print(f'evaluation K={ev["k"]}: {ev["points_per_second"]:.1f} points/s '
        f'({ev["seconds_per_10000_points"]:.0f} s per 10,000 points), '
        f'{ev["fraction_of_peak"]:.1%} of peak; first call (compiling) '
        f'{ev["first_call_seconds"]:.1f} s')
  out = {'peak_gflops': peak, 'device': jax.devices()[0].device_kind, 'jax': jax.__version__,
         'train': rows, 'memory': memory, 'eval': [ev]}
  if _REM.value:
    rem_model, rem_params, rem_x = make_model(np.random.default_rng(0), 'rem')
    out['rem'] = []
    print('| method | batch | K | step (ms) | ratio to IWAE |')
    print('|---|---|---|---|---|')
    for b in (20, 100):
      for k in (50, 1000):
        base = None
        for method in ('iwae', 'rws', 'rem_v1', 'rem_v2'):
          r = train_row(rem_model, rem_params, rem_x, b, k, peak, _MIN_SECONDS.value, method)
          base = base or r['step_seconds']
          r['ratio_to_iwae'] = r['step_seconds'] / base
          out['rem'].append(r)
          print(f'| {method} | {b} | {k} | {1e3 * r["step_seconds"]:.1f} | '
                f'{r["ratio_to_iwae"]:.2f} |')
  if _SNR.value:
    out['snr'] = snr_rows(_MIN_SECONDS.value)
    print(f'raw jax.random.normal: {out["snr"]["raw_normal_per_second"] / 1e6:.0f} M draws/s')
    print('| draws | pass | max budget | s per draw | M coords/s | fraction of raw normal |')
    print('|---|---|---|---|---|---|')
    for r in out['snr']['rows']:
      print(f'| {"shared" if r["shared"] else "independent"} | {r["pass"]} | '
            f'{r["max_budget"]} | {r["seconds_per_draw"]:.4f} | '
            f'{r["coords_per_second"] / 1e6:.1f} | {r["fraction_of_raw_normal"]:.0%} |')
    print('projected default SNR sweep (R=10^4, D=20, N=1024): '
          f'{out["snr"]["projected_seconds_independent"] / 3600:.2f} h independent, '
          f'{out["snr"]["projected_seconds_shared"] / 3600:.2f} h shared')
  if _AVO.value:
    out['avo_toy'] = toy_rows(_MIN_SECONDS.value)
    for r in out['avo_toy']:
      print(f'toy HVI-{r["objective"].upper()} (T=10, batch 64): '
            f'{r["steps_per_second"]:.0f} steps/s')
    vae = make_model(np.random.default_rng(0), 'avo')
    hvi_models = {int(w): make_model(np.random.default_rng(0), 'avo', _TRANSITIONS.value,
                                     int(w))
                  for w in _WIDTHS.value}
    out['avo_amortized'] = amortized_rows(vae, hvi_models, peak, _MIN_SECONDS.value,
                                          _ROUNDS.value)
    print(f'| amortized step (avo preset, T={_TRANSITIONS.value}, batch 100, M=1; '
          f'{_ROUNDS.value} interleaved rounds) | ms | ratio to VAE (range over rounds) | '
          'FLOPs ratio | fraction of peak |')
    print('|---|---|---|---|---|')
    for r in out['avo_amortized']:
      print(f'| {r["method"]} | {1e3 * r["step_seconds"]:.1f} | {r["ratio_to_vae"]:.2f} '
            f'({r["ratio_range"][0]:.2f}-{r["ratio_range"][1]:.2f}) | '
            f'{r["flops_ratio_to_vae"]:.2f} | {r["fraction_of_peak"]:.1%} |')
    for width in hvi_models:  # each width's rows: the ELBO step, then the AVO step
      elbo_step, avo_step = [r['ratio_to_vae'] for r in out['avo_amortized']
                             if r['transition_hidden'] == width][:2]
      print(f'hvi_avo ({width}-unit transitions), expected step: ' + ', '.join(
          f'a = {a}: {a * avo_step + (1 - a) * elbo_step:.2f}x' for a in (0.2, 0.5)))
      ablation = [r for r in out['avo_amortized'] if r['transition_hidden'] == width][2]
      floor = avo_flops_floor(vae, out['avo_amortized'][0]['gflops_per_step'] * 1e9,
                              ablation['gflops_per_step'] * 1e9)
      out.setdefault('avo_flops_floor', {})[width] = floor
      print(f'AVO step ({width}-unit transitions) with every shared computation done once: '
            f'at least {floor["floor"]:.2f}x the VAE step\'s FLOPs')
  if _IW_SVI.value:
    svi_model, svi_params, svi_x = model, params, x
    if _IW_SVI_WORKDIR.value:
      svi_config = workdir_lib.saved_config(_IW_SVI_WORKDIR.value)
      dataset = data_lib.load(svi_config.dataset, svi_config.data_dir or None)
      svi_model, svi_params, _ = train.restore_params(_IW_SVI_WORKDIR.value, svi_config, dataset)
      svi_x = dataset.splits['test']
    out['iw_svi'] = [iw_svi_row(svi_model, svi_params, svi_x, _EVAL_POINTS.value, s)
                     for s in (*IW_SVI_BEFORE, iw_svi_settings(amortized_num_samples=1000))]
    print('| IW-SVI S | k | rate | K | amortized K | s per 1,000 points |')
    print('|---|---|---|---|---|---|')
    for r in out['iw_svi']:
      print(f'| {r["steps"]} | {r["k"]} | {r["learning_rate"]:g} | {r["num_samples"]} | '
            f'{r["amortized_num_samples"]} | {r["seconds_per_1000_points"]:.1f} |')
    if _IW_SVI_WORKDIR.value:
      curve = out['iw_svi_curve'] = iw_svi_curve(
          svi_model, svi_params, svi_x[:_IW_SVI_POINTS.value], svi_grid, svi_reference)
      print(f'IW-SVI curve on {curve["num_points"]} test points, reference '
            f'{curve["reference"]}: log p(x) {curve["reference_log_px"]:.2f}')
      print('| S | k | rate | K | cost | log p(x) | minus reference |')
      print('|---|---|---|---|---|---|---|')
      for r in curve['grid']:
        print(f'| {r["steps"]} | {r["k"]} | {r["learning_rate"]:g} | {r["num_samples"]} | '
              f'{r["cost"]:g} | {r["log_px"]:.2f} | {r["minus_reference"]:+.3f} ± '
              f'{r["minus_reference_stderr"]:.3f} |')
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump(out, f, indent=2)


if __name__ == '__main__':
  app.run(main)
