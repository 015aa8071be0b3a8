r"""Where RWS's leaderboard deficit sits: in its model or in its encoder (docs/leaderboard.md).

For IWAE and RWS (seed 0, K = 5) of a finished `experiments.leaderboard` directory, on the
first N test points of each dataset: log p(x) by IW-SVI, which refines each point's proposal
and so scores the decoder alone, beside importance sampling from q(z | x) (K = 1,000),
which scores decoder and encoder together; and each loss's per-group gradient norms at
init and after training (mean over 20 draws on the first 100 training images).

  python -m experiments.rws_diagnosis runs/leaderboard_cpu 500 runs/rws_diagnosis.json
"""
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from avi import data as data_lib
from avi import iw_svi
from avi import methods
from avi import models
from avi import train
from avi import workdir as workdir_lib


def diagnose(workdir: str, method: str, num_points: int, num_draws: int = 20) -> dict:
  config = workdir_lib.saved_config(workdir)
  dataset = data_lib.load(config.dataset, config.data_dir or None)
  model, params, _ = train.restore_params(workdir, config, dataset)
  _, init = models.from_config(config, dataset.splits['train'])
  x = dataset.splits['test'][:num_points]
  out = iw_svi.log_likelihood(model, params, x, jax.random.key(0), amortized_num_samples=1000)
  _, scale, _ = model.encode(params, jnp.asarray(x, jnp.float32))
  loss = methods.build(method, model, config)
  batch = jnp.asarray(dataset.splits['train'][:100], jnp.float32)

  def grad_norms(p):
    norms = [model.group_norms(jax.grad(lambda q: loss(q, batch, jax.random.key(s))[0])(p))
             for s in range(num_draws)]
    return {g: float(np.mean([n[g] for n in norms])) for g in norms[0]}

  return {'iw_svi_log_px': float(out['log_px'].mean()),
          'is_from_q_log_px': float(out['amortized_log_px'].mean()),
          'elbo': float(out['elbo'].mean()), 'encoder_std_median': float(jnp.median(scale)),
          'grad_norm_init': grad_norms(init), 'grad_norm_trained': grad_norms(params)}


def main(board: str, num_points: int, path: str) -> None:
  results = {}
  for dataset in ('binarized_mnist', 'caltech101_silhouettes'):
    for method in ('iwae', 'rws'):
      r = results[f'{dataset}/{method}'] = diagnose(
          f'{board}/runs/{dataset}/k5/{method}/seed0', method, num_points)
      print(dataset, method, json.dumps(r), flush=True)
  with open(path, 'w') as f:
    json.dump(results, f, indent=1)


if __name__ == '__main__':
  main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
