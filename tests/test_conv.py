"""conv2d / conv2d_backward through opcheck: every implementation (every CPU path and thread
count, every registered backend) against the NumPy reference, the reference's backward by
central finite differences (float64), PyTorch where torch is installed; then the special
cases and bad inputs."""
import numpy as np
import pytest

import lamina
import opcheck
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
    # small enough for finite differences on every element
    (2, 2, 5, 6, 3, 3, 3, 1, 1, 1),
    (1, 3, 7, 6, 2, 3, 2, (2, 1), (1, 0), (1, 2)),
    (2, 1, 4, 4, 2, 4, 4, 1, 0, 1),
    (1, 2, 6, 5, 3, 1, 1, 2, 1, 1),
]


def _random_shapes(count=30, seed=7):
    """A seeded sweep of small geometries (every valid combination is fair game)."""
    rng = np.random.default_rng(seed)
    shapes = []
    while len(shapes) < count:
        N, C, O = (int(v) for v in rng.integers(1, [4, 6, 9]))
        H, W, kH, kW = (int(v) for v in rng.integers(1, [13, 13, 6, 6]))
        stride, padding, dilation = (tuple(int(v) for v in rng.integers(lo, hi, size=2))
                                     for lo, hi in ((1, 4), (0, 3), (1, 3)))
        if all(d * (k - 1) + 1 <= n + 2 * p for d, k, n, p in zip(dilation, (kH, kW), (H, W), padding)):
            shapes.append((N, C, H, W, O, kH, kW, stride, padding, dilation))
    return shapes


RANDOM_SHAPES = _random_shapes()


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


def _torch_conv2d(F, x, w, b=None, activation=None, **geo):
    y = F.conv2d(x, w, b, **geo)
    return F.relu(y) if activation == "relu" else y


def _backward_args(a, kw, out, gy):  # grad_x, grad_w, grad_b from x, w and grad_y
    return (a[0], a[1], gy), {k: v for k, v in kw.items() if k != "activation"}


CONV2D = opcheck.Op("conv2d", close=opcheck.each(_close), backward="conv2d_backward",
                    backward_args=_backward_args, backward_close=opcheck.each(_close), wrt=(0, 1, 2),
                    torch=_torch_conv2d)
CONV2D_BACKWARD = CONV2D.backward_op()


@pytest.fixture(params=["auto", "gemm", "dot"])
def grad_w_method(request):
    lamina._native._conv_grad_w_method(request.param)
    try:
        yield request.param
    finally:
        lamina._native._conv_grad_w_method("auto")


# ---- every implementation against the reference, forward and backward ----------------------

@pytest.mark.parametrize("target", opcheck.targets(CONV2D))
@pytest.mark.parametrize("shape", SHAPES + RANDOM_SHAPES, ids=_shape_id)
def test_conv2d(target, rng, shape):
    x, w, b, geo = _case(rng, shape)
    opcheck.check(target, CONV2D, (x, w, b), geo)
    opcheck.check(target, CONV2D, (x, w), geo, backward=False)
    opcheck.check(target, CONV2D, (x, w, b), dict(geo, activation="relu"), backward=False)


@pytest.mark.parametrize("target", opcheck.targets(backends=False))
@pytest.mark.parametrize("shape", [SHAPES[i] for i in (1, 2, 6, 9, 11, 13, 15)], ids=_shape_id)
def test_backward_every_grad_w_method(target, rng, grad_w_method, shape):
    x, w, _, geo = _case(rng, shape)
    gy = rng.standard_normal(R.conv2d(x, w, **geo).shape).astype(np.float32)
    opcheck.check(target, CONV2D_BACKWARD, (x, w, gy), geo)


@pytest.mark.parametrize("target", opcheck.targets())
def test_backward_without_grad_x(target, rng):
    x, w, _, geo = _case(rng, SHAPES[1])
    gy = rng.standard_normal(R.conv2d(x, w, **geo).shape).astype(np.float32)
    opcheck.check(target, CONV2D_BACKWARD, (x, w, gy), dict(geo, compute_grad_x=False))


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


