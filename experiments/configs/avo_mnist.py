"""Amortized HVI-AVO on statically binarized MNIST at full scale (Huang et al. 2018,
Sec. 5.4, Table 1a): gated 2x300 MLPs, 40-d latent, T = 5 transitions, an AVO step with
probability a = 0.2, 1,000 epochs (a GPU job; README's CPU row used --config.epochs=5).
`experiments.avo_amortized` trains the VAE / HVI / HVI-AVO comparison."""
from avi import config as config_lib


def get_config():
  c = config_lib.get_config()
  c.method, c.num_samples = 'hvi_avo', 1
  c.dataset, c.data_dir = 'binarized_mnist', '../shared/data'
  c.architecture = 'avo'
  c.hvi.num_transitions, c.hvi.avo_a = 5, 0.2
  c.epochs, c.batch_size, c.learning_rate = 1000, 100, 1e-3
  c.eval.iwae_ks = ()
  return c
