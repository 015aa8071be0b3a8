"""The 2-d toy targets of Huang et al. (2018), Appendix B, Table 2: log f(z), unnormalized.

`log_density(name, z)` takes z `[..., 2]` and returns `[...]`. `log_normalizer(name)`
is log Z = log of the integral of f: exact for (c)-(f) ((d) is a normalized
mixture, log Z = 0), by quadrature on a fine grid for (a) and (b); so a KL
E_q[log q - log f] + log Z is absolute for every energy.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

NAMES = ('a', 'b', 'c', 'd', 'e', 'f')

# Energy (d): weights, means and the shared isotropic variance 0.2 of the 4-mode mixture.
MIXTURE_WEIGHTS = (0.1, 0.3, 0.4, 0.2)
MIXTURE_MEANS = ((-2.0, 0.0), (2.0, 0.0), (0.0, 2.0), (0.0, -2.0))
MIXTURE_VARIANCE = 0.2


def _log_gauss_bump(u: jax.Array, width: float) -> jax.Array:
  return -0.5 * (u / width)**2


def _w1(z1):
  return jnp.sin(0.5 * jnp.pi * z1)


def _a(z):
  z1 = z[..., 0]
  ring = _log_gauss_bump(jnp.linalg.norm(z, axis=-1) - 2.0, 0.4)
  return ring + jnp.logaddexp(_log_gauss_bump(z1 - 2.0, 0.6), _log_gauss_bump(z1 + 2.0, 0.6))


def _b(z):
  z1, z2 = z[..., 0], z[..., 1]
  ring = _log_gauss_bump(jnp.linalg.norm(0.5 * z, axis=-1) - 2.0, 0.5)
  terms = jnp.stack([_log_gauss_bump(z1 - 2.0, 0.6), -0.5 * (2.0 * jnp.sin(z1))**2,
                     _log_gauss_bump(z1 + z2 + 2.5, 0.6)])
  return ring + jax.nn.logsumexp(terms, axis=0)


def _c(z):
  z1, z2 = z[..., 0], z[..., 1]
  return -(2.0 - jnp.sqrt(z1**2 + 0.5 * z2**2))**2


def _d(z):
  means = jnp.asarray(MIXTURE_MEANS)  # [4, 2]
  sq = jnp.sum((z[..., None, :] - means)**2, axis=-1)  # [..., 4]
  log_components = -0.5 * sq / MIXTURE_VARIANCE - jnp.log(2 * jnp.pi * MIXTURE_VARIANCE)
  return jax.nn.logsumexp(log_components + jnp.log(jnp.asarray(MIXTURE_WEIGHTS)), axis=-1)


def _e(z):
  z1, z2 = z[..., 0], z[..., 1]
  return _log_gauss_bump(z2 - _w1(z1), 0.4) - 0.1 * z1**2


def _f(z):
  z1, z2 = z[..., 0], z[..., 1]
  w2 = 3.0 * jnp.exp(-0.5 * (z1 - 2.0)**2)
  return (jnp.logaddexp(_log_gauss_bump(z2 - _w1(z1), 0.35),
                        _log_gauss_bump(z2 - _w1(z1) + w2, 0.35)) - 0.05 * z1**2)


_ENERGIES = {'a': _a, 'b': _b, 'c': _c, 'd': _d, 'e': _e, 'f': _f}


def check_name(name: str) -> None:
  if name not in _ENERGIES:
    raise ValueError(f'unknown energy {name!r}; known: {", ".join(NAMES)}')


def log_density(name: str, z: jax.Array) -> jax.Array:
  """Unnormalized log f(z) of energy `name` at z `[..., 2]`; `[...]`."""
  check_name(name)
  if z.shape[-1] != 2:
    raise ValueError(f'toy energies are 2-d: z must be [..., 2], got shape {z.shape}')
  return _ENERGIES[name](z)


def quadrature_log_normalizer(name: str, half_width: float = 25.0, num: int = 4001) -> float:
  """log of the integral of f over [-w, w]^2 by the midpoint rule on a `num`^2 grid."""
  h = 2 * half_width / num
  axis = -half_width + h * (np.arange(num) + 0.5)
  total = -np.inf
  for rows in np.array_split(axis, 16):  # bounded memory
    z = np.stack(np.meshgrid(rows, axis, indexing='ij'), -1)
    total = np.logaddexp(total, float(jax.nn.logsumexp(log_density(name, jnp.asarray(z)))))
  return total + 2 * math.log(h)


@functools.cache
def log_normalizer(name: str) -> float:
  """log Z of energy `name` (closed forms for (c)-(f), quadrature for (a), (b))."""
  check_name(name)
  if name == 'c':  # sqrt(2) * 2 pi * int_0^inf r exp(-(r - 2)^2) dr, with z2 = sqrt(2) u
    radial = math.exp(-4.0) / 2 + math.sqrt(math.pi) * (1 + math.erf(2.0))
    return math.log(math.sqrt(2) * 2 * math.pi * radial)
  if name == 'd':
    return 0.0
  if name == 'e':  # Gaussian in z2 (std 0.4) times exp(-0.1 z1^2)
    return math.log(0.4 * math.sqrt(2 * math.pi) * math.sqrt(math.pi / 0.1))
  if name == 'f':  # two Gaussians in z2 (std 0.35) times exp(-0.05 z1^2)
    return math.log(2 * 0.35 * math.sqrt(2 * math.pi) * math.sqrt(math.pi / 0.05))
  return quadrature_log_normalizer(name)
