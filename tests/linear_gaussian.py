"""A linear-Gaussian latent-variable model with closed forms, for testing bounds and evaluators.

z ~ N(0, I_D), x | z ~ N(W z + c, s^2 I_P), q(z | x) = N(m(x), diag(v)):
log p(x) = log N(x; c, W W^T + s^2 I), and the exact posterior is Gaussian.
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import stats

from avi import distributions as dist


class LinearGaussian:

  def __init__(self, seed=0, latent_dim=2, data_dim=3, noise=0.7):
    rng = np.random.default_rng(seed)
    self.w = jnp.asarray(rng.normal(size=(data_dim, latent_dim)), jnp.float32)
    self.c = jnp.asarray(rng.normal(size=data_dim), jnp.float32)
    self.noise = noise
    self.latent_dim, self.data_dim = latent_dim, data_dim

  def sample_x(self, key, n):
    kz, kx = jax.random.split(key)
    z = jax.random.normal(kz, (n, self.latent_dim))
    return z @ self.w.T + self.c + self.noise * jax.random.normal(kx, (n, self.data_dim))

  def log_px(self, x):
    cov = self.w @ self.w.T + self.noise**2 * jnp.eye(self.data_dim)
    return stats.multivariate_normal.logpdf(x, self.c, cov)

  def posterior(self, x):
    """Exact p(z | x): mean [B, D], covariance [D, D]."""
    prec = jnp.eye(self.latent_dim) + self.w.T @ self.w / self.noise**2
    cov = jnp.linalg.inv(prec)
    mean = (x - self.c) @ self.w @ cov.T / self.noise**2
    return mean, cov

  def log_joint(self, x, z):
    log_lik = jnp.sum(stats.norm.logpdf(x, z @ self.w.T + self.c, self.noise), -1)
    return log_lik + dist.standard_normal_log_prob(z)

  def log_weights(self, key, x, num_samples, mean, scale):
    """log p(x, z) - log q(z | x) for q = N(mean, diag(scale^2)); `[K, B]`."""
    z = dist.diag_gaussian_sample(key, mean, scale, num_samples)
    return self.log_joint(x, z) - dist.diag_gaussian_log_prob(z, mean, scale)

  def expected_elbo(self, x, mean, scale):
    """E_q[log p(x, z) - log q(z)] in closed form for q = N(mean, diag(scale^2))."""
    resid = x - (mean @ self.w.T + self.c)
    trace = jnp.sum((self.w**2) @ (scale**2).T, axis=0) if scale.ndim == 1 else jnp.einsum(
        'pd,bd->b', self.w**2, scale**2)
    expected_lik = (-0.5 * self.data_dim * jnp.log(2 * jnp.pi * self.noise**2)
                    - 0.5 * (jnp.sum(resid**2, -1) + trace) / self.noise**2)
    return expected_lik - dist.diag_gaussian_kl_to_standard(mean, scale)
