"""Datasets as `[N, P]` float32 arrays in [0, 1], with their binarization.

Sources, by dataset name:
- `embedded`: a 7,000-image subset of static binarized MNIST shipped in the package.
- `binarized_mnist` (static) and `mnist` (dynamic): tensorflow-datasets
  (`tfds.data_source`, no TensorFlow needed), or a local `.npz` in `data_dir`.
- `caltech101_silhouettes` (static): `caltech101_silhouettes_28.npz` or Marlin's
  `caltech101_silhouettes_28_split1.mat` in `data_dir`.
- `omniglot` (dynamic): Burda et al.'s `chardata.mat` in `data_dir`.
- any path to a `.npz` with `train` (and optionally `valid`, `test`) arrays.

Static data is binarized once and must be exactly {0, 1}; dynamic data holds
grey levels in [0, 1] and is resampled as Bernoulli(x) at every training step.
"""
import dataclasses
import os
import shutil
import socket
from typing import Optional

import importlib_resources
import numpy as np

STATIC, DYNAMIC = 'static', 'dynamic'
SPLITS = ('train', 'valid', 'test')
IMAGE_SIZE = 784

_NPZ_FILES = {
    'binarized_mnist': 'binarized_mnist.npz',
    'mnist': 'mnist.npz',
    'caltech101_silhouettes': 'caltech101_silhouettes_28.npz',
}
_BINARIZATION = {
    'embedded': STATIC, 'binarized_mnist': STATIC, 'caltech101_silhouettes': STATIC,
    'mnist': DYNAMIC, 'omniglot': DYNAMIC,
}
# Dataset sizes without a published validation split take it from the end of train.
_VALID_FROM_TRAIN = {'mnist': 10_000, 'omniglot': 1_345}


@dataclasses.dataclass
class Dataset:
  name: str
  binarization: str  # STATIC or DYNAMIC
  splits: dict[str, np.ndarray]  # split name -> float32 [N, P]
  source: str  # where the arrays came from, for results files

  @property
  def data_dim(self) -> int:
    return self.splits['train'].shape[1]


def names() -> list[str]:
  return sorted(_BINARIZATION)


def default_data_dir() -> Optional[str]:
  return os.environ.get('AVI_DATA_DIR')


def load(name_or_path: str, data_dir: Optional[str] = None) -> Dataset:
  """Loads a dataset by name or `.npz` path; validates every split. See the module doc."""
  data_dir = data_dir or default_data_dir()
  if name_or_path.endswith('.npz'):
    return _from_npz_path(name_or_path)
  if name_or_path not in _BINARIZATION:
    raise ValueError(f'unknown dataset {name_or_path!r}; known datasets: {", ".join(names())}, '
                     'or a path to a .npz file')
  name = name_or_path
  if name == 'embedded':
    return _embedded()
  if name == 'omniglot':
    return _omniglot(data_dir)
  local = os.path.join(data_dir, _NPZ_FILES[name]) if data_dir else None
  if local and os.path.exists(local):
    return _finish(name, _read_npz(local), _BINARIZATION[name], local)
  if name == 'caltech101_silhouettes':
    return _caltech_mat(data_dir)
  return _from_tfds(name, data_dir)


def validate(x: np.ndarray, binarization: str, what: str) -> np.ndarray:
  """Checks shape `[N, P]`, finiteness and range; returns float32. Raises ValueError."""
  x = np.asarray(x)
  if x.ndim == 3:  # [N, 28, 28] images
    x = x.reshape(len(x), -1)
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(f'{what}: expected a non-empty [N, P] array, got shape {x.shape}')
  x = x.astype(np.float32)
  if not np.all(np.isfinite(x)):
    raise ValueError(f'{what}: contains NaN or inf')
  if x.min() < 0 or x.max() > 1:
    raise ValueError(f'{what}: values must lie in [0, 1] for a Bernoulli decoder, '
                     f'found [{x.min()}, {x.max()}]')
  if binarization == STATIC and not np.all((x == 0) | (x == 1)):
    raise ValueError(f'{what}: static binarization needs data in {{0, 1}}, found non-binary '
                     'values; use dynamic binarization for grey levels')
  return x


def _finish(name, raw: dict[str, np.ndarray], binarization: str, source: str) -> Dataset:
  raw = dict(raw)
  if 'train' not in raw:
    raise ValueError(f'{source}: no "train" array (found {sorted(raw)})')
  if raw['train'].dtype == np.uint8 and raw['train'].max() > 1:
    raw = {k: v / np.float32(255.0) for k, v in raw.items()}
  num_valid = _VALID_FROM_TRAIN.get(name, 0)
  if 'valid' not in raw and num_valid and len(raw['train']) > 2 * num_valid:
    cut = len(raw['train']) - num_valid
    raw['train'], raw['valid'] = raw['train'][:cut], raw['train'][cut:]
  splits = {s: validate(raw[s], binarization, f'{source} [{s}]') for s in SPLITS if s in raw}
  dims = {x.shape[1] for x in splits.values()}
  if len(dims) != 1:
    raise ValueError(f'{source}: splits have different data dimensions {sorted(dims)}')
  return Dataset(name, binarization, splits, source)


