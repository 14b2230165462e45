"""Datasets: MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST) and train_test_split.

``load_mnist()`` with no path returns the 10,000-image MNIST sample shipped in the package
(the MNIST test split, LeCun, Cortes & Burges, CC BY-SA 3.0: see data/mnist/README.md);
``lamina train`` uses its first 8,000 images for training and the last 2,000 for testing.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
MNIST_DIR = DATA_DIR / "mnist"

# IDX type codes -> NumPy big-endian dtypes.
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path):
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip, whatever the extension
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt gzip data ({e})") from None
    return raw


def parse_idx(data: bytes, name="IDX data"):
    """An IDX buffer -> ndarray. Checks the magic number (two zero bytes, a known type code,
    1..4 dimensions) and that the payload has exactly the size the dimensions announce;
    ValueError, naming ``name``, otherwise.

    Example:

        >>> from lamina import datasets
        >>> datasets.parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))   # uint8, 1-D, 3 values
        array([7, 8, 9], dtype=uint8)
    """
    if len(data) < 4:
        raise ValueError(f"{name}: too short for an IDX file ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or not 1 <= data[3] <= 4:
        raise ValueError(f"{name}: not an IDX file (magic bytes {data[:4].hex()})")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    head = 4 + 4 * ndim
    if len(data) < head:
        raise ValueError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = head + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"{name}: IDX file {what}: shape {shape} needs {expected} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype, offset=head).reshape(shape)


def load_idx(path):
    """Reads one IDX file (gzipped or not) into an ndarray (native byte order; the file's
    dtype: uint8 for MNIST). ValueError for a file that is not IDX or whose size does not match
    its header; FileNotFoundError for a missing one.

    Example:

        >>> from lamina import datasets
        >>> labels = datasets.load_idx(datasets.MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
        >>> labels.shape, labels.dtype
        ((10000,), dtype('uint8'))
    """
    arr = parse_idx(_read_bytes(path), str(path))
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def _find(folder: Path, stem):
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        p = folder / name
        if p.is_file():
            return p
    return None


def _load_pair(images_path, labels_path, num_classes=10):
    images = load_idx(images_path)
    labels = load_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected uint8 images of shape (N, rows, cols), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{labels_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"mismatched IDX files: {images_path} has {len(images)} images but "
                         f"{labels_path} has {len(labels)} labels")
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise ValueError(f"{labels_path}: label {int(labels[bad[0]])} at index {int(bad[0])} is not in 0..{num_classes - 1}")
    X = np.empty((len(images), 1) + images.shape[1:], dtype=np.float32)
    np.multiply(images[:, None], np.float32(1 / 255), out=X)  # [0, 1]
    return X, labels.astype(np.int64)


def load_mnist(path=None, split="all"):
    """(X, y): X float32 (N, 1, 28, 28) in [0, 1], y int64 (N,).

    path=None: the 10,000-image MNIST sample shipped with lamina (the MNIST test split).
    path=DIR: the IDX files of MNIST, Fashion-MNIST or KMNIST in DIR (train-images-idx3-ubyte,
    train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally
    .gz); split "train", "test", or "all" (the train split followed by the test split, whichever
    of them are present). Corrupt or mismatched files raise ValueError; a missing folder
    FileNotFoundError.

    Example:

        >>> from lamina import datasets
        >>> X, y = datasets.load_mnist()
        >>> X.shape, X.dtype, y.dtype, float(X.max())
        ((10000, 1, 28, 28), dtype('float32'), dtype('int64'), 1.0)
    """
    folder = MNIST_DIR if path is None else Path(os.fspath(path))
    if not folder.is_dir():
        raise FileNotFoundError(f"no such directory: {folder}")
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    parts = []
    for name in (("train", "test") if split == "all" else (split,)):
        img_stem, lbl_stem = _SPLIT_FILES[name]
        img, lbl = _find(folder, img_stem), _find(folder, lbl_stem)
        if img is None and lbl is None:
            continue
        if img is None or lbl is None:
            raise ValueError(f"{folder}: found {(img or lbl).name} but not its "
                             f"{'images' if img is None else 'labels'} file")
        parts.append(_load_pair(img, lbl))
    if not parts:
        want = [s + "[.gz]" for n in (("train", "test") if split == "all" else (split,)) for s in _SPLIT_FILES[n]]
        raise FileNotFoundError(f"{folder}: no MNIST-format IDX files ({', '.join(want)})")
    if len(parts) == 1:
        return parts[0]
    if parts[0][0].shape[1:] != parts[1][0].shape[1:]:
        raise ValueError(f"{folder}: train and test images have different sizes")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def train_test_split(X, y, test_size=0.2, shuffle=True, seed=None, stratify=False):
    """(X_train, X_test, y_train, y_test). test_size: a fraction in (0, 1) or a count. Without
    shuffle the last samples are the test set (the bundled MNIST split: 8,000 / 2,000).
    stratify=True keeps the class proportions of y in both parts. ValueError for a test_size
    that leaves either part empty, or X and y of different lengths.

    Example:

        >>> from lamina import datasets
        >>> X, y = datasets.load_mnist()
        >>> [a.shape[0] for a in datasets.train_test_split(X, y, shuffle=False)]
        [8000, 2000, 8000, 2000]
    """
    X, y = np.asarray(X), np.asarray(y)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} samples but y has {len(y)}")
    if isinstance(test_size, float) and not isinstance(test_size, bool):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"a fractional test_size must be in (0, 1), got {test_size}")
        n_test = int(round(test_size * n))
    else:
        n_test = int(test_size)
    if not 0 < n_test < n:
        raise ValueError(f"test_size {test_size!r} leaves an empty train or test set for {n} samples")
    rng = np.random.default_rng(seed)
    if stratify:
        test_idx = []
        classes, counts = np.unique(y, return_counts=True)
        for c, k in zip(classes, counts):
            idx = np.flatnonzero(y == c)
            if shuffle:
                idx = rng.permutation(idx)
            test_idx.append(idx[len(idx) - int(round(k * n_test / n)):])
        test = np.sort(np.concatenate(test_idx))
        mask = np.ones(n, bool)
        mask[test] = False
        train = np.flatnonzero(mask)
        if shuffle:
            train, test = rng.permutation(train), rng.permutation(test)
    elif shuffle:
        order = rng.permutation(n)
        train, test = order[: n - n_test], order[n - n_test:]
    else:
        return X[: n - n_test], X[n - n_test:], y[: n - n_test], y[n - n_test:]
    return X[train], X[test], y[train], y[test]


__all__ = ["load_mnist", "load_idx", "parse_idx", "train_test_split", "MNIST_DIR"]
