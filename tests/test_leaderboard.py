"""The leaderboard's protocol (every method, K particles each) and its paired statistics."""
import numpy as np
import pytest

from avi import methods
from experiments import leaderboard_tables as leaderboard
from experiments.configs import leaderboard as protocol

CPU = protocol.BUDGETS['cpu']


def test_every_registered_method_has_an_entry():
  library = {m for m in methods.names() if not m.startswith('test_')}  # tests register some
  assert set(method for method, _ in protocol.ENTRIES.values()) == library


@pytest.mark.parametrize('entry', list(protocol.ENTRIES))
@pytest.mark.parametrize('k', [5, 50])
def test_every_entry_draws_k_particles_per_data_point(entry, k):
  config = leaderboard.run_config(entry, 'binarized_mnist', k, 2, CPU)
  assert (config.method, config.seed, config.architecture) == (
      protocol.ENTRIES[entry][0], 2, 'burda')
  uses_k = 'k' in protocol.ENTRIES[entry][1]  # the VAE-style entries average M = K samples
  assert config.num_samples * (config.k if uses_k else 1) == k
  assert config.epochs == 4 and config.eval_every_epochs == 1
  assert config.eval.num_samples == 1000 and config.early_stopping.patience == 5


def test_budget_overrides_and_bad_entries():
  config = leaderboard.run_config('iwae', 'my.npz', 5, 0, protocol.BUDGETS['full'], epochs=3,
                                  eval_k=50)
  assert (config.epochs, config.eval_every_epochs, config.eval.num_samples) == (3, 3, 50)
  with pytest.raises(ValueError, match="unknown leaderboard entry 'iwea'"):
    leaderboard.run_config('iwea', 'binarized_mnist', 5, 0, CPU)
  with pytest.raises(ValueError, match='K = 7 is not divisible into M = 5 groups'):
    leaderboard.run_config('miwae', 'binarized_mnist', 7, 0, CPU)


def _result(seed, log_px, stderr):
  test = {'log_px': {'mean': log_px, 'stderr': stderr}, 'elbo': {'mean': log_px - 5},
          'inference_gap': {'mean': 5.0}, 'active_units': 10, 'kl_to_prior': 20.0}
  return {'settings': {'method': 'vae', 'seed': seed}, 'evaluation': {'test': test},
          'train_seconds': 10.0, 'eval_seconds': 2.0, 'early_stopping': {'best_epoch': 4}}


def test_paired_difference_is_per_seed_then_over_seeds():
  rng = np.random.default_rng(0)
  reference = [rng.normal(-100, 5, 50) for _ in range(3)]
  shifts = [0.5, 1.0, 2.0]
  per_example = [r + s + rng.normal(0, 1, 50) for r, s in zip(reference, shifts)]
  results = [_result(s, float(np.mean(p)), 0.7) for s, p in enumerate(per_example)]
  row = leaderboard.summarize('vae', results, per_example, reference, 1.5)
  diffs = [np.mean(p) - np.mean(r) for p, r in zip(per_example, reference)]
  np.testing.assert_allclose(row['minus_iwae'][0], np.mean(diffs))
  np.testing.assert_allclose(row['minus_iwae'][1], np.std(diffs, ddof=1) / np.sqrt(3))
  np.testing.assert_allclose(row['log_px'][0], np.mean([np.mean(p) for p in per_example]))
  assert row['per_example_stderr'] == pytest.approx(0.7)
  assert row['step_cost_vs_iwae'] == 1.5 and row['best_epochs'] == [4, 4, 4]
  assert row['seeds'] == [0, 1, 2] and row['wall_seconds'] == 12.0


def test_seed_caps_name_entries_and_show_in_the_protocol():
  for budget in protocol.BUDGETS.values():
    assert set(budget['max_seeds']) <= set(protocol.ENTRIES)
  text = leaderboard.protocol_text('cpu', CPU, [0, 1, 2], 0, 0)
  assert 'hvi_avo: the first 1 only' in text and 'K = 1000 on the full test split' in text
  assert leaderboard.fmt((-100.0, float('nan'))) == '-100.00'
