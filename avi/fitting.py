"""Adam inside `lax.scan`: the loop of the small fits (toy energies, the noise model, the
Gaussian model of the SNR study), compiled as one program."""
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax


def fit_adam(loss_fn: Callable[[Any, jax.Array], jax.Array], params, steps: int,
             learning_rate: float, trace: Callable[[Any, jax.Array], Any] = lambda p, loss: loss):
  """`steps` Adam steps on `loss_fn(params, t)` (t the step index, e.g. for fold_in keys).

  Returns the final params and `trace(params after step t, loss at step t)` stacked over
  steps (by default the losses, `[steps]`).
  """
  tx = optax.adam(learning_rate)

  def step(carry, t):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(params, t)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (params, opt_state), trace(params, loss)

  (params, _), traced = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(steps))
  return params, traced
