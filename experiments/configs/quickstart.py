"""Quick start: IWAE-5 for 30 epochs on the embedded 1,000-image binarized-MNIST subset."""
from avi import config as config_lib


def get_config():
  return config_lib.get_config()
