"""Training objectives, registered by name.

`build(name, model, config)` returns a pure `loss_fn(params, batch, rng, step=0) ->
(loss, metrics)` for a `avi.models.LatentVariableModel`: `batch` is `[B, P]`, `step`
the optimizer step (for schedules such as the warm-up), `loss` a scalar to minimize,
`metrics` a dict of scalars. The training loop only ever sees this function, so a new
method is a new registered builder and nothing else.

Every method has one shape: a `terms_fn(params, batch, rng, step) -> Terms` giving the
bound it reports and, when its networks learn from different objectives (RWS, REM,
STL, DReG, PIWAE), one loss per parameter group or role. `route` then
applies the stop-gradients: each loss trains exactly the groups it names, and a
method whose losses leave some group of the model untrained fails at build time,
naming the group.
"""
import functools
from typing import Any, Callable, Mapping, NamedTuple, Optional, Protocol, Sequence

import jax
import jax.numpy as jnp

from avi import avo
from avi import models

LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


class Terms(NamedTuple):
  """What a method computes on a batch.

  objective `[B]`: the bound it maximizes (reported). losses: None when -objective
  trains every group; else {selector: `[B]` loss}, selector a group name of the
  model, a role (`models.GENERATIVE`, `models.INFERENCE`) or a tuple of those.
  metrics: scalars.
  """
  objective: jax.Array
  losses: Optional[Mapping[str, jax.Array]] = None
  metrics: Mapping[str, jax.Array] = {}


TermsFn = Callable[[Any, jax.Array, jax.Array, jax.Array], Terms]


def route(model: models.LatentVariableModel, terms_fn: TermsFn,
          selectors: Optional[Sequence[str]] = None, method: str = 'the method') -> LossFn:
  """The loss function of a method.

  selectors None: loss = -mean(objective), one pass. Otherwise `terms_fn` runs once
  per selector on `model.trainable(params, selector)`, and that pass contributes
  its own loss only, so each group gets the gradient of exactly one loss.
  """
  if selectors is not None:
    model.check_routes(selectors, method)

  def loss_fn(params, batch, rng, step=0):
    if selectors is None:
      terms = terms_fn(params, batch, rng, step)
      loss = -jnp.mean(terms.objective)
    else:
      passes = [terms_fn(model.trainable(params, s), batch, rng, step) for s in selectors]
      terms = passes[0]
      loss = sum(jnp.mean(t.losses[s]) for s, t in zip(selectors, passes))
    return loss, {**terms.metrics}

  return loss_fn


def cond_loss(pred: jax.Array, true_loss: LossFn, false_loss: LossFn, params,
              batch: jax.Array, rng: jax.Array, step) -> tuple[jax.Array, dict[str, jax.Array]]:
  """`lax.cond(pred, true_loss, false_loss, params, batch, rng, step)` whose gradient is
  taken inside the chosen branch.

  Differentiating a plain `lax.cond` keeps the residuals of both branches, zeros for
  the branch not taken (jax-ml/jax#8239), and writes and reads them on every step: it
  made hvi_avo's AVO step 1.7-2x slower (BENCHMARKS.md). Here each branch computes its
  own value and gradient in the forward pass and the backward pass scales that gradient.
  """
  return _cond(true_loss, false_loss, pred, params, batch, rng, step)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _cond(true_loss, false_loss, pred, params, batch, rng, step):
  return jax.lax.cond(pred, true_loss, false_loss, params, batch, rng, step)


def _cond_forward(true_loss, false_loss, pred, params, batch, rng, step):
  grad = lambda loss: jax.value_and_grad(loss, has_aux=True)
  out, grads = jax.lax.cond(pred, grad(true_loss), grad(false_loss), params, batch, rng, step)
  return out, grads


def _cond_backward(true_loss, false_loss, grads, cotangent):
  del true_loss, false_loss
  loss_cotangent, _ = cotangent  # the metrics are outputs, not losses: no gradient
  return None, jax.tree.map(lambda g: loss_cotangent * g, grads), None, None, None


_cond.defvjp(_cond_forward, _cond_backward)


class Builder(Protocol):

  def __call__(self, model: Any, config: Any) -> LossFn:
    ...


_REGISTRY: dict[str, Builder] = {}
_WARMUP: set[str] = set()  # methods that implement `config.warmup`


def refuse_transitions(model, method: str, reason: str) -> None:
  """Build-time refusal of a method that cannot train refinement transitions."""
  if model.num_transitions:
    raise ValueError(f"{method} cannot train the parameter groups 'forward' and 'backward' (the "
                     f'{model.num_transitions} refinement transitions): {reason}. Use '
                     f'num_transitions=0, or vae, iwae, miwae, piwae, ciwae, dvae, diwae or '
                     f'hvi_avo')


def check_num_samples(value: int, name: str) -> int:
  if int(value) != value or value < 1:
    raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
  return int(value)


def warmup_beta(config) -> Callable[[jax.Array], jax.Array | float]:
  """step -> beta of the deterministic warm-up (Huang et al. 2018, eq. 2): beta rises
  linearly from `config.warmup.beta0` to 1 over `config.warmup.steps` steps, then stays 1
  (1.0 throughout when steps = 0 or the config has no `warmup`)."""
  warmup = config.get('warmup', None)
  if warmup is None or not warmup.steps:
    return lambda step: 1.0
  if int(warmup.steps) != warmup.steps or warmup.steps < 0:
    raise ValueError(f'warmup.steps must be an integer >= 0, got {warmup.steps!r}')
  avo.check_fraction(warmup.beta0, 'warmup.beta0')
  return avo.beta_schedule(1.0, int(warmup.steps), float(warmup.beta0))


def beta_metric(beta) -> dict[str, jax.Array]:
  """{'beta': beta} while a warm-up is configured, else nothing to log."""
  return {} if isinstance(beta, float) else {'beta': beta}


def register(name: str, warmup: bool = False) -> Callable[[Builder], Builder]:
  """Decorator: `@register('iwae') def make_iwae(model, config): ...`. `warmup`: the
  method reads `warmup_beta(config)` (others refuse a config with a warm-up)."""

  def wrap(builder: Builder) -> Builder:
    if name in _REGISTRY:
      raise ValueError(f'method {name!r} is already registered')
    _REGISTRY[name] = builder
    if warmup:
      _WARMUP.add(name)
    return builder

  return wrap


def names() -> list[str]:
  return sorted(_REGISTRY)


def build(name: str, model: Any, config: Any) -> LossFn:
  """The loss function of method `name` for `model`, configured by `config`."""
  if name not in _REGISTRY:
    raise ValueError(f'unknown method {name!r}; registered methods: {", ".join(names())}')
  if name not in _WARMUP and config.get('warmup', {}).get('steps', 0):
    raise ValueError(f'{name} has no warm-up (warmup.steps = {config.warmup.steps}); it is '
                     f'defined for {", ".join(sorted(_WARMUP))}')
  return _REGISTRY[name](model, config)


# Importing the modules registers their methods.
from avi.methods import air  # noqa: E402,F401
from avi.methods import hvi_avo  # noqa: E402,F401
from avi.methods import rem  # noqa: E402,F401
from avi.methods import tighter_bounds  # noqa: E402,F401
from avi.methods import vae_iwae  # noqa: E402,F401
