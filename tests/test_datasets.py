"""lamina.datasets: the bundled MNIST sample, IDX parsing and validation, train_test_split."""
import gzip
import shutil

import numpy as np
import pytest

from lamina import datasets


def idx_bytes(arr, type_code=0x08):
    head = bytes([0, 0, type_code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_split(folder, name, images, labels, gz=True):
    stems = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}[name]
    for stem, arr in zip(stems, (images, labels)):
        data = idx_bytes(arr)
        if gz:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)


def test_bundled_mnist():
    X, y = datasets.load_mnist()
    assert X.shape == (10000, 1, 28, 28) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.shape == (10000,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(np.bincount(y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert (datasets.MNIST_DIR / "README.md").read_text().count("Creative Commons") == 1


def test_folder_with_both_splits(tmp_path, rng):
    tr_x, tr_y = rng.integers(0, 256, (5, 4, 3)), rng.integers(0, 10, 5)
    te_x, te_y = rng.integers(0, 256, (2, 4, 3)), rng.integers(0, 10, 2)
    write_split(tmp_path, "train", tr_x, tr_y, gz=True)
    write_split(tmp_path, "test", te_x, te_y, gz=False)
    X, y = datasets.load_mnist(tmp_path, split="train")
    np.testing.assert_allclose(X[:, 0], tr_x / 255, rtol=1e-6)
    np.testing.assert_array_equal(y, tr_y)
    X, y = datasets.load_mnist(tmp_path)
    assert X.shape == (7, 1, 4, 3) and list(y) == list(tr_y) + list(te_y)
    assert datasets.load_mnist(tmp_path, split="test")[0].shape == (2, 1, 4, 3)


def test_shared_copy_loads_like_bundled(tmp_path):
    for f in datasets.MNIST_DIR.glob("*.gz"):
        shutil.copy(f, tmp_path / f.name)
    X, y = datasets.load_mnist(tmp_path, split="test")
    X0, y0 = datasets.load_mnist()
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(X[:10], X0[:10])
    with pytest.raises(FileNotFoundError, match="train"):
        datasets.load_mnist(tmp_path, split="train")


def test_bad_idx_files(tmp_path, rng):
    good = idx_bytes(rng.integers(0, 256, (3, 4, 4)))
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.parse_idx(b"\x01\x02\x08\x03" + good[4:])
    with pytest.raises(ValueError, match="truncated"):
        datasets.parse_idx(good[:-1])
    with pytest.raises(ValueError, match="trailing"):
        datasets.parse_idx(good + b"\x00")
    with pytest.raises(ValueError, match="too short"):
        datasets.parse_idx(b"\x00")
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(good)[:-8])
    with pytest.raises(ValueError, match="corrupt gzip"):
        datasets.load_idx(p)


def test_mismatched_or_invalid_pairs(tmp_path, rng):
    write_split(tmp_path, "train", rng.integers(0, 256, (4, 2, 2)), rng.integers(0, 10, 3))
    with pytest.raises(ValueError, match="mismatched"):
        datasets.load_mnist(tmp_path, split="train")
    write_split(tmp_path, "train", rng.integers(0, 256, (3, 2, 2)), np.array([1, 12, 3]))
    with pytest.raises(ValueError, match="label 12 at index 1"):
        datasets.load_mnist(tmp_path, split="train")
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match="labels"):
        datasets.load_mnist(tmp_path, split="train")
    with pytest.raises(FileNotFoundError):
        datasets.load_mnist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split"):
        datasets.load_mnist(split="validation")


def test_train_test_split(rng):
    X, y = np.arange(100).reshape(50, 2), np.arange(50) % 5
    a, b, ya, yb = datasets.train_test_split(X, y, test_size=10, shuffle=False)
    np.testing.assert_array_equal(a, X[:40])
    np.testing.assert_array_equal(b, X[40:])
    np.testing.assert_array_equal(ya, y[:40])
    np.testing.assert_array_equal(yb, y[40:])
    a, b, ya, yb = datasets.train_test_split(X, y, test_size=0.2, seed=0)
    assert len(a) == 40 and len(b) == 10
    assert sorted(np.concatenate([a[:, 0], b[:, 0]]).tolist()) == list(range(0, 100, 2))
    np.testing.assert_array_equal(ya, a[:, 0] // 2 % 5)
    a2, *_ = datasets.train_test_split(X, y, test_size=0.2, seed=0)
    np.testing.assert_array_equal(a, a2)
    _, _, _, yb = datasets.train_test_split(X, y, test_size=0.2, seed=1, stratify=True)
    np.testing.assert_array_equal(np.bincount(yb), [2, 2, 2, 2, 2])
    with pytest.raises(ValueError, match="test_size"):
        datasets.train_test_split(X, y, test_size=1.5)
    with pytest.raises(ValueError, match="samples"):
        datasets.train_test_split(X, y[:3])
