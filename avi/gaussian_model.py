"""The Gaussian model of Rainforth et al. (2018), Section 4, with its closed forms.

  z ~ N(mu, I_D),  x | z ~ N(z, I_D),  q(z | x) = N(A x + b, sigma_q^2 I_D)

so p(x) = N(mu, 2 I), p(z | x) = N((x + mu) / 2, I / 2) and, with
sigma_q^2 = 2/3 (not the posterior's 1/2, so that q is never exact), the optimum
is mu* = mean(x), A* = I / 2, b* = mu* / 2. theta = mu; phi = (A, b).
Pure functions; params are a dict {'mu': [D], 'A': [D, D], 'b': [D]}.
"""
import dataclasses

import jax
import jax.numpy as jnp
from jax.scipy import stats

from avi import bounds

DEFAULT_PROPOSAL_VAR = 2.0 / 3.0


@dataclasses.dataclass(frozen=True)
class Problem:
  x: jax.Array  # [N, D]
  mu_true: jax.Array  # [D]
  params: dict  # the parameter point the gradients are measured at
  proposal_var: float = DEFAULT_PROPOSAL_VAR


def optimum(x: jax.Array) -> dict:
  """The analytic maximizer of the IWAE objective for every K: mu* = mean x, A* = I/2, b* = mu*/2."""
  mu = x.mean(0)
  return {'mu': mu, 'A': 0.5 * jnp.eye(x.shape[1]), 'b': 0.5 * mu}


def make_problem(key: jax.Array, dim: int = 20, num_data: int = 1024, offset_std: float = 0.01,
                 proposal_var: float = DEFAULT_PROPOSAL_VAR) -> Problem:
  """mu_true ~ N(0, I), N data points, and a point offset from the optimum by N(0, s^2) per entry."""
  for name, value in (('dim', dim), ('num_data', num_data)):
    if value < 1:
      raise ValueError(f'{name} must be >= 1, got {value}')
  if offset_std < 0:
    raise ValueError(f'offset_std must be >= 0, got {offset_std}')
  if proposal_var <= 0:
    raise ValueError(f'proposal_var must be > 0, got {proposal_var}')
  k_mu, k_z, k_x, k_off = jax.random.split(key, 4)
  mu_true = jax.random.normal(k_mu, (dim,))
  z = mu_true + jax.random.normal(k_z, (num_data, dim))
  x = z + jax.random.normal(k_x, (num_data, dim))
  opt = optimum(x)
  leaves, treedef = jax.tree.flatten(opt)
  keys = jax.random.split(k_off, len(leaves))
  params = jax.tree.unflatten(treedef, [
      p + offset_std * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
  return Problem(x, mu_true, params, proposal_var)


def log_px(params: dict, x: jax.Array) -> jax.Array:
  """log p(x) = log N(x; mu, 2 I), `[N, D] -> [N]`."""
  return jnp.sum(stats.norm.logpdf(x, params['mu'], jnp.sqrt(2.0)), axis=-1)


def grad_mu_log_px(params: dict, x: jax.Array) -> jax.Array:
  """grad_mu of the data-averaged log p(x): mean_n (x_n - mu) / 2, `[D]`."""
  return jnp.mean(x - params['mu'], axis=0) / 2.0


def posterior(params: dict, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """p(z | x) = N((x + mu) / 2, I / 2): mean `[N, D]`, per-coordinate variance."""
  return (x + params['mu']) / 2.0, jnp.asarray(0.5)


def log_weights(params: dict, x: jax.Array, key: jax.Array, num_particles: int,
                proposal_var: float = DEFAULT_PROPOSAL_VAR, stop_q_grad: bool = False,
                ) -> jax.Array:
  """log p(x, z) - log q(z | x) for z ~ q, `[N, D] -> [K, N]`.

  With `stop_q_grad`, log q is evaluated with phi held fixed while z keeps its
  reparameterized path: the log-weight that STL and DReG differentiate.
  """
  eps = jax.random.normal(key, (num_particles, *x.shape), x.dtype)
  return log_weights_from_noise(params, x, eps, proposal_var, stop_q_grad)


def log_weights_from_noise(params: dict, x: jax.Array, eps: jax.Array,
                           proposal_var: float = DEFAULT_PROPOSAL_VAR,
                           stop_q_grad: bool = False) -> jax.Array:
  """`log_weights` at z = A x + b + sigma_q eps for given standard-normal eps `[K, N, D]`."""
  mean = x @ params['A'].T + params['b']
  scale = jnp.sqrt(proposal_var)
  z = mean + scale * eps
  q_mean = jax.lax.stop_gradient(mean) if stop_q_grad else mean
  return log_weight(params['mu'], q_mean, z, x, proposal_var)


def log_weight(mu: jax.Array, q_mean: jax.Array, z: jax.Array, x: jax.Array,
               proposal_var: float = DEFAULT_PROPOSAL_VAR) -> jax.Array:
  """log N(z; mu, I) + log N(x; z, I) - log N(z; q_mean, sigma_q^2 I), summed over the last axis.

  Arguments broadcast against z `[..., D]`; returns `[...]`.
  """
  log_joint = stats.norm.logpdf(z, mu).sum(-1) + stats.norm.logpdf(x, z).sum(-1)
  return log_joint - stats.norm.logpdf(z, q_mean, jnp.sqrt(proposal_var)).sum(-1)


def expected_elbo(params: dict, x: jax.Array, proposal_var: float = DEFAULT_PROPOSAL_VAR,
                  ) -> jax.Array:
  """E_q[log p(x, z) - log q(z | x)] in closed form, `[N]`: the K = 1 objective."""
  m = x @ params['A'].T + params['b']
  d = x.shape[-1]
  expected_log_joint = (-d * jnp.log(2 * jnp.pi)
                        - 0.5 * jnp.sum((m - params['mu'])**2 + (x - m)**2, -1)
                        - d * proposal_var)
  entropy = 0.5 * d * (1.0 + jnp.log(2 * jnp.pi * proposal_var))
  return expected_log_joint + entropy


def iwae_objective(params: dict, x: jax.Array, key: jax.Array, num_outer: int, num_particles: int,
                   proposal_var: float = DEFAULT_PROPOSAL_VAR) -> jax.Array:
  """The paper's estimate (1/M) sum_m log Z_hat_{m,K}, averaged over the N data points."""
  log_w = log_weights(params, x, key, num_outer * num_particles, proposal_var)
  return jnp.mean(bounds.miwae(log_w.reshape(num_outer, num_particles, -1)))
