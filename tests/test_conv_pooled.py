"""conv2d_backward_pooled: a conv layer's grad_w / grad_b from the gradient of the max pool it
feeds (and that pool's indices), never forming the unpooled gradient; the Sequential rewrite
that uses it for a network's first conv + ReLU + MaxPool2D."""
import numpy as np
import pytest

import lamina
from lamina import _native, nn
from lamina import reference as R
from lamina.backend import Backend, KERNELS, OPTIONAL_KERNELS, get_backend

from gradcheck import assert_grad_close, numeric_grad

# (x shape, w shape, conv geometry, pool kernel, pool stride, pool padding)
CASES = [
    ((5, 1, 28, 28), (6, 1, 5, 5), {"padding": 2}, 2, None, 0),           # LeNet's conv1: padded copy
    ((5, 1, 32, 32), (6, 1, 5, 5), {}, 2, None, 0),                       # unpadded: x itself
    ((3, 2, 12, 13), (4, 2, 3, 3), {"stride": 2, "padding": 1}, 2, None, 0),
    ((3, 2, 14, 13), (4, 2, 3, 3), {"dilation": 2, "padding": (0, 1)}, 2, None, 0),  # scalar path
    ((2, 3, 16, 15), (5, 3, 3, 3), {"stride": (1, 2)}, 2, None, 0),     # strided, vector path
    ((2, 3, 20, 20), (5, 3, 9, 9), {}, 2, None, 0),                      # kW > 8: 16 lanes; kH > 8
    ((2, 2, 20, 40), (3, 2, 2, 17), {}, 2, None, 0),                     # kW > 16: scalar path
    ((2, 2, 13, 13), (3, 2, 3, 3), {}, 3, 2, 1),                         # overlapping, padded pool
    ((1, 1, 6, 6), (1, 1, 6, 6), {}, 1, None, 0),                        # one output cell
    ((7, 3, 9, 11), (8, 3, 2, 4), {"dilation": (2, 1)}, (2, 3), None, 0),
]


def _pooled(case, rng, dtype=np.float32):
    xs, ws, geo, k, s, p = case
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    y = np.maximum(R.conv2d(x.astype(np.float64), w.astype(np.float64), None, **geo), 0)
    pooled, idx = R.max_pool2d(y, k, s, p)
    g = rng.standard_normal(pooled.shape) * (pooled > 0)  # ReLU-masked, as Sequential feeds it
    return x, w, g.astype(dtype), idx, geo, y.shape


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}")
def test_matches_the_unpooled_gradient(case, isa, threads, rng):
    x, w, g, idx, geo, yshape = _pooled(case, rng)
    gw, gb = _native.conv2d_backward_pooled(x, w, g, idx, **geo)
    gy = R.max_pool2d_backward(g.astype(np.float64), idx, yshape)
    _, rw, rb = R.conv2d_backward(x.astype(np.float64), w.astype(np.float64), gy, compute_grad_x=False, **geo)
    assert gw.dtype == np.float32 and gw.shape == w.shape and gb.shape == (w.shape[0],)
    scale = np.abs(gy).sum() * np.abs(x).max()
    np.testing.assert_allclose(gw, rw, atol=1e-6 * scale, rtol=0)
    np.testing.assert_allclose(gb, rb, atol=1e-6 * np.abs(gy).sum() + 1e-6, rtol=0)
    # and the reference twin says the same
    tw, tb = R.conv2d_backward_pooled(x.astype(np.float64), w.astype(np.float64), g.astype(np.float64), idx, **geo)
    np.testing.assert_allclose(tw, rw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tb, rb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [CASES[2], CASES[7]], ids=["padded", "overlapping"])
def test_reference_twin_by_finite_differences(case, rng):
    # C = sum(gp * maxpool(relu(conv(x, w) + b))): dC/dw and dC/db from the twin.
    xs, ws, geo, k, s, p = case
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) * 0.1
    y = np.maximum(R.conv2d(x, w, b, **geo), 0)
    pooled, idx = R.max_pool2d(y, k, s, p)
    gp = rng.standard_normal(pooled.shape)

    def cost(w_, b_):
        out, _ = R.max_pool2d(np.maximum(R.conv2d(x, w_, b_, **geo), 0), k, s, p)
        return float((gp * out).sum())

    gw, gb = R.conv2d_backward_pooled(x, w, gp * (pooled > 0), idx, **geo)
    assert_grad_close(gw, numeric_grad(lambda w_: cost(w_, b), w), rtol=1e-5, atol=1e-7)
    assert_grad_close(gb, numeric_grad(lambda b_: cost(w, b_), b), rtol=1e-5, atol=1e-7)


def test_nan_in_x_reaches_grad_w_through_the_pooled_windows(rng):
    # A NaN under a pooled cell's window reaches every tap it meets; the unpooled path also
    # multiplies the zero gradient of the other cells by it (so it has at least those NaNs).
    x, w, g, idx, geo, yshape = _pooled(CASES[1], rng)
    g[0, 0, 0, 0] = 1.0
    oy, ox = divmod(int(idx[0, 0, 0, 0]), yshape[3])
    x[0, 0, oy, ox] = np.nan
    gw, gb = _native.conv2d_backward_pooled(x, w, g, idx)
    _, rw, _ = _native.conv2d_backward(x, w, _native.max_pool2d_backward(g, idx, yshape), compute_grad_x=False)
    assert np.isnan(gw[0, 0, 0, 0]) and np.isfinite(gb).all()
    assert not (np.isnan(gw) & ~np.isnan(rw)).any()


