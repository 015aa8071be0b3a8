"""IWAE-5 on statically binarized MNIST (Burda et al. 2016, one stochastic layer), the
setting of README's IWAE-5 result: 10 epochs of Adam 1e-3, batch 100."""
from avi import config as config_lib


def get_config():
  c = config_lib.get_config()
  c.method, c.k = 'iwae', 5
  c.dataset, c.data_dir = 'binarized_mnist', '../shared/data'
  c.architecture = 'burda'
  c.epochs, c.batch_size, c.learning_rate = 10, 100, 1e-3
  return c
