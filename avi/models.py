"""The model interface every method and the evaluator use.

A `LatentVariableModel` owns the joint log p(x, z) = log p(x | z) + log p(z), the
proposal (`propose`: a sample and its log-density, in the extended space of
hierarchical VI when T > 0) and the parameter groups it declares. Methods build
their log-weights through it and route gradients by group (`trainable`), so a
parameter a method forgets is a build-time error, not a silent zero gradient.

Shapes: x `[B, P]`, particles z `[K, B, D]` (particles first), log-densities `[K, B]`.
"""
import dataclasses
import math
from typing import Any, Collection, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from avi import distributions as dist
from avi import hvi
from avi import networks

GENERATIVE, INFERENCE = 'generative', 'inference'


class Group(NamedTuple):
  """A parameter group: its role and the parameter paths (under `params['params']`) it owns."""
  role: str  # GENERATIVE (the model p) or INFERENCE (the proposal q)
  paths: tuple[tuple[str, ...], ...]


class Proposal(NamedTuple):
  """Particles of the proposal and their log-density.

  z `[K, B, D]` is z_T; log_q `[K, B]` is log q(z | x), or with T transitions the
  extended-space log q_0(z_0) + sum_t [log q_t(z_t | z_{t-1}) - log r_t(z_{t-1} | z_t)]
  (Huang et al. 2018, eq. 3), so log p(x, z_T) - log_q is an importance weight of p(x)
  either way. log_q0 `[K, B]` is log q_0(z_0); chain is the `hvi.Chain` (None at T = 0).
  """
  z: jax.Array
  log_q: jax.Array
  log_q0: jax.Array
  chain: Optional[hvi.Chain] = None


