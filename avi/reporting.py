"""Evaluation of a trained run's splits, and its results table.

Each split is evaluated with `evaluation.evaluate_model` on `eval_data`: the
train split cut to a subset, and dynamically binarized datasets as one fixed
Bernoulli draw, so every method is scored on the same binary data.
"""
import time
from typing import Callable

import jax
import ml_collections
import numpy as np

from avi import data as data_lib
from avi import evaluation
from avi import iw_svi


def eval_data(dataset: data_lib.Dataset, split: str, config) -> np.ndarray:
  """The evaluation array of a split: `train` cut to `config.eval.train_subset` points;
  dynamic datasets as one fixed Bernoulli draw of the images (seeded by `config.seed`)."""
  x = dataset.splits[split]
  if split == 'train':
    x = x[:config.eval.train_subset]
  if dataset.binarization == data_lib.DYNAMIC:
    x = (np.random.default_rng([config.seed, 2**31 - 1]).random(x.shape) < x).astype(np.float32)
  return x


def evaluate_splits(model, params, dataset: data_lib.Dataset, config, key: jax.Array,
                    sharding=None, log: Callable[[str], None] = lambda line: None,
                    ) -> dict[str, dict]:
  """`evaluation.evaluate_model` on each of `config.eval.splits` the dataset has.

  Split s uses key fold_in(key, index of s in data.SPLITS); `log` gets a line per split.
  """
  reports = {}
  for split in config.eval.splits:
    if split not in dataset.splits:
      continue
    x, t0 = eval_data(dataset, split, config), time.time()
    reports[split] = evaluation.evaluate_model(
        model, params, x, jax.random.fold_in(key, data_lib.SPLITS.index(split)),
        config.eval.num_samples, config.eval.batch_size, config.eval.chunk_size,
        config.eval.iwae_ks, sharding)
    s = reports[split]['summary']['log_px']
    log(f'evaluated {split}: {len(x)} points, K={config.eval.num_samples}, log p(x) '
        f'{s["mean"]:.2f} ± {s["stderr"]:.2f} ({time.time() - t0:.1f} s)')
  return reports


def periodic_eval(model, params, dataset: data_lib.Dataset, config, epoch: int,
                  ) -> dict[str, float]:
  """log p(x) and KL to the prior of every split of `config.eval.splits`, and of valid under
  early stopping, on a subset with few particles (`config.eval.periodic_*`), for the epoch's
  history; with `early_stopping.estimator='iw_svi'` also valid's IW-SVI log p(x)
  (`early_stopping.iw_svi`)."""
  periodic = ml_collections.ConfigDict(config.to_dict())
  if config.early_stopping.patience:
    periodic.eval.splits = tuple(dict.fromkeys((*config.eval.splits, 'valid')))
  periodic.eval.num_samples = config.eval.periodic_num_samples
  periodic.eval.chunk_size = min(config.eval.chunk_size, config.eval.periodic_num_samples)
  periodic.eval.train_subset = config.eval.periodic_num_points
  subset = data_lib.Dataset(dataset.name, dataset.binarization, {
      s: x[:config.eval.periodic_num_points] for s, x in dataset.splits.items()}, dataset.source)
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), 3), epoch)
  out = {}
  for split, report in evaluate_splits(model, params, subset, periodic, key).items():
    out[f'{split}_log_px'] = report['summary']['log_px']['mean']
    out[f'{split}_kl_to_prior'] = report['summary']['kl_to_prior']
  if config.early_stopping.patience and config.early_stopping.estimator == 'iw_svi':
    s = config.early_stopping.iw_svi
    x = eval_data(dataset, 'valid', config)[:s.num_points]
    estimates = iw_svi.log_likelihood(
        model, params, x, jax.random.fold_in(jax.random.key(config.seed), 4), s.steps, s.k,
        s.learning_rate, s.num_samples, config.eval.batch_size,
        min(config.eval.chunk_size, s.num_samples), amortized_num_samples=1)
    # Points whose refinement diverged are left out (`iw_svi.summarize`), and counted.
    summary = iw_svi.summarize(estimates)
    out['valid_iw_svi_log_px'] = summary['log_px']['mean']
    out['valid_iw_svi_nonfinite'] = len(summary['nonfinite_examples'])
  return out


def results_table(results: dict) -> str:
  """A plain-text table of the final evaluation in `results` (as written to results.json)."""
  ks = [k for k in next(iter(results['evaluation'].values())) if k.startswith('iwae')]
  head = ['split', 'N', 'log p(x)', 'ELBO', *[f'L_{k[4:]}' for k in ks], 'gap', 'KL', 'AU']
  rows = [head]
  for split, s in results['evaluation'].items():
    rows.append([split, str(s['log_px']['num']),
                 f'{s["log_px"]["mean"]:.2f} ± {s["log_px"]["stderr"]:.2f}',
                 f'{s["elbo"]["mean"]:.2f}', *[f'{s[k]["mean"]:.2f}' for k in ks],
                 f'{s["inference_gap"]["mean"]:.2f}', f'{s["kl_to_prior"]:.2f}',
                 f'{s["active_units"]}/{s["latent_dim"]}'])
  widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
  lines = ['  '.join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
  d, settings = results['dataset'], results['settings']
  lines.insert(0, f'{d["name"]} ({d["binarization"]} binarization, {d["source"]}), '
               f'method={settings["method"]}, K_eval={settings["eval"]["num_samples"]}')
  if results.get('grad_norms'):
    lines.append('gradient norms (last epoch): ' + ', '.join(
        f'{g} {v:.3g}' for g, v in results['grad_norms'].items()))
  return '\n'.join(lines)
