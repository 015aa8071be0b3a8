"""avi: amortized variational inference in JAX."""
from avi.distributions import moment_match

__all__ = ['moment_match']
__version__ = '0.1.0'
