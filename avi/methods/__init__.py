"""Training objectives, registered by name.

A method is built by `build(name, model, config)` into a pure function
`loss_fn(params, batch, rng) -> (loss, metrics)`: `batch` is `[B, P]`, `loss` a
scalar to minimize, `metrics` a dict of scalars. The training loop only ever sees
this function, so a new method is a new registered builder and nothing else.
Methods that train two networks with different objectives (RWS, REM, STL, DReG)
return the sum of a model loss and an inference loss whose gradients are routed
with `jax.lax.stop_gradient`.
"""
from typing import Any, Callable, Protocol

import jax

LossFn = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


class Builder(Protocol):

  def __call__(self, model: Any, config: Any) -> LossFn:
    ...


_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
  """Decorator: `@register('iwae') def make_iwae(model, config): ...`."""

  def wrap(builder: Builder) -> Builder:
    if name in _REGISTRY:
      raise ValueError(f'method {name!r} is already registered')
    _REGISTRY[name] = builder
    return builder

  return wrap


def names() -> list[str]:
  return sorted(_REGISTRY)


def build(name: str, model: Any, config: Any) -> LossFn:
  """The loss function of method `name` for `model`, configured by `config`."""
  if name not in _REGISTRY:
    raise ValueError(f'unknown method {name!r}; registered methods: {", ".join(names())}')
  return _REGISTRY[name](model, config)


# Importing the modules registers their methods.
from avi.methods import air  # noqa: E402,F401
from avi.methods import hvi_avo  # noqa: E402,F401
from avi.methods import rem  # noqa: E402,F401
from avi.methods import tighter_bounds  # noqa: E402,F401
from avi.methods import vae_iwae  # noqa: E402,F401