def _read_npz(path: str) -> dict[str, np.ndarray]:
  if not os.path.exists(path):
    raise FileNotFoundError(f'dataset file not found: {path}')
  with np.load(path) as f:
    return {s: f[s] for s in SPLITS if s in f.files}


def _from_npz_path(path: str) -> Dataset:
  raw = _read_npz(path)
  is_binary = all(np.isin(np.unique(v), (0, 1)).all() for v in raw.values())
  name = os.path.splitext(os.path.basename(path))[0]
  return _finish(name, raw, STATIC if is_binary else DYNAMIC, path)


def _embedded() -> Dataset:
  ref = importlib_resources.files('avi') / 'data_files' / 'binarized_mnist_subset.npz'
  with importlib_resources.as_file(ref) as path, np.load(path) as f:
    raw = {s: np.unpackbits(f[s], axis=1, count=IMAGE_SIZE) for s in SPLITS}
  return _finish('embedded', raw, STATIC, 'avi/data_files/binarized_mnist_subset.npz')


# Hosts the tfds builders download from: probed first, so an offline machine fails in
# seconds instead of after minutes of urllib3 retries.
_TFDS_HOSTS = {'binarized_mnist': 'www.cs.toronto.edu', 'mnist': 'storage.googleapis.com'}


def _from_tfds(name: str, data_dir: Optional[str]) -> Dataset:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)
  root = data_dir or os.environ.get('TFDS_DATA_DIR', os.path.expanduser('~/tensorflow_datasets'))
  fresh = [p for p in (os.path.join(root, name), os.path.join(root, 'downloads', name))
           if not os.path.exists(p)]
  try:
    try:  # a prepared dataset: no network
      raw = _read_tfds(tfds, name, data_dir, download=False)
    except Exception:  # pylint: disable=broad-except  (tfds raises several types)
      socket.create_connection((_TFDS_HOSTS[name], 443), timeout=5).close()
      raw = _read_tfds(tfds, name, data_dir, download=True)
  except Exception as e:  # tfds raises many types for "not prepared and cannot download"
    for path in fresh:  # no partial download left behind
      shutil.rmtree(path, ignore_errors=True)
    raise FileNotFoundError(
        f'could not load {name!r} through tensorflow-datasets ({type(e).__name__}: {e}). '
        f'Prepare it with tfds, or put {_NPZ_FILES[name]} in a directory passed as '
        '--data_dir (or $AVI_DATA_DIR); see the README, "Data".') from e
  return _finish(name, raw, _BINARIZATION[name], f'tfds:{name}')


def _read_tfds(tfds, name: str, data_dir: Optional[str], download: bool) -> dict:
  splits = {'binarized_mnist': ('train', 'validation', 'test'), 'mnist': ('train', 'test')}[name]
  raw = {}
  for split in splits:
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    raw['valid' if split == 'validation' else split] = np.stack(
        [np.asarray(ex['image']).reshape(-1) for ex in source])
  return raw


def _require_file(data_dir: Optional[str], filename: str, dataset: str) -> str:
  path = os.path.join(data_dir, filename) if data_dir else None
  if not path or not os.path.exists(path):
    raise FileNotFoundError(
        f'{dataset}: {filename} not found in data_dir={data_dir!r}. Download it (see the '
        'README, "Data") and pass its directory as --data_dir (or $AVI_DATA_DIR).')
  return path


def _caltech_mat(data_dir: Optional[str]) -> Dataset:
  """Marlin's split-1 .mat: background 1, column-major images -> object 1, row-major."""
  import scipy.io  # pylint: disable=g-import-not-at-top
  path = _require_file(data_dir, 'caltech101_silhouettes_28_split1.mat', 'caltech101_silhouettes')
  mat = scipy.io.loadmat(path)

  def convert(x):
    return 1 - x.reshape(-1, 28, 28).transpose(0, 2, 1).reshape(-1, IMAGE_SIZE)

  raw = {'train': convert(mat['train_data']), 'valid': convert(mat['val_data']),
         'test': convert(mat['test_data'])}
  return _finish('caltech101_silhouettes', raw, STATIC, path)


def _omniglot(data_dir: Optional[str]) -> Dataset:
  """Burda et al.'s chardata.mat: `data` [784, 24345], `testdata` [784, 8070], column-major."""
  import scipy.io  # pylint: disable=g-import-not-at-top
  path = _require_file(data_dir, 'chardata.mat', 'omniglot')
  mat = scipy.io.loadmat(path)

  def convert(x):  # as in Burda et al.'s loader: rows are images stored in Fortran order
    x = np.asarray(x, np.float32).T
    return x.reshape(-1, 28, 28).reshape(-1, IMAGE_SIZE, order='F')

  raw = {'train': convert(mat['data']), 'test': convert(mat['testdata'])}
  return _finish('omniglot', raw, DYNAMIC, path)
