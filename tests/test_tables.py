"""The table and selection logic of the reproduction binaries, on synthetic summaries with
known answers (no training)."""
import numpy as np
import pytest

from experiments import air_tables
from experiments import avo_amortized


def _summary(log_px, bound, bound_name='elbo', nonfinite=()):
  return {'log_px': {'mean': log_px}, bound_name: {'mean': bound},
          'nonfinite_examples': list(nonfinite)}


def test_air_selection_is_the_valid_argmax_not_the_test_one():
  sweep = {'base': {'0': {'valid': -100.0, 'test': -99.0}},
           'dvae_a1.0': {'0.1': {'valid': -98.0, 'test': -90.0},
                         '0.3': {'valid': -97.0, 'test': -95.0},
                         '0.9': {'valid': -99.0, 'test': -80.0}},
           'wni': {'0.5': {'valid': -96.0, 'test': -99.0}, '2': {'valid': -97.0, 'test': -85.0}}}
  selection = air_tables.select(sweep)
  assert selection == {'base': {'value': 0.0, 'setting': '—'},
                       'dvae_a1.0': {'value': 0.3, 'setting': 'σ = 0.3'},
                       'wni': {'value': 0.5, 'setting': 'H = 0.5'}}


@pytest.mark.parametrize('k, bound_name', [(1, 'elbo'), (8, 'iwae8')])
def test_air_table_row_is_the_mean_and_standard_error_over_seeds(k, bound_name):
  # Seeds with log p(x) -100, -102, -104 and bounds 10, 12, 14 nats below.
  summaries = [_summary(-100.0, -110.0, bound_name, nonfinite=[3]),
               _summary(-102.0, -114.0, bound_name),
               _summary(-104.0, -118.0, bound_name, nonfinite=[1, 7])]
  row = air_tables.table_row(summaries, k)
  np.testing.assert_allclose(row['neg_log_px'], [102.0, 2.0 / np.sqrt(3)])
  np.testing.assert_allclose(row['inference_gap'], [12.0, 2.0 / np.sqrt(3)])
  np.testing.assert_allclose(row['neg_bound'], [114.0, 4.0 / np.sqrt(3)])
  assert row['nonfinite_examples'] == 3
  single = air_tables.table_row(summaries[:1], k)
  assert single['neg_log_px'][0] == 100.0 and np.isnan(single['neg_log_px'][1])


def test_air_markdown_puts_the_paper_beside_ours():
  row = air_tables.table_row([_summary(-130.0, -150.0), _summary(-132.0, -152.0)], 1)
  md = air_tables.markdown_tables({'1': {'dvae_a1.0': row}},
                                  {'1': {'dvae_a1.0': {'setting': 'σ = 0.3'}}},
                                  'caltech101_silhouettes')
  assert '| DVAE (α = 1.0) | σ = 0.3 | 131.00 ± 1.00 [108.66] | 20.00 ± 0.00 [23.94] |' in md
  single = air_tables.table_row([_summary(-130.0, -150.0)], 1)  # no SE over one seed
  md = air_tables.markdown_tables({'1': {'dvae_a1.0': single}},
                                  {'1': {'dvae_a1.0': {'setting': 'σ = 0.3'}}},
                                  'caltech101_silhouettes')
  assert '| DVAE (α = 1.0) | σ = 0.3 | 130.00 [108.66] | 20.00 [23.94] |' in md


def test_air_markdown_names_the_seeds_of_a_row_with_fewer():
  three = {**air_tables.table_row([_summary(-130.0, -150.0)] * 3, 1), 'seeds': [0, 1, 2]}
  one = {**air_tables.table_row([_summary(-130.0, -150.0)], 1), 'seeds': [0]}
  md = air_tables.markdown_tables({'1': {'base': three, 'dvae_a1.0': one}},
                                  {'1': {'base': {'setting': '—'},
                                         'dvae_a1.0': {'setting': 'σ = 0.3'}}},
                                  'caltech101_silhouettes')
  assert '| VAE | — | 130.00 ± 0.00' in md and '| DVAE (α = 1.0) | σ = 0.3 (seeds 0) |' in md


def test_air_figures_leave_out_what_the_sweep_lacks(tmp_path):
  point = {'valid': -100.0, 'test': -100.0}
  sweep = {'1': {'base': {'0': point}, 'wni': {'2': point, '8': point}},
           '8': {'base': {'0': point}, 'dvae_a0.5': {'0.9': point}},
           '64': {'wni': {'2': point}}}  # no baseline: not in Figure 2
  air_tables.sweep_figures(sweep, str(tmp_path))
  assert (tmp_path / 'figure1.png').exists() and (tmp_path / 'figure2.png').exists()
  air_tables.sweep_figures({'64': sweep['64']}, str(tmp_path / 'none'))  # nothing to plot
  assert not (tmp_path / 'none').exists()


def test_air_gain_is_paired_on_the_test_points():
  base = {'log_px': np.array([-100.0, -90.0, -80.0, -70.0]), 'nonfinite': np.zeros(4, bool)}
  model = {'log_px': base['log_px'] + [1.0, 2.0, 3.0, np.nan],
           'nonfinite': np.array([False, False, False, True])}
  # One seed: the SE is over the finite test points.
  np.testing.assert_allclose(air_tables.paired_gain([model], [base]), [2.0, 1.0 / np.sqrt(3)])
  shifted = {**model, 'log_px': model['log_px'] + 2.0}  # per-seed means 2 and 4
  np.testing.assert_allclose(air_tables.paired_gain([model, shifted], [base, base]), [3.0, 1.0])
  row = {**air_tables.table_row([_summary(-130.0, -150.0), _summary(-132.0, -152.0)], 1),
         'gain_over_base': [0.5, 0.25]}
  md = air_tables.markdown_tables({'1': {'dvae_a1.0': row}},
                                  {'1': {'dvae_a1.0': {'setting': 'σ = 0.3'}}},
                                  'caltech101_silhouettes')
  assert '[132.60] | +0.50 ± 0.25 |' in md and 'gain in ln p(x) over VAE' in md
  md = air_tables.markdown_tables({'1': {'dvae_a1.0': {**row, 'gain_over_compare': [1.0, 0.5]}}},
                                  {'1': {'dvae_a1.0': {'setting': 'σ = 0.3'}}},
                                  'caltech101_silhouettes', 'runs/other')
  assert '| +0.50 ± 0.25 | +1.00 ± 0.50 |' in md and 'same model in runs/other |' in md


def test_avo_table_row_columns():
  evaluation = {s: {'elbo': {'mean': e}, 'log_px': {'mean': p}} for s, e, p in (
      ('train', -84.0, -80.0), ('valid', -92.0, -87.0), ('test', -93.0, -88.0))}
  # -L_tr, -L_va, -log p(D_va), -L_te, -log p(D_te), generalization gap, variational gap
  assert avo_amortized.row(evaluation) == [84.0, 92.0, 87.0, 93.0, 88.0, 9.0, 5.0]
