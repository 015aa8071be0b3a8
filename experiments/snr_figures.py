"""Figures 2-7 of Rainforth et al. (2018) from the results of `experiments.snr`."""
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

_LABEL = {'iwae': 'IWAE (M=1, vary K)', 'vae': 'VAE (K=1, vary M)', 'dreg': 'DReG (M=1, vary K)',
          'stl': 'STL (M=1, vary K)'}


def _reference_lines(ax, budgets, values):
  """Dashed +-1/2 slope guides through the first point, as in the paper."""
  b = np.asarray(budgets, float)
  for slope in (0.5, -0.5):
    ax.plot(b, values * (b / b[0])**slope, 'k--', lw=0.8, alpha=0.6)


def figure2(histograms, budgets, path):
  names = [n for n in ('iwae', 'vae') if f'{n}_b0' in histograms]
  fig, axes = plt.subplots(2, len(names), figsize=(5 * len(names), 7), squeeze=False)
  for j, name in enumerate(names):
    for i, (leaf, title) in enumerate((('b0', 'inference network, b_1'),
                                       ('mu0', 'generative network, mu_1'))):
      ax = axes[i, j]
      for budget, draws in zip(budgets, histograms[f'{name}_{leaf}']):
        ax.hist(draws, bins=60, histtype='step', density=True, label=f'{budget}')
      ax.set_title(f'{_LABEL[name]}: {title}')
      ax.legend(title='K' if name != 'vae' else 'M', fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _convergence(results, budgets, path, field, ylabel, parts):
  fig, axes = plt.subplots(1, len(parts), figsize=(5.5 * len(parts), 4), squeeze=False)
  for ax, (part, title) in zip(axes[0], parts):
    for name, e in results['estimators'].items():
      values = np.asarray([field(cell, part) for cell in _cells(e)])
      ax.loglog(budgets, values, 'o-', label=_LABEL[name])
      if name == 'iwae':
        _reference_lines(ax, budgets, values[0])
    ax.set_xlabel('budget MK')
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _cells(e):
  n = len(e['budget'])
  return [{k: v[i] for k, v in e.items() if isinstance(v, list) and len(v) == n} for i in range(n)]


def figure7(optimization, path):
  fig, axes = plt.subplots(1, 3, figsize=(16, 4))
  for pair, runs in optimization.items():
    steps = np.asarray(runs[0]['step'])
    for ax, key in zip(axes, ('bound', 'dist_theta', 'dist_phi')):
      values = np.asarray([r[key] for r in runs])
      mean, std = values.mean(0), values.std(0)
      ax.plot(steps, mean, label=f'M x K = {pair}')
      ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
  for ax, title in zip(axes, ('ELBO_IS estimate (its own K)', '||mu - mu*||',
                              '||(A, b) - (A*, b*)||')):
    ax.set_title(title)
    ax.set_xlabel('Adam step')
    ax.legend(fontsize=7)
  axes[1].set_yscale('log')
  axes[2].set_yscale('log')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_all(results, histograms, budgets, workdir):
  figure2(histograms, budgets, os.path.join(workdir, 'figure2.png'))
  _convergence(results, budgets, os.path.join(workdir, 'figure3.png'),
               lambda c, leaf: np.median(c[f'snr_{leaf}']), 'median SNR over coordinates',
               [('b', 'inference network (b)'), ('mu', 'generative network (mu)')])
  _convergence(results, budgets, os.path.join(workdir, 'figure4.png'),
               lambda c, _: c['rmse_mu'], 'RMSE to grad_mu log p(x)',
               [('mu', 'generative network (mu)')])
  _convergence(results, budgets, os.path.join(workdir, 'figure5.png'),
               lambda c, part: c['dsnr'][part]['dsnr'], 'DSNR (own mean direction)',
               [('phi', 'inference network'), ('theta', 'generative network')])
  _convergence(results, budgets, os.path.join(workdir, 'figure6.png'),
               lambda c, part: c['dsnr_ref'][part]['dsnr'], 'DSNR against E[Delta_{1,K_max}]',
               [('phi', 'inference network'), ('theta', 'generative network')])
