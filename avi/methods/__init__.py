"""Training objectives, registered by name.

A method is built by `build(name, model, config)` into a pure function
`loss_fn(params, batch, rng) -> (loss, metrics)`: `batch` is `[B, P]`, `loss` a
scalar to minimize, `metrics` a dict of scalars. The training loop only ever sees
this function, so a new method is a new registered builder and nothing else.
Methods that train two networks with different objectives (RWS, REM, STL, DReG,
MIWAE/PIWAE/CIWAE) return the sum of a generative loss and an inference loss whose
gradients are routed per parameter group with `trainable`. A method that cannot
train some group of the model it is given refuses at build time (`refuse_transitions`).
"""
from typing import Any, Callable, Protocol

import jax

LossFn = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


class Builder(Protocol):

  def __call__(self, model: Any, config: Any) -> LossFn:
    ...


_REGISTRY: dict[str, Builder] = {}

# Parameter groups of `avi.networks.VAE`: the generative model p(x | z) (the decoder), and
# the inference model, i.e. every other top-level module: the encoder q_0(z_0 | x) and, with
# T > 0, the forward and backward refinement transitions.
GENERATIVE = ('decoder',)


def trainable(params, group: str):
  """`params` with every top-level module outside `group` held fixed by `stop_gradient`.

  group: 'generative' (the decoder) or 'inference' (encoder and transitions).
  """
  if group not in ('generative', 'inference'):
    raise ValueError(f"group must be 'generative' or 'inference', got {group!r}")
  keep = lambda name: (name in GENERATIVE) == (group == 'generative')
  return {'params': {name: p if keep(name) else jax.lax.stop_gradient(p)
                     for name, p in params['params'].items()}}


def refuse_transitions(model, method: str, reason: str) -> None:
  """Build-time refusal of a method that would leave the refinement transitions untrained."""
  if getattr(getattr(model, 'arch', None), 'num_transitions', 0):
    raise ValueError(f"{method} cannot train the parameter group 'transitions' (the "
                     f'{model.arch.num_transitions} refinement transitions): {reason}. Use '
                     f'num_transitions=0, or vae, iwae, miwae, piwae, ciwae, dvae, diwae or '
                     f'hvi_avo')


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
