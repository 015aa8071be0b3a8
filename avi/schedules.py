"""Learning-rate schedules as optax schedules, indexed by optimizer step."""
import optax


def burda_schedule(steps_per_epoch: int, base_lr: float = 1e-3, num_stages: int = 8,
                   ) -> optax.Schedule:
  """Burda et al. (2016), Sec. 5: stage i = 0..7 lasts 3^i epochs at lr base * 10^(-i/7).

  3,280 epochs in all; after the last stage the final rate is kept.
  """
  boundaries, epoch = {}, 0
  for i in range(num_stages - 1):
    epoch += 3**i
    boundaries[epoch * steps_per_epoch] = 10.0**(-1.0 / 7.0)
  return optax.piecewise_constant_schedule(base_lr, boundaries)


def burda_num_epochs(num_stages: int = 8) -> int:
  return sum(3**i for i in range(num_stages))


def make_schedule(name: str, learning_rate: float, steps_per_epoch: int,
                  total_steps: int) -> optax.Schedule:
  """`constant`, `cosine` (decay to 0 over the run) or `burda`."""
  if name == 'constant':
    return optax.constant_schedule(learning_rate)
  if name == 'cosine':
    return optax.cosine_decay_schedule(learning_rate, max(total_steps, 1))
  if name == 'burda':
    return burda_schedule(steps_per_epoch, learning_rate)
  raise ValueError(f'unknown schedule {name!r}; use constant, cosine or burda')
