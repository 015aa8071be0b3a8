import os
import socket

import numpy as np
import pytest
import scipy.io

from avi import data


def test_embedded_default():
  ds = data.load('embedded')
  assert ds.binarization == data.STATIC
  assert {k: v.shape for k, v in ds.splits.items()} == {
      'train': (5000, 784), 'valid': (1000, 784), 'test': (1000, 784)}
  for x in ds.splits.values():
    assert x.dtype == np.float32 and set(np.unique(x)) == {0.0, 1.0}
  # Static binarized MNIST has a mean pixel of ~0.13.
  assert 0.11 < ds.splits['train'].mean() < 0.15


def test_npz_path_static_and_dynamic(tmp_path):
  rng = np.random.default_rng(0)
  binary = tmp_path / 'bin.npz'
  np.savez(binary, train=(rng.random((50, 784)) < .3).astype(np.uint8),
           test=(rng.random((10, 784)) < .3).astype(np.uint8))
  ds = data.load(str(binary))
  assert ds.binarization == data.STATIC and set(ds.splits) == {'train', 'test'}
  grey = tmp_path / 'grey.npz'
  np.savez(grey, train=rng.integers(0, 256, (50, 28, 28)).astype(np.uint8))
  ds = data.load(str(grey))
  assert ds.binarization == data.DYNAMIC and ds.splits['train'].shape == (50, 784)
  assert ds.splits['train'].max() <= 1.0


@pytest.mark.parametrize('array, message', [
    (np.zeros((4, 3, 2, 2)), r'expected a non-empty \[N, P\] array'),
    (np.full((4, 5), np.nan), 'NaN or inf'),
    (np.full((4, 5), 2.0), r'must lie in \[0, 1\]'),
    (np.full((4, 5), 0.5), 'static binarization needs data in'),
])
def test_validation_errors(array, message):
  with pytest.raises(ValueError, match=message):
    data.validate(array, data.STATIC, 'x')


def test_unknown_and_missing(tmp_path):
  with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
    data.load('cifar')
  with pytest.raises(FileNotFoundError, match='not found'):
    data.load(str(tmp_path / 'missing.npz'))
  with pytest.raises(FileNotFoundError, match='chardata.mat not found'):
    data.load('omniglot', data_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match='caltech101_silhouettes_28_split1.mat not found'):
    data.load('caltech101_silhouettes', data_dir=str(tmp_path))


def test_splits_of_different_widths_and_no_train_array(tmp_path):
  rng = np.random.default_rng(0)
  path = tmp_path / 'mixed.npz'
  np.savez(path, train=(rng.random((30, 12)) < 0.5).astype(np.float32),
           test=(rng.random((10, 14)) < 0.5).astype(np.float32))
  with pytest.raises(ValueError, match=r'different data dimensions \[12, 14\]'):
    data.load(str(path))
  np.savez(path, test=np.zeros((4, 3), np.float32))
  with pytest.raises(ValueError, match=r'no "train" array \(found \[\'test\'\]\)'):
    data.load(str(path))


def test_local_npz_in_data_dir(tmp_path):
  rng = np.random.default_rng(1)
  np.savez(tmp_path / 'binarized_mnist.npz',
           **{s: (rng.random((20, 784)) < .2).astype(np.uint8) for s in data.SPLITS})
  ds = data.load('binarized_mnist', data_dir=str(tmp_path))
  assert ds.source.endswith('binarized_mnist.npz') and len(ds.splits['valid']) == 20


def test_caltech_mat_conversion(tmp_path):
  """Marlin's file: background 1, column-major; the loader flips both."""
  rng = np.random.default_rng(2)
  images = (rng.random((3, 28, 28)) < .5).astype(np.uint8)  # object = 1, row-major
  raw = 1 - images.transpose(0, 2, 1).reshape(3, 784)
  scipy.io.savemat(tmp_path / 'caltech101_silhouettes_28_split1.mat',
                   {'train_data': raw, 'val_data': raw[:1], 'test_data': raw[:2]})
  ds = data.load('caltech101_silhouettes', data_dir=str(tmp_path))
  np.testing.assert_array_equal(ds.splits['train'], images.reshape(3, 784))


def test_omniglot_chardata(tmp_path):
  rng = np.random.default_rng(3)
  images = rng.random((5, 28, 28)).astype(np.float32)
  # chardata.mat stores [784, N], each image flattened in Fortran order.
  stored = images.transpose(0, 2, 1).reshape(5, 784).T
  scipy.io.savemat(tmp_path / 'chardata.mat', {'data': stored, 'testdata': stored[:, :2]})
  ds = data.load('omniglot', data_dir=str(tmp_path))
  assert ds.binarization == data.DYNAMIC
  assert 'valid' not in ds.splits  # too few images to carve Burda's 1,345-image split
  np.testing.assert_allclose(ds.splits['train'].reshape(-1, 28, 28), images, rtol=1e-6)
  np.testing.assert_allclose(ds.splits['test'].reshape(-1, 28, 28), images[:2], rtol=1e-6)


def test_tfds_path_with_mock_data():
  tfds = pytest.importorskip('tensorflow_datasets')
  rng = np.random.default_rng(4)

  def binary_source(builder, split=None, **kwargs):  # the real dataset holds uint8 {0, 1}
    del builder, kwargs
    n = {'train': 6, 'validation': 4, 'test': 3}[split]
    return [{'image': (rng.random((28, 28, 1)) < .3).astype(np.uint8)} for _ in range(n)]

  with tfds.testing.mock_data(as_data_source_fn=binary_source):
    ds = data.load('binarized_mnist', data_dir='')
  assert ds.source == 'tfds:binarized_mnist' and ds.binarization == data.STATIC
  assert {k: v.shape for k, v in ds.splits.items()} == {
      'train': (6, 784), 'valid': (4, 784), 'test': (3, 784)}
  # The generic mock fills images with 0..254: static data must refuse it.
  with tfds.testing.mock_data(num_examples=6):
    with pytest.raises(ValueError, match='static binarization needs data in'):
      data.load('binarized_mnist', data_dir='')
    ds = data.load('mnist', data_dir='')
  assert ds.binarization == data.DYNAMIC and 0 <= ds.splits['test'].min()
  assert ds.splits['test'].max() <= 1.0 and ds.splits['test'].shape == (6, 784)


def test_tfds_failure_names_the_fix(tmp_path, monkeypatch):
  tfds = pytest.importorskip('tensorflow_datasets')

  def fail(*args, **kwargs):
    raise OSError('no internet')

  monkeypatch.setattr(tfds, 'data_source', fail)
  with pytest.raises(FileNotFoundError, match='binarized_mnist.npz.*--data_dir'):
    data.load('binarized_mnist', data_dir=str(tmp_path))


def test_unprepared_tfds_dataset_offline_fails_fast_and_leaves_nothing(tmp_path, monkeypatch):
  pytest.importorskip('tensorflow_datasets')

  def offline(*args, **kwargs):
    raise OSError('Name or service not known')

  monkeypatch.setattr(socket, 'create_connection', offline)
  with pytest.raises(FileNotFoundError, match='Name or service not known'):
    data.load('binarized_mnist', data_dir=str(tmp_path))
  assert not os.listdir(tmp_path)
