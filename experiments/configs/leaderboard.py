"""The leaderboard's protocol and each entry's paper settings (`experiments.leaderboard`).

One protocol for every entry: the Burda architecture (2x200 tanh, 50-d latent), Adam 1e-3
(eps 1e-4), batch 100, K particles per data point in every training step, early stopping on
the valid log p(x) (K = 100 on 1,000 points, patience 5) with the best-on-valid params scored,
and the test log p(x) by importance sampling on the full test split. What a budget changes:
its K columns, epochs, the epochs between valid checks and the test K (`BUDGETS`).

`ENTRIES` maps a leaderboard entry to its method and its paper's settings. Particles are
counted per data point, so every entry draws K of them per step: the VAE-style ELBOs average
M = K samples (Burda et al.'s VAE baseline), MIWAE and PIWAE split them into M = 5 groups of
K / 5 (Rainforth et al. use M = K = 8 at 64), the others use K as their K.
"""
from avi import config as config_lib

# budget -> training K columns, {dataset: (most epochs, epochs between valid checks)} ('other'
# for datasets not named), test K, and {entry: most seeds} for entries too costly for all seeds.
BUDGETS = {
    'cpu': {'ks': (5,), 'epochs': {'binarized_mnist': (4, 1), 'caltech101_silhouettes': (40, 8),
                                   'other': (10, 2)},
            'eval_k': 1000,
            # At M = 5 its step costs 13x IWAE's (docs/leaderboard.md): one seed fits a 2-core CPU session.
            'max_seeds': {'hvi_avo': 1}},
    'full': {'ks': (5, 50), 'epochs': {'other': (1000, 10)}, 'eval_k': 5000, 'max_seeds': {}},
}

# entry -> (method, {dotted config field: value}); 'K' as a value is the column's K, and
# 'K/5' its fifth.
ENTRIES = {
    'iwae': ('iwae', {'k': 'K'}),
    'vae': ('vae', {'num_samples': 'K'}),
    'miwae': ('miwae', {'num_samples': 5, 'k': 'K/5'}),
    'piwae': ('piwae', {'num_samples': 5, 'k': 'K/5'}),
    'ciwae': ('ciwae', {'k': 'K', 'ciwae.beta': 0.5}),
    'iwae_stl': ('iwae_stl', {'k': 'K'}),
    'iwae_dreg': ('iwae_dreg', {'k': 'K'}),
    'rws': ('rws', {'k': 'K'}),
    # REM's paper setting (eq. 22); docs/rem.md measures the authors' unweighted variant too.
    'rem_v1': ('rem_v1', {'k': 'K', 'rem.eps': 1e-3, 'rem.covariance': 'weighted'}),
    'rem_v2': ('rem_v2', {'k': 'K', 'rem.eps': 1e-3, 'rem.covariance': 'weighted'}),
    # AIR: sigma and alpha as selected on Caltech's valid split (docs/air.md); WNI's H = 2 too.
    'dvae': ('dvae', {'num_samples': 'K', 'air.denoise_sigma': 0.3, 'air.denoise_alpha': 0.5}),
    'diwae': ('diwae', {'k': 'K', 'air.denoise_sigma': 0.3, 'air.denoise_alpha': 0.5}),
    'wni_vae': ('vae', {'num_samples': 'K', 'air.encoder_max_norm': 2.0}),
    # AVO: T = 5, a = 0.2 (Table 1a); start std 0.1 with a 0.05 floor (docs/avo.md); 300-unit
    # transitions, the width of the published table (the library's default is now 100).
    'hvi_avo': ('hvi_avo', {'num_samples': 'K', 'hvi.num_transitions': 5, 'hvi.avo_a': 0.2,
                            'hvi.init_scale': 0.1, 'hvi.min_scale': 0.05, 'hvi.hidden': 300}),
}


def get_config():
  """The protocol's shared fields; `experiments.leaderboard` sets method, K, dataset, epochs
  and seed per run."""
  c = config_lib.get_config()
  c.architecture, c.latent_dim = 'burda', 0
  c.batch_size, c.learning_rate, c.schedule, c.adam_eps = 100, 1e-3, 'constant', 1e-4
  c.early_stopping.patience = 5
  c.checkpoint_every_seconds = 60.0
  c.eval.splits = ('test',)  # the valid curve comes from the periodic checks
  c.eval.iwae_ks = (5,)
  return c