@pytest.mark.parametrize("impl", [_native, R], ids=["native", "reference"])
def test_bad_arguments_are_named(impl, rng):
    x, w, g, idx, geo, _ = _pooled(CASES[1], rng)
    bad = idx.copy()
    bad[1, 2, 3, 4] = 28 * 28
    with pytest.raises(ValueError, match=r"indices\[1, 2, 3, 4\] = 784 is out of range"):
        impl.conv2d_backward_pooled(x, w, g, bad)
    bad[1, 2, 3, 4] = -1
    with pytest.raises(ValueError, match="out of range"):
        impl.conv2d_backward_pooled(x, w, g, bad)
    with pytest.raises(ValueError, match="grad_pooled"):
        impl.conv2d_backward_pooled(x, w, g[:, :3], idx[:, :3])
    with pytest.raises(ValueError, match="indices|disagree"):
        impl.conv2d_backward_pooled(x, w, g, idx[:, :, :7])
    with pytest.raises(ValueError):
        impl.conv2d_backward_pooled(x[:, :, :3, :3], w, g, idx)  # conv output smaller than the kernel


@pytest.mark.parametrize("case", [CASES[0], CASES[4], CASES[2], CASES[8]], ids=["lenet", "odd", "scalar", "one"])
def test_every_bad_index_position_is_found(case, isa, threads, rng):
    # Each position of a plane (first / second of a pair, the odd last one), every plane.
    x, w, g, idx, geo, yshape = _pooled(case, rng)
    plane = yshape[2] * yshape[3]
    for where in [(0, 0, 0, 0), (-1, -1, -1, -1), (0, -1, 0, min(1, idx.shape[3] - 1)),
                  (x.shape[0] // 2, w.shape[0] // 2, idx.shape[2] // 2, idx.shape[3] - 1)]:
        bad = idx.copy()
        bad[where] = plane
        with pytest.raises(ValueError, match=f"= {plane} is out of range"):
            _native.conv2d_backward_pooled(x, w, g, bad, **geo)


def test_native_argument_types(rng):
    x, w, g, idx, _, _ = _pooled(CASES[1], rng)
    with pytest.raises(TypeError, match="indices"):
        _native.conv2d_backward_pooled(x, w, g, idx.astype(np.float32))
    with pytest.raises(TypeError, match="grad_pooled"):
        _native.conv2d_backward_pooled(x, w, g.astype(np.float64), idx)
    gw, gb = _native.conv2d_backward_pooled(x[:0], w, g[:0], idx[:0])  # an empty batch
    assert not gw.any() and not gb.any()


def _lenet_like(seed):
    rng = np.random.default_rng(seed)
    m = nn.Sequential(nn.Conv2D(1, 4, 5), nn.ReLU(), nn.MaxPool2D(2), nn.Conv2D(4, 6, 3), nn.ReLU(),
                      nn.MaxPool2D(2), nn.Flatten(), nn.Dense(6 * 3 * 3, 10))
    for p in m.parameters():
        p.data[...] = rng.standard_normal(p.data.shape).astype(p.data.dtype) * 0.3
    return m


def _grads(model, x, y):
    # One backward as train_step runs it (no dC/d(input)), from dC/d(output) = one-hot(y).
    model.zero_grad()
    out = model.forward(x, training=True)
    g = np.zeros(out.shape, np.float32)
    g[np.arange(len(y)), y] = 1.0
    model.backward(g, need_input_grad=False)
    return [p.grad.copy() for p in model.parameters()]


def test_sequential_takes_the_pooled_path_for_the_first_conv(monkeypatch, rng):
    x = rng.standard_normal((6, 1, 20, 20)).astype(np.float32)
    y = rng.integers(0, 10, 6)
    calls = []
    real = nn.Conv2D.backward_from_pool
    monkeypatch.setattr(nn.Conv2D, "backward_from_pool", lambda self, g, pool: calls.append(self) or real(self, g, pool))
    m = _lenet_like(3)
    fused = _grads(m, x, y)
    assert calls == [m[0]]  # the first conv only: the second needs dC/dx

    # The same model on a native backend without the optional kernel: the unpooled path.
    plain = Backend("native-plain", "cpu", (np.float32,), {k: getattr(get_backend("native"), k) for k in KERNELS})
    assert not hasattr(plain, "conv2d_backward_pooled")
    lamina.backend.register_backend(plain)
    try:
        m2 = _lenet_like(3).to("native-plain")
        unfused = _grads(m2, x, y)
    finally:
        lamina.backend.unregister_backend("native-plain")
    assert len(calls) == 1
    for a, b in zip(fused, unfused):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())

    # input gradients wanted: the rewrite is not applied
    m.zero_grad()
    m.forward(x, training=True)
    m.backward(np.ones((6, 10), np.float32))
    assert len(calls) == 1


def test_optional_kernels_are_on_lamina_backends():
    assert "conv2d_backward_pooled" in OPTIONAL_KERNELS
    for name in ("native", "numpy"):
        assert callable(get_backend(name).conv2d_backward_pooled)
