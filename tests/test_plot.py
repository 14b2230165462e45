"""lamina.plot: every plot is a valid, non-trivial PNG (matplotlib, Agg canvas)."""
import struct
import sys
import zlib

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import lamina  # noqa: E402
from lamina import optim, plot  # noqa: E402
from lamina.diagnostics import GradientNormRecorder  # noqa: E402
from lamina.nn import Conv2D, Dense, Flatten, ReLU, Sequential, Sigmoid  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(path, min_side=100):
    """The PNG signature, a well-formed IHDR (CRC checked), a plausible size, an IEND, and
    pixels that are not all one colour (matplotlib drew something)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    length, ctype = struct.unpack(">I4s", data[8:16])
    assert ctype == b"IHDR" and length == 13
    ihdr = data[16:29]
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(b"IHDR" + ihdr)
    width, height = struct.unpack(">II", ihdr[:8])
    assert width >= min_side and height >= min_side
    assert data[-12:-8] == b"\x00\x00\x00\x00" and data[-8:-4] == b"IEND"
    assert len(data) > 1000
    import matplotlib.image as mpimg

    img = mpimg.imread(str(path))
    assert img.shape[:2] == (height, width)
    assert float(img[..., :3].std()) > 0.01  # not a blank canvas
    return width, height


def _history():
    return {"loss": [2.0, 1.2, 0.8], "accuracy": [0.3, 0.6, 0.8], "val_loss": [2.1, 1.4, 1.0],
            "val_accuracy": [0.25, 0.5, 0.7]}


def test_training_curves(tmp_path):
    fig = plot.training_curves(_history(), tmp_path / "one.png", title="one run")
    assert fig is not None
    check_png(tmp_path / "one.png")
    plot.training_curves({"a": _history(), "b": {"loss": [1.5, 1.0, 0.9], "accuracy": [None, None, None]}},
                         tmp_path / "sub" / "two.png", log_loss=True)
    check_png(tmp_path / "sub" / "two.png")


def test_gradient_norms_plot(tmp_path, rng):
    lamina.seed(0)
    model = Sequential(Dense(6, 5), Sigmoid(), Dense(5, 3))
    X = rng.random((20, 6), dtype=np.float32)
    y = rng.integers(0, 3, 20)
    rec = GradientNormRecorder(X, y)
    model.fit(X, y, epochs=2, batch_size=5, optimizer=optim.SGD(model.parameters(), lr=0.1), callbacks=[rec],
              seed=0, verbose=0)
    plot.gradient_norms(rec, tmp_path / "g.png")
    check_png(tmp_path / "g.png")
    plot.gradient_norms({"x": rec, "y": rec}, tmp_path / "g2.png", key="weight", labels=["first", "last"])
    check_png(tmp_path / "g2.png")


def test_filters(tmp_path):
    lamina.seed(1)
    conv = Conv2D(1, 6, 5)
    plot.filters(conv, tmp_path / "f.png", title="filters")
    check_png(tmp_path / "f.png")
    rgb = Conv2D(3, 4, 3)
    plot.filters(rgb.weight, tmp_path / "rgb.png")
    check_png(tmp_path / "rgb.png")
    dense = Dense(784, 10)
    plot.filters(dense, tmp_path / "d.png")
    check_png(tmp_path / "d.png")
    with pytest.raises(ValueError, match="image_shape"):
        plot.filters(Dense(10, 3))


def test_hessian_histogram_loss_curves_and_bars(tmp_path, rng):
    plot.hessian_histogram({"init": rng.standard_normal(300), "trained": rng.standard_normal(300) * 0.1 + 0.2},
                           tmp_path / "h.png", title="spectrum")
    check_png(tmp_path / "h.png")
    plot.hessian_histogram(np.array([1.0, 1.0, 1.0]), tmp_path / "h1.png")
    check_png(tmp_path / "h1.png")
    plot.loss_vs_evaluations({"GD": ([0, 100, 200], [2.3, 1.9, 1.7]), "SGD": ([0, 100, 200], [2.3, 0.9, 0.5])},
                             tmp_path / "l.png")
    check_png(tmp_path / "l.png")
    plot.bars({"xavier": 0.9, "he": 0.93, "normal": None, "nan": float("nan")}, tmp_path / "b.png", ylabel="acc")
    check_png(tmp_path / "b.png")


def test_plotting_does_not_touch_pyplot_or_the_global_backend(tmp_path):
    import subprocess

    # in a fresh interpreter: pyplot may already be loaded here by other tests
    # (matplotlib.get_backend() itself may import pyplot to resolve "auto": read the raw rcParam)
    code = ("import sys, matplotlib; raw = lambda: dict.__getitem__(matplotlib.rcParams, 'backend'); "
            f"before = raw(); from lamina import plot; plot.bars({{'a': 1.0}}, {str(tmp_path / 'x.png')!r}); "
            "print('matplotlib.pyplot' in sys.modules, raw() == before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
    check_png(tmp_path / "x.png")


def test_import_lamina_does_not_import_matplotlib():
    import subprocess

    code = "import sys, lamina, lamina.plot, lamina.experiments; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
