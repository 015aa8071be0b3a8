"""Notebooks execute top to bottom at reduced size (parameters overridden in their first cells)."""
import os

import nbformat
import pytest

nbclient = pytest.importorskip('nbclient')
pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def execute(name, overrides, tmp_path):
  nb = nbformat.read(os.path.join(ROOT, 'notebooks', name), as_version=4)
  params = next(c for c in nb.cells if c.source.startswith('# Parameters'))
  params.source += '\n' + '\n'.join(f'{k} = {v!r}' for k, v in overrides.items())
  nbclient.NotebookClient(nb, timeout=600, kernel_name='python3',
                          resources={'metadata': {'path': str(tmp_path)}}).execute()
  return nb


def test_quickstart_notebook(tmp_path):
  execute('quickstart.ipynb', {'EPOCHS': 2, 'EVAL_K': 100, 'WORKDIR': str(tmp_path / 'run')},
          tmp_path)


def test_snr_notebook(tmp_path):
  execute('snr_analysis.ipynb', {'DIM': 4, 'NUM_DATA': 32, 'NUM_ESTIMATES': 400,
                                 'BUDGETS': [1, 10, 100]}, tmp_path)


def test_rem_notebook(tmp_path):
  execute('rem.ipynb', {'EPOCHS': 1, 'K': 5, 'EVAL_K': 50, 'WORKDIR': str(tmp_path / 'runs')},
          tmp_path)


def test_avo_notebook(tmp_path):
  execute('avo.ipynb', {'STEPS': 200, 'NUM_SEEDS': 2, 'NUM_SAMPLES': 300, 'KL_INNER': 50},
          tmp_path)


def test_air_notebook(tmp_path):
  execute('air.ipynb', {'EPOCHS': 1, 'SIGMAS': [0.0, 0.5], 'KS': [1, 2], 'EVAL_K': 20,
                        'WORKDIR': str(tmp_path / 'runs')}, tmp_path)
