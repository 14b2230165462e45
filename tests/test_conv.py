"""conv2d / conv2d_backward: native vs the NumPy reference on every CPU path and thread count,
the reference's backward against central finite differences (float64), PyTorch parity where
torch is installed, and bad inputs."""
import numpy as np
from gradcheck import numeric_grad
import pytest

import lamina
from lamina import ops, reference as R

# (N, C, H, W, O, kH, kW, stride, padding, dilation): each line exercises something.
SHAPES = [
    (1, 1, 5, 5, 1, 3, 3, 1, 0, 1),               # batch 1, one channel
    (2, 3, 7, 9, 4, 3, 3, 1, 1, 1),               # odd spatial sizes, padding
    (3, 2, 9, 10, 5, 3, 3, 2, 0, 2),              # stride and dilation
    (2, 4, 8, 8, 3, 2, 2, 3, 1, 1),               # stride > kernel
    (2, 3, 6, 7, 5, 6, 7, 1, 0, 1),               # kernel = input size (1x1 output)
    (1, 2, 4, 4, 3, 7, 5, 1, 2, 1),               # kernel larger than input, padding covers it
    (4, 8, 12, 12, 16, 1, 1, 1, 0, 1),            # 1x1: no im2col
    (2, 5, 9, 6, 7, 1, 1, 2, 1, 1),               # 1x1 with stride and padding: im2col
    (5, 3, 17, 13, 7, 3, 2, (2, 1), (1, 2), (1, 1)),    # rectangular kernel, pairs
    (2, 2, 11, 12, 3, 3, 3, (2, 1), (0, 2), (2, 3)),    # every parameter a different pair
    (3, 33, 6, 5, 17, 3, 3, 1, 1, 1),             # many channels, sizes off the vector width
    (8, 6, 14, 14, 16, 5, 5, 1, 0, 1),            # LeNet conv2: several images per GEMM tile
    (4, 8, 12, 12, 16, 3, 3, 1, 1, 1),            # large enough for 2 threads over the batch
    (3, 8, 16, 16, 16, 3, 3, 1, 1, 1),            # 3 images on 2 threads (rows / GEMM threads)
    (1, 16, 20, 20, 16, 3, 3, 1, 1, 1),           # batch 1: rows (fwd) / channels (bwd) per thread
    (1, 3, 40, 40, 16, 5, 5, 1, 2, 1),            # batch 1, 3 channels: threads inside the GEMMs
    (1, 64, 16, 16, 8, 3, 3, 1, 1, 1),            # column matrix chunked by output rows
    (2, 1, 40, 3, 2, 5, 1, 1, (2, 0), (1, 1)),    # tall and thin
    (1, 2, 20, 37, 3, 3, 3, (1, 3), 1, 1),        # stride 3 along W only
]


def _shape_id(s):
    return "x".join(str(v).replace(" ", "") for v in s)


def _case(rng, shape, dtype=np.float32):
    N, C, H, W, O, kH, kW, stride, padding, dilation = shape
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C, kH, kW)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation)


def _f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def _close(actual, expected, rtol=2e-5):
    """float32 sums of many products: compare against the float64 result, scaled."""
    assert actual.shape == expected.shape and actual.dtype == np.float32
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale * 4)


@pytest.fixture(params=["auto", "gemm", "dot"])
def grad_w_method(request):
    lamina._native._conv_grad_w_method(request.param)
    try:
        yield request.param
    finally:
        lamina._native._conv_grad_w_method("auto")


# ---- native vs reference ----------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_forward_matches_reference(rng, isa, threads, shape):
    x, w, b, geo = _case(rng, shape)
    expected = R.conv2d(*_f64(x, w, b), **geo)
    _close(ops.conv2d(x, w, b, **geo), expected)
    _close(ops.conv2d(x, w, **geo), R.conv2d(*_f64(x, w), **geo))
    _close(ops.conv2d(x, w, b, activation="relu", **geo), np.maximum(expected, 0))


@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_backward_matches_reference(rng, isa, threads, shape):
    x, w, _, geo = _case(rng, shape)
    gy = rng.standard_normal(R.conv2d(x, w, **geo).shape).astype(np.float32)
    expected = R.conv2d_backward(*_f64(x, w, gy), **geo)
    got = ops.conv2d_backward(x, w, gy, **geo)
    for g, e in zip(got, expected):
        _close(g, e)


