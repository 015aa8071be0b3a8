"""REM v1 on statically binarized MNIST with the paper's settings (Dieng & Paisley 2019,
Sec. 4): the 'rem' architecture (2x200 tanh, 20-d latent), K = 1000, 200 epochs of batch
20 under the Burda schedule, seed 2019. A GPU job; `experiments.rem` runs the comparison."""
from avi import config as config_lib


def get_config():
  c = config_lib.get_config()
  c.method, c.k = 'rem_v1', 1000
  c.dataset, c.data_dir = 'binarized_mnist', '../shared/data'
  c.architecture = 'rem'
  c.rem.eps, c.rem.covariance = 1e-3, 'weighted'
  c.epochs, c.batch_size, c.learning_rate, c.schedule = 200, 20, 1e-3, 'burda'
  c.seed = 2019
  c.eval_every_epochs = 1
  return c