class LatentVariableModel:
  """The interface. A subclass sets `groups` and implements `log_likelihood`, and either
  `encode` (a Gaussian q_0(z_0 | x), optionally refined by `refine`) or `propose`."""
  groups: Mapping[str, Group] = {}
  num_transitions: int = 0

  def log_likelihood(self, params, x: jax.Array, z: jax.Array) -> jax.Array:
    """log p(x | z), `[K, B]`."""
    raise NotImplementedError

  def log_prior(self, z: jax.Array) -> jax.Array:
    """log p(z) = log N(z; 0, I), `[K, B]`."""
    return dist.standard_normal_log_prob(z)

  def log_joint(self, params, x: jax.Array, z: jax.Array) -> jax.Array:
    """log p(x, z), `[K, B]`."""
    return self.log_likelihood(params, x, z) + self.log_prior(z)

  def encode(self, params, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """q_0(z_0 | x) = N(mean, diag scale^2): (mean `[B, D]`, scale `[B, D]`, context `[B, C]`)."""
    raise NotImplementedError(f'{type(self).__name__} has no Gaussian encoder')

  def refine(self, params, z0: jax.Array, context: jax.Array, key: jax.Array,
             cut_gradients: bool = False) -> hvi.Chain:
    """The T refinement transitions from z_0 `[K, B, D]` (only when num_transitions > 0)."""
    raise NotImplementedError(f'{type(self).__name__} has no refinement transitions')

  def backward_log_weights(self, params, z_T: jax.Array, context: jax.Array, key: jax.Array,
                           num_chains: int, log_q0_fn) -> jax.Array:
    """log q(z_0..z_T) - log r(z_0..z_{T-1} | z_T) of `num_chains` backward chains from z_T
    `[B, D]`, `[num_chains, B]` (`hvi.backward_log_weights`; only when num_transitions > 0)."""
    raise NotImplementedError(f'{type(self).__name__} has no refinement transitions')

  def log_marginal_q(self, params, x: jax.Array, z: jax.Array, key: jax.Array,
                     num_chains: int) -> jax.Array:
    """log q_T(z | x) of particles z `[K, B, D]`, `[K, B]`: exact at T = 0; with transitions
    the log-mean of `num_chains` backward-chain weights per particle (Huang et al. 2018,
    App. C), biased low and tight as num_chains grows."""
    if num_chains < 1:
      raise ValueError(f'num_chains must be >= 1, got {num_chains}')
    mean, scale, context = self.encode(params, x)
    if not self.num_transitions:
      return dist.diag_gaussian_log_prob(z, mean, scale)

    def log_q0(z0):
      return dist.diag_gaussian_log_prob(z0, mean, scale)

    def one_particle(args):  # chains [M, B, D] per particle, not [M, K, B, D] at once
      z_k, key_k = args
      log_w = self.backward_log_weights(params, z_k, context, key_k, num_chains, log_q0)
      return jax.nn.logsumexp(log_w, axis=0) - math.log(num_chains)
    return jax.lax.map(one_particle, (z, jax.random.split(key, z.shape[0])))

  def propose(self, params, x: jax.Array, key: jax.Array, num_samples: int,
              x_encoder: Optional[jax.Array] = None, stop_q_grad: bool = False,
              cut_gradients: bool = False) -> Proposal:
    """K = num_samples particles of q(z | x) per example.

    x_encoder (default x) is what the encoder sees (denoising corrupts it alone).
    stop_q_grad scores log q with q's parameters held fixed while z keeps its
    reparameterized path (the log-weight of STL and DReG; T = 0 only).
    cut_gradients makes each transition's input a constant (AVO, footnote 5).
    """
    mean, scale, context = self.encode(params, x if x_encoder is None else x_encoder)
    if self.num_transitions and stop_q_grad:
      raise ValueError('stop_q_grad (STL, DReG) is not defined for hierarchical proposals')
    key_0, key_chain = jax.random.split(key) if self.num_transitions else (key, None)
    z0 = dist.diag_gaussian_sample(key_0, mean, scale, num_samples)
    if stop_q_grad:
      mean, scale = jax.lax.stop_gradient((mean, scale))
    log_q0 = dist.diag_gaussian_log_prob(z0, mean, scale)
    if not self.num_transitions:
      return Proposal(z0, log_q0, log_q0)
    chain = self.refine(params, z0, context, key_chain, cut_gradients)
    return Proposal(chain.zs[-1], log_q0 + jnp.sum(chain.log_q - chain.log_r, axis=0), log_q0,
                    chain)

  def log_weights(self, params, x: jax.Array, key: jax.Array, num_samples: int,
                  beta: float | jax.Array = 1.0, **propose_options,
                  ) -> tuple[jax.Array, jax.Array]:
    """(log p(x, z) - log q(z | x) `[K, B]`, z `[K, B, D]`) for K = num_samples particles.

    beta < 1 (deterministic warm-up, Huang et al. 2018, eq. 2) tempers each weight to
    log p(x | z) + beta [log p(z) - log q(z | x)]: their mean is the warm-up ELBO
    E[log p(x | z)] - beta KL, their log-mean-exp the same tempering inside IWAE_K
    (a bound on log of the integral of p(x | z) p(z)^beta q^(1 - beta)), and with T
    transitions beta scales the extended-space log q too.
    """
    proposal = self.propose(params, x, key, num_samples, **propose_options)
    if isinstance(beta, float) and beta == 1.0:
      return self.log_joint(params, x, proposal.z) - proposal.log_q, proposal.z
    return (self.log_likelihood(params, x, proposal.z)
            + beta * (self.log_prior(proposal.z) - proposal.log_q)), proposal.z

  def group_of(self, path: tuple[str, ...]) -> str:
    """The declared group owning the parameter at `path` (keys under `params['params']`)."""
    for name, group in self.groups.items():
      if any(path[:len(p)] == p for p in group.paths):
        return name
    raise ValueError(f'parameter {"/".join(path)} belongs to no declared group of '
                     f'{type(self).__name__} (groups: {", ".join(self.groups)})')

  def group_tree(self, params):
    """A tree shaped like `params` holding each parameter's group name."""
    return jax.tree_util.tree_map_with_path(lambda path, _: self.group_of(_keys(path)), params)

  def selects(self, group: str, selector) -> bool:
    """Whether `selector` (a group name, a role, or a tuple of those) names `group`."""
    if isinstance(selector, tuple):
      return any(self.selects(group, s) for s in selector)
    return selector in (group, self.groups[group].role)

  def trainable(self, params, selector: str):
    """`params` with every parameter outside `selector` (a group or role) held fixed."""
    if not any(self.selects(g, selector) for g in self.groups):
      raise ValueError(f'{selector!r} names no parameter group of {type(self).__name__} '
                       f'(groups: {", ".join(self.groups)}; roles: {GENERATIVE}, {INFERENCE})')
    return jax.tree_util.tree_map_with_path(
        lambda path, p: p if self.selects(self.group_of(_keys(path)), selector)
        else jax.lax.stop_gradient(p), params)

  def group_norms(self, tree) -> dict[str, jax.Array]:
    """The L2 norm of `tree` (e.g. a gradient shaped like params) over each group."""
    squares = {name: 0.0 for name in self.groups}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
      squares[self.group_of(_keys(path))] += jnp.sum(jnp.square(leaf))
    return {name: jnp.sqrt(s) for name, s in squares.items()}

  def check_routes(self, selectors: Collection[str], method: str) -> None:
    """Every group must be trained by exactly one of a method's losses."""
    for group in self.groups:
      owners = [s for s in selectors if self.selects(group, s)]
      if len(owners) != 1:
        raise ValueError(f'{method} trains the parameter group {group!r} of '
                         f'{type(self).__name__} by {len(owners)} losses ({owners}); exactly one '
                         'is needed')


def _keys(path) -> tuple[str, ...]:
  keys = tuple(str(getattr(k, 'key', getattr(k, 'name', k))) for k in path)
  return keys[1:] if keys[:1] == ('params',) else keys


def map_particle_chunks(fn, z: jax.Array, max_rows: int) -> jax.Array:
  """fn(z) for z `[K, ..., D]` -> `[K, ...]`, computed over chunks of the particle axis of
  at most `max_rows` rows (particles x the other leading axes) each, every chunk's
  activations recomputed in the backward pass (`jax.checkpoint`) instead of stored.

  The same maths as fn(z) (to float rounding): the chunks are a largest divisor of K that
  fits. At large K x B the `[K, B, P]` decoder tensors otherwise leave the caches; chunks of
  ~1,000 rows make the batch-100, K = 50 IWAE step 1.3x faster (BENCHMARKS.md). max_rows 0,
  or K x B within it: one call.
  """
  k, rows = z.shape[0], math.prod(z.shape[1:-1])
  fits = max(1, max_rows // max(rows, 1))
  if not max_rows or fits >= k:
    return fn(z)
  per_chunk = max(d for d in range(1, fits + 1) if k % d == 0)
  out = jax.lax.map(jax.checkpoint(fn), z.reshape(k // per_chunk, per_chunk, *z.shape[1:]))
  return out.reshape(k, *out.shape[2:])


@dataclasses.dataclass(frozen=True)
class BernoulliVAE(LatentVariableModel):
  """A Gaussian encoder, a Bernoulli decoder and optional refinement transitions
  (`networks.VAE`): groups decoder (generative), encoder, and with T > 0 the
  forward and backward transitions (inference). The decoder's log-likelihood runs over
  particle chunks of at most `chunk_rows` rows (`map_particle_chunks`; 0 = unchunked)."""
  module: networks.VAE
  chunk_rows: int = 0

  @property
  def arch(self) -> networks.Architecture:
    return self.module.arch

  @property
  def num_transitions(self) -> int:
    return self.arch.num_transitions

  @property
  def latent_dim(self) -> int:
    return self.arch.latent_dim

  @property
  def groups(self) -> dict[str, Group]:
    groups = {'decoder': Group(GENERATIVE, (('decoder',),)),
              'encoder': Group(INFERENCE, (('encoder',),))}
    if self.num_transitions:
      groups['forward'] = Group(INFERENCE, (('transitions', 'forward'),))
      groups['backward'] = Group(INFERENCE, (('transitions', 'backward'),))
    return groups

  def log_likelihood(self, params, x, z):
    return map_particle_chunks(lambda zc: dist.bernoulli_log_prob(x, self.logits(params, zc)),
                               z, self.chunk_rows)

  def logits(self, params, z: jax.Array) -> jax.Array:
    """Decoder logits `[K, B, P]`."""
    return self.module.apply(params, z, method='decode')

  def encode(self, params, x):
    return self.module.apply(params, x, method='encode_with_context')

  def refine(self, params, z0, context, key, cut_gradients=False):
    return self.module.apply(params, z0, context, key, cut_gradients, method='refine')

  def backward_log_weights(self, params, z_T, context, key, num_chains, log_q0_fn):
    return self.module.apply(params, z_T, context, key, num_chains, log_q0_fn,
                             method='backward_log_weights')


def init_vae(key: jax.Array, arch: networks.Architecture, train_x: np.ndarray,
             chunk_rows: int = 0) -> tuple[BernoulliVAE, Any]:
  """A `BernoulliVAE` for `train_x` `[N, P]` and its params, decoder bias = logit of the data
  mean."""
  module = networks.VAE(arch, train_x.shape[-1])
  params = module.init(key, jnp.zeros((1, train_x.shape[-1]), jnp.float32))
  bias = jnp.asarray(networks.logit_of_mean(train_x))
  params = jax.tree_util.tree_map_with_path(
      lambda path, p: bias if _keys(path)[-3:] == ('decoder', 'logits', 'bias') else p, params)
  return BernoulliVAE(module, chunk_rows), params


def from_config(config, train_x: np.ndarray) -> tuple[BernoulliVAE, Any]:
  """The `BernoulliVAE` a training config describes (`config.architecture`, `latent_dim`,
  `air.encoder_max_norm`, `hvi.{num_transitions,hidden,start,init_scale,context_rank,min_scale}`,
  `decoder_chunk_rows`), initialized from `config.seed`."""
  if config.architecture not in networks.PRESETS:
    raise ValueError(f'unknown architecture {config.architecture!r}; '
                     f'known: {", ".join(networks.PRESETS)}')
  arch = networks.PRESETS[config.architecture]
  arch = dataclasses.replace(arch, latent_dim=config.latent_dim or arch.latent_dim,
                             encoder_max_norm=config.air.encoder_max_norm,
                             num_transitions=config.hvi.num_transitions,
                             transition_hidden=config.hvi.hidden,
                             transition_start=config.hvi.start,
                             transition_init_scale=config.hvi.init_scale,
                             transition_context_rank=config.hvi.context_rank,
                             transition_min_scale=config.hvi.min_scale)
  if int(config.decoder_chunk_rows) != config.decoder_chunk_rows or config.decoder_chunk_rows < 0:
    raise ValueError(f'decoder_chunk_rows must be an integer >= 0, got '
                     f'{config.decoder_chunk_rows!r}')
  return init_vae(jax.random.fold_in(jax.random.key(config.seed), 0), arch, train_x,
                  int(config.decoder_chunk_rows))
