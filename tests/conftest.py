import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


def pytest_addoption(parser):
  parser.addoption('--slow', action='store_true',
                   help='also run the tests marked slow (end-to-end binaries and notebooks)')


def pytest_collection_modifyitems(config, items):
  if config.getoption('--slow'):
    return
  skip = pytest.mark.skip(reason='end-to-end run: pass --slow (as .ci/run does)')
  for item in items:
    if 'slow' in item.keywords:
      item.add_marker(skip)
