import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
# The suite compiles hundreds of tiny programs: skip LLVM's optimization passes, which cost
# more than the programs' run time (about 30% of the suite's wall time on 2 cores). Set before
# any test initializes a JAX backend; subprocesses inherit it.
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                           + ' --xla_backend_optimization_level=0').strip()


def pytest_addoption(parser):
  parser.addoption('--slow', action='store_true',
                   help='also run the tests marked slow (end-to-end runs of the binaries and '
                   'notebooks, multi-device and small-scale reproductions)')


def pytest_collection_modifyitems(config, items):
  if config.getoption('--slow'):
    return
  skip = pytest.mark.skip(reason='slow: pass --slow (as .ci/run does)')
  for item in items:
    if 'slow' in item.keywords:
      item.add_marker(skip)