@pytest.mark.parametrize("shape", [SHAPES[i] for i in (1, 2, 6, 9, 11, 13, 15)], ids=_shape_id)
def test_backward_every_grad_w_method(rng, isa, threads, grad_w_method, shape):
    x, w, _, geo = _case(rng, shape)
    gy = rng.standard_normal(R.conv2d(x, w, **geo).shape).astype(np.float32)
    expected = R.conv2d_backward(*_f64(x, w, gy), **geo)
    gx, gw, gb = ops.conv2d_backward(x, w, gy, **geo)
    _close(gx, expected[0])
    _close(gw, expected[1])
    _close(gb, expected[2])


def test_random_shapes(isa):
    """A seeded sweep of small geometries (every valid combination is fair game)."""
    rng = np.random.default_rng(7)
    done = 0
    while done < 30:
        N, C, O = rng.integers(1, 4), rng.integers(1, 6), rng.integers(1, 9)
        H, W = rng.integers(1, 13, size=2)
        kH, kW = rng.integers(1, 6, size=2)
        geo = dict(stride=tuple(int(v) for v in rng.integers(1, 4, size=2)),
                   padding=tuple(int(v) for v in rng.integers(0, 3, size=2)),
                   dilation=tuple(int(v) for v in rng.integers(1, 3, size=2)))
        if any(d * (k - 1) + 1 > n + 2 * p for d, k, n, p in
               zip(geo["dilation"], (kH, kW), (H, W), geo["padding"])):
            continue
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = rng.standard_normal((O, C, kH, kW)).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32)
        y = ops.conv2d(x, w, b, **geo)
        _close(y, R.conv2d(*_f64(x, w, b), **geo))
        gy = rng.standard_normal(y.shape).astype(np.float32)
        for g, e in zip(ops.conv2d_backward(x, w, gy, **geo), R.conv2d_backward(*_f64(x, w, gy), **geo)):
            _close(g, e)
        done += 1


def test_backward_without_grad_x(rng):
    x, w, _, geo = _case(rng, SHAPES[1])
    gy = rng.standard_normal(R.conv2d(x, w, **geo).shape).astype(np.float32)
    gx, gw, gb = ops.conv2d_backward(x, w, gy, compute_grad_x=False, **geo)
    rx, rw, rb = R.conv2d_backward(*_f64(x, w, gy), compute_grad_x=False, **geo)
    assert gx is None and rx is None
    _close(gw, rw)
    _close(gb, rb)


def test_empty_batch_and_no_output_channels(rng):
    x = rng.standard_normal((0, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = ops.conv2d(x, w, np.ones(4, np.float32), padding=1)
    assert y.shape == (0, 4, 6, 6)
    gx, gw, gb = ops.conv2d_backward(x, w, y, padding=1)
    assert gx.shape == x.shape and not gw.any() and not gb.any()
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w0 = np.zeros((0, 3, 3, 3), np.float32)
    y = ops.conv2d(x, w0)
    assert y.shape == (2, 0, 4, 4)
    gx, gw, gb = ops.conv2d_backward(x, w0, y)
    assert not gx.any() and gw.shape == (0, 3, 3, 3) and gb.shape == (0,)


def test_out_argument(rng):
    x, w, b, geo = _case(rng, SHAPES[2])
    y = ops.conv2d(x, w, b, **geo)
    out = np.full_like(y, np.nan)
    assert ops.conv2d(x, w, b, out=out, **geo) is out
    np.testing.assert_array_equal(out, y)


def test_relu_propagates_nan(rng):
    x, w, b, geo = _case(rng, SHAPES[0])
    x[0, 0, 2, 2] = np.nan
    y = ops.conv2d(x, w, b, activation="relu", **geo)
    assert np.isnan(y[0, 0, 1, 1]) and np.isnan(R.conv2d(x, w, b, activation="relu", **geo)[0, 0, 1, 1])


# ---- the reference's backward against finite differences --------------------------------

@pytest.mark.parametrize("shape", [
    (2, 2, 5, 6, 3, 3, 3, 1, 1, 1),
    (1, 3, 7, 6, 2, 3, 2, (2, 1), (1, 0), (1, 2)),
    (2, 1, 4, 4, 2, 4, 4, 1, 0, 1),
    (1, 2, 6, 5, 3, 1, 1, 2, 1, 1),
], ids=_shape_id)
def test_reference_backward_finite_differences(rng, shape):
    x, w, b, geo = _case(rng, shape, np.float64)
    gy = rng.standard_normal(R.conv2d(x, w, b, **geo).shape)

    def loss():  # L = <conv2d(x, w, b), gy>, so dL/dy = gy
        return float(np.sum(R.conv2d(x, w, b, **geo) * gy))

    gx, gw, gb = R.conv2d_backward(x, w, gy, **geo)
    np.testing.assert_allclose(gx, numeric_grad(loss, x, in_place=True), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gw, numeric_grad(loss, w, in_place=True), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gb, numeric_grad(loss, b, in_place=True), rtol=1e-6, atol=1e-8)


# ---- PyTorch parity ----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [SHAPES[i] for i in (1, 2, 4, 6, 8, 9, 11)], ids=_shape_id)
def test_matches_torch(rng, shape):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, geo = _case(rng, shape)
    tx, tw, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, **geo)
    gy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(gy, dtype=torch.float64))
    _close(ops.conv2d(x, w, b, **geo), ty.detach().numpy())
    gx, gw, gb = ops.conv2d_backward(x, w, gy, **geo)
    _close(gx, tx.grad.numpy())
    _close(gw, tw.grad.numpy())
    _close(gb, tb.grad.numpy())


