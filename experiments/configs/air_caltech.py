"""The denoising VAE of our Caltech 101 Silhouettes table (Shu et al. 2018, Table 1): noise
on the encoder input only, sigma = 0.3 (the valid-set choice), alpha = 1, 200 epochs of
Adam 1e-3, batch 100, Burda MLPs. `experiments.air` runs the whole sweep and tables."""
from avi import config as config_lib


def get_config():
  c = config_lib.get_config()
  c.method, c.num_samples = 'dvae', 1
  c.dataset, c.data_dir = 'caltech101_silhouettes', '../shared/data'
  c.architecture = 'burda'
  c.air.denoise_sigma, c.air.denoise_alpha = 0.3, 1.0
  c.epochs, c.batch_size, c.learning_rate = 200, 100, 1e-3
  c.eval.splits = ('valid', 'test')
  return c
