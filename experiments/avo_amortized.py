r"""Amortized HVI with AVO on statically binarized MNIST (Huang et al. 2018, Sec. 5.4, Table 1a).

Four models with gated 2x300 MLPs and a 40-d latent: the VAE (T = 0), HVI
(T = 5, a = 0: the ELBO only) and HVI-AVO (T = 5, a = 0.2 and 0.5: each step is
an AVO step with probability a). Reported as in Table 1a: -ELBO on train, valid
and test, -log p(D) on valid and test (importance sampling, K = --eval_k), the
generalization gap L_tr - L_te and the variational gap log p(D_te) - L_te.

As run on an H100 (docs/avo.md; 120 epochs with early stopping on valid, ~15 min a model):
  python -m experiments.avo_amortized --workdir=runs/t1a --data_dir=../shared/data \
      --epochs=120 --eval_k=5000 --valid_k=500 --eval_every_epochs=10 --patience=5 --seed=0 \
      --transition_hidden=300
The paper trains to convergence with batch size, rate and warm-up tuned per model.

Every run is a resumable experiments.train workdir DIR/<model>; DIR/results.json
and DIR/table.md collect the table beside the paper's.
"""
import json
import os

from absl import app
from absl import flags
from absl import logging
import jax

from avi import avo
from avi import config as config_lib
from avi import data as data_lib
from avi import reporting
from avi import train
from avi import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.', required=True)
_DATASET = flags.DEFINE_string('dataset', 'binarized_mnist', 'Dataset name or .npz path.')
_DATA_DIR = flags.DEFINE_string('data_dir', '', 'Local data files.')
_MODELS = flags.DEFINE_list('models', ['vae', 'hvi', 'hvi_avo_0.2', 'hvi_avo_0.5'], 'Models.')
_T = flags.DEFINE_integer('num_transitions', 5, 'Transitions T of the HVI models.')
_HIDDEN = flags.DEFINE_integer('transition_hidden', config_lib.get_config().hvi.hidden,
                               'HVI: units of each transition (300 in the tables of docs/avo.md '
                               'before the width study).')
_DECODER_STEPS = flags.DEFINE_enum('decoder_steps', 'all', ['all', 'elbo'],
                                   'HVI-AVO: the decoder and q_0 learn in all steps or in ELBO '
                                   'steps only (config.hvi.decoder_steps).')
_TRANSITION_LR = flags.DEFINE_float('transition_lr_scale', 1.0, 'HVI and HVI-AVO: the '
                                    'transitions\' learning rate over --learning_rate '
                                    '(config.hvi.learning_rate_scale; the VAE has none).')
_EPOCHS = flags.DEFINE_integer('epochs', 10, 'Epochs.')
_BATCH = flags.DEFINE_integer('batch_size', 100, 'Batch size.')
_LR = flags.DEFINE_float('learning_rate', 1e-3, 'Adam learning rate.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed.')
_EVAL_K = flags.DEFINE_integer('eval_k', 5000, 'K of the importance-sampling log-likelihood.')
_VALID_K = flags.DEFINE_integer(
    'valid_k', 0, 'K for the train and valid splits (0: eval_k); the test split always uses '
    'eval_k.')
_WARMUP = flags.DEFINE_integer('warmup_epochs', 0, 'Epochs of deterministic warm-up '
                               '(beta from 0.01 to 1 on log p(z) - log q).')
_TRAIN_SUBSET = flags.DEFINE_integer('train_subset', 10000, 'Train points of L_tr.')
# 0.1 / 0.05 rather than config.hvi's 0.01 / 1e-3: +1.5 nats for HVI on MNIST (docs/avo.md).
_INIT_SCALE = flags.DEFINE_float('init_scale', 0.1, 'HVI: transition std at init.')
_MIN_SCALE = flags.DEFINE_float('min_scale', 0.05, 'HVI: floor on the transition std.')
_EVAL_EVERY = flags.DEFINE_integer('eval_every_epochs', 0, 'Periodic valid log p(x) (K = 100 '
                                   'on 1,000 points); 0: only at the end.')
_PATIENCE = flags.DEFINE_integer('patience', 0, 'Early stopping: periodic evaluations without a '
                                 'better valid log p(x); the best-on-valid params are scored. '
                                 '0: train all epochs.')

# Huang et al. (2018), Table 1a: -L_tr, -L_va, -log p(D_va), -L_te, -log p(D_te).
PAPER = {'vae': (84.69, 92.37, 87.49, 92.40, 87.50), 'hvi': (84.51, 92.37, 87.63, 92.48, 87.62),
         'hvi_avo_0.2': (86.15, 90.00, 86.06, 90.01, 86.06),
         'hvi_avo_0.5': (87.02, 90.22, 86.12, 90.26, 86.12)}
COLUMNS = ('-L_tr', '-L_va', '-log p(D_va)', '-L_te', '-log p(D_te)', 'gen gap', 'var gap')