# ---- bad inputs --------------------------------------------------------------------------

def _good(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    return x, w, np.zeros(4, np.float32)


@pytest.mark.parametrize("impl", [ops, R], ids=["native", "reference"])
def test_geometry_errors(rng, impl):
    x, w, b = _good(rng)
    with pytest.raises(ValueError, match="channels"):
        impl.conv2d(x, w[:, :2].copy())
    with pytest.raises(ValueError, match="larger than the padded input|larger than padded input"):
        impl.conv2d(x[:, :, :2].copy(), w)
    with pytest.raises(ValueError, match="larger than"):
        impl.conv2d(x, w, dilation=5)
    with pytest.raises(ValueError, match="larger than|below"):
        impl.conv2d(x, w, dilation=2**62)
    with pytest.raises(ValueError, match="stride"):
        impl.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="stride"):
        impl.conv2d(x, w, stride=(1, -2))
    with pytest.raises(ValueError, match="dilation"):
        impl.conv2d(x, w, dilation=(0, 1))
    with pytest.raises(ValueError, match="padding"):
        impl.conv2d(x, w, padding=-1)
    with pytest.raises(TypeError, match="stride"):
        impl.conv2d(x, w, stride=1.5)
    with pytest.raises(ValueError, match="padding"):  # a wrong length is a ValueError
        impl.conv2d(x, w, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="b"):
        impl.conv2d(x, w, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="activation"):
        impl.conv2d(x, w, activation="tanh")
    with pytest.raises(ValueError, match="grad_y"):
        impl.conv2d_backward(x, w, np.zeros((2, 4, 5, 6), np.float32))
    with pytest.raises(ValueError, match="x"):
        impl.conv2d(x[0], w)
    with pytest.raises(ValueError, match="w"):
        impl.conv2d(x, w[0])


def test_array_errors(rng):
    x, w, b = _good(rng)
    gy = ops.conv2d(x, w)
    with pytest.raises(TypeError, match="x"):
        ops.conv2d(x.astype(np.float64), w)
    with pytest.raises(TypeError, match="x"):
        ops.conv2d(x.tolist(), w)
    with pytest.raises(TypeError, match="w"):
        ops.conv2d(x, w.astype(np.float16))
    with pytest.raises(TypeError, match="b"):
        ops.conv2d(x, w, b.astype(np.float64))
    with pytest.raises(ValueError, match="x.*C-contiguous"):
        ops.conv2d(x[:, :, :, ::2], w)
    with pytest.raises(ValueError, match="w.*C-contiguous"):
        ops.conv2d(x, np.asfortranarray(w))
    with pytest.raises(ValueError, match="grad_y.*C-contiguous"):
        ops.conv2d_backward(x, w, np.asfortranarray(gy))
    with pytest.raises(TypeError, match="grad_y"):
        ops.conv2d_backward(x, w, gy.astype(np.float64))
    with pytest.raises(ValueError, match="empty kernel"):
        ops.conv2d(x, np.zeros((4, 3, 0, 3), np.float32))
    with pytest.raises(ValueError, match="out"):
        ops.conv2d(x, w, out=np.zeros((2, 4, 6, 5), np.float32))
    with pytest.raises(TypeError, match="stride"):
        ops.conv2d(x, w, stride=True)
    with pytest.raises(ValueError, match="method"):
        lamina._native._conv_grad_w_method("fft")


def test_numpy_integer_geometry(rng):
    x, w, b = _good(rng)
    y = ops.conv2d(x, w, b, stride=np.int64(2), padding=(np.int32(1), 1))
    _close(y, R.conv2d(*_f64(x, w, b), stride=2, padding=1))