# ---- bad inputs --------------------------------------------------------------------------

def _good(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    return x, w, np.zeros(4, np.float32)


@pytest.mark.parametrize("impl", [ops, R], ids=["native", "reference"])
def test_geometry_errors(rng, impl):
    x, w, b = _good(rng)
    with pytest.raises(ValueError, match=r"\bchannels\b"):
        impl.conv2d(x, w[:, :2].copy())
    with pytest.raises(ValueError, match="larger than the padded input|larger than padded input"):
        impl.conv2d(x[:, :, :2].copy(), w)
    with pytest.raises(ValueError, match="larger than"):
        impl.conv2d(x, w, dilation=5)
    with pytest.raises(ValueError, match="larger than|below"):
        impl.conv2d(x, w, dilation=2**62)
    with pytest.raises(ValueError, match=r"\bstride\b"):
        impl.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"\bstride\b"):
        impl.conv2d(x, w, stride=(1, -2))
    with pytest.raises(ValueError, match=r"\bdilation\b"):
        impl.conv2d(x, w, dilation=(0, 1))
    with pytest.raises(ValueError, match=r"\bpadding\b"):
        impl.conv2d(x, w, padding=-1)
    with pytest.raises(TypeError, match=r"\bstride\b"):
        impl.conv2d(x, w, stride=1.5)
    with pytest.raises(ValueError, match=r"\bpadding\b"):  # a wrong length is a ValueError
        impl.conv2d(x, w, padding=(1, 2, 3))
    with pytest.raises(ValueError, match=r"\bb\b"):
        impl.conv2d(x, w, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"\bactivation\b"):
        impl.conv2d(x, w, activation="tanh")
    with pytest.raises(ValueError, match=r"\bgrad_y\b"):
        impl.conv2d_backward(x, w, np.zeros((2, 4, 5, 6), np.float32))
    with pytest.raises(ValueError, match=r"\bx\b"):
        impl.conv2d(x[0], w)
    with pytest.raises(ValueError, match=r"\bw\b"):
        impl.conv2d(x, w[0])


def test_array_errors(rng):
    x, w, b = _good(rng)
    gy = ops.conv2d(x, w)
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.conv2d(x.astype(np.float64), w)
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.conv2d(x.tolist(), w)
    with pytest.raises(TypeError, match=r"\bw\b"):
        ops.conv2d(x, w.astype(np.float16))
    with pytest.raises(TypeError, match=r"\bb\b"):
        ops.conv2d(x, w, b.astype(np.float64))
    with pytest.raises(ValueError, match="x.*C-contiguous"):
        ops.conv2d(x[:, :, :, ::2], w)
    with pytest.raises(ValueError, match="w.*C-contiguous"):
        ops.conv2d(x, np.asfortranarray(w))
    with pytest.raises(ValueError, match="grad_y.*C-contiguous"):
        ops.conv2d_backward(x, w, np.asfortranarray(gy))
    with pytest.raises(TypeError, match=r"\bgrad_y\b"):
        ops.conv2d_backward(x, w, gy.astype(np.float64))
    with pytest.raises(ValueError, match="empty kernel"):
        ops.conv2d(x, np.zeros((4, 3, 0, 3), np.float32))
    with pytest.raises(ValueError, match=r"\bout\b"):
        ops.conv2d(x, w, out=np.zeros((2, 4, 6, 5), np.float32))
    with pytest.raises(TypeError, match=r"\bstride\b"):
        ops.conv2d(x, w, stride=True)
    with pytest.raises(ValueError, match=r"\bmethod\b"):
        lamina._native._conv_grad_w_method("fft")


def test_numpy_integer_geometry(rng):
    x, w, b = _good(rng)
    y = ops.conv2d(x, w, b, stride=np.int64(2), padding=(np.int32(1), 1))
    _close(y, R.conv2d(*_f64(x, w, b), stride=2, padding=1))