def run_config(model: str):
  c = config_lib.get_config()
  c.dataset, c.data_dir, c.architecture = _DATASET.value, _DATA_DIR.value, 'avo'
  if model == 'vae':
    c.method, c.hvi.num_transitions = 'vae', 0
  elif model == 'hvi':
    c.method, c.hvi.num_transitions = 'vae', _T.value
  elif model.startswith('hvi_avo_'):
    c.method, c.hvi.num_transitions, c.hvi.avo_a = 'hvi_avo', _T.value, float(model.split('_')[-1])
    avo.check_fraction(c.hvi.avo_a, f'avo_a of {model} (the probability of an AVO step)')
  else:
    raise app.UsageError(f'unknown model {model!r}; use vae, hvi or hvi_avo_<a>')
  c.epochs, c.batch_size, c.learning_rate, c.seed = (_EPOCHS.value, _BATCH.value, _LR.value,
                                                     _SEED.value)
  c.eval.num_samples = _EVAL_K.value
  c.eval.train_subset = _TRAIN_SUBSET.value
  c.eval.iwae_ks = ()
  c.hvi.hidden, c.hvi.init_scale, c.hvi.min_scale = (_HIDDEN.value, _INIT_SCALE.value,
                                                     _MIN_SCALE.value)
  c.hvi.decoder_steps = _DECODER_STEPS.value
  if c.hvi.num_transitions:
    c.hvi.learning_rate_scale = _TRANSITION_LR.value
  c.eval_every_epochs, c.early_stopping.patience = _EVAL_EVERY.value, _PATIENCE.value
  c.checkpoint_every_seconds = 60.
  if _VALID_K.value:  # train and valid are scored once, with K = --valid_k
    c.eval.splits = ('test',)
  return c


def evaluate_train_and_valid(config, workdir: str, dataset) -> dict:
  """The train and valid splits with K = --valid_k (stored in workdir/train_valid.json)."""
  path = os.path.join(workdir, 'train_valid.json')
  other = config_lib.from_dict(config.to_dict())
  other.eval.num_samples, other.eval.splits = _VALID_K.value, ('train', 'valid')
  stored = workdir_lib.read_json(path) if os.path.exists(path) else None
  if stored is not None and stored['settings'] == workdir_lib.settings(other):
    return stored['evaluation']
  model, params, _ = train.restore_params(workdir, config, dataset)
  reports = reporting.evaluate_splits(model, params, dataset, other,
                                      jax.random.fold_in(jax.random.key(config.seed), 4),
                                      log=logging.info)
  evaluation = {split: r['summary'] for split, r in reports.items()}
  workdir_lib.write_json(path, {'settings': workdir_lib.settings(other),
                                'evaluation': evaluation})
  return evaluation


def row(evaluation: dict) -> list[float]:
  neg = {s: -evaluation[s]['elbo']['mean'] for s in ('train', 'valid', 'test')}
  nll = {s: -evaluation[s]['log_px']['mean'] for s in ('valid', 'test')}
  return [neg['train'], neg['valid'], nll['valid'], neg['test'], nll['test'],
          neg['test'] - neg['train'], neg['test'] - nll['test']]


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  configs = {m: run_config(m) for m in _MODELS.value}  # fails early on an unknown model
  dataset = data_lib.load(_DATASET.value, _DATA_DIR.value or None)
  for config in configs.values():
    config.warmup.steps = _WARMUP.value * (len(dataset.splits['train']) // config.batch_size)
  out = {'settings': {name: flags.FLAGS[name].value for name in (
      'dataset', 'models', 'num_transitions', 'transition_hidden', 'transition_lr_scale',
      'decoder_steps', 'epochs',
      'batch_size', 'learning_rate', 'seed', 'eval_k', 'valid_k', 'warmup_epochs', 'train_subset',
      'init_scale', 'min_scale', 'eval_every_epochs', 'patience')}, 'table': {}, 'paper': PAPER}
  lines = ['| model | ' + ' | '.join(COLUMNS) + ' |', '|---' * (len(COLUMNS) + 1) + '|']
  for model, config in configs.items():
    workdir = os.path.join(_WORKDIR.value, model)
    results = train.train_and_evaluate(config, workdir, dataset, log=logging.info)
    if _VALID_K.value:
      results['evaluation'].update(evaluate_train_and_valid(config, workdir, dataset))
    values = row(results['evaluation'])
    out['table'][model] = {'values': dict(zip(COLUMNS, values)),
                           'train_seconds': results['train_seconds'],
                           'early_stopping': results.get('early_stopping'),
                           'test_log_px_stderr': results['evaluation']['test']['log_px']['stderr']}
    paper = PAPER.get(model)
    cells = [f'{v:.2f}' + (f' [{paper[i]:.2f}]' if paper and i < 5 else '')
             for i, v in enumerate(values)]
    lines.append(f'| {model} | ' + ' | '.join(cells) + ' |')
    print(lines[-1], flush=True)
  with open(os.path.join(_WORKDIR.value, 'results.json'), 'w') as f:
    json.dump(out, f, indent=1)
  with open(os.path.join(_WORKDIR.value, 'table.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  app.run(main)
