"""Activations: every implementation against the reference through opcheck (every CPU path and
thread count, every registered backend, the reference's backward by finite differences,
PyTorch), the vectorised math's accuracy, saturation and NaN, bad inputs."""
import numpy as np
import pytest

import opcheck
from lamina import _native, ops, reference as ref

SHAPES = [(), (1,), (7,), (16,), (17,), (3, 5), (2, 3, 33), (4, 129), (0,), (2, 0, 3), (301, 407)]
SLOPES = [0.01, 0.2, -0.5]
TINY = np.finfo(np.float32).tiny
ULP = 2.0**-23


def _rand(rng, shape, scale=4.0):
    return np.asarray(rng.standard_normal(shape) * scale, dtype=np.float32)


def _backward_close(got, want, args, kwargs):
    # 1 - y*y and 1 - y cancel near |y| = 1: float32 rounding there is ~2^-24 |grad_y|
    # (the AVX paths may fuse it into one FMA, so they need not equal float32 NumPy)
    err = np.abs(got - want)
    assert np.all(err <= 3 * ULP * np.abs(want) + ULP * np.abs(args[0])), float(np.max(err, initial=0))


def _from_x(a, kw, out, gy):  # relu and leaky_relu differentiate from the input x
    return (gy, a[0]), kw


def _from_y(a, kw, out, gy):  # sigmoid and tanh from their output y
    return (gy, out), kw


# relu and leaky_relu are exact: bit for bit the reference's float32 result
RELU = opcheck.Op("relu", close=opcheck.EXACT, backward="relu_backward", backward_args=_from_x,
                  backward_close=opcheck.EXACT, torch=lambda F, x: F.relu(x))
LEAKY_RELU = opcheck.Op("leaky_relu", close=opcheck.EXACT, backward="leaky_relu_backward",
                        backward_args=_from_x, backward_close=opcheck.EXACT,
                        torch=lambda F, x, slope: F.leaky_relu(x, slope))
# float32 NumPy's sigmoid (the wrapped backend runs the reference in float32) is within 3 ulp
SIGMOID = opcheck.Op("sigmoid", close=opcheck.allclose(rtol=2 * ULP), other_close=opcheck.allclose(rtol=3 * ULP),
                     backward="sigmoid_backward", backward_args=_from_y, backward_close=_backward_close,
                     torch=lambda F, x: F.sigmoid(x))
TANH = opcheck.Op("tanh", close=opcheck.allclose(rtol=2 * ULP), backward="tanh_backward",
                  backward_args=_from_y, backward_close=_backward_close, torch=lambda F, x: F.tanh(x))


@pytest.mark.parametrize("target", opcheck.targets(RELU))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_relu(target, rng, shape):
    opcheck.check(target, RELU, (_rand(rng, shape),), out=True)


@pytest.mark.parametrize("target", opcheck.targets(LEAKY_RELU))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("slope", SLOPES)
def test_leaky_relu(target, rng, shape, slope):
    opcheck.check(target, LEAKY_RELU, (_rand(rng, shape),), dict(slope=slope), out=True)


@pytest.mark.parametrize("target", opcheck.targets(SIGMOID))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_sigmoid(target, rng, shape):
    opcheck.check(target, SIGMOID, (_rand(rng, shape),), out=True)


@pytest.mark.parametrize("target", opcheck.targets(TANH))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_tanh(target, rng, shape):
    opcheck.check(target, TANH, (_rand(rng, shape),), out=True)


def _with_exact_zeros(rng, shape):
    # +0 and -0 at every third position: every vector lane and the masked tail meet one
    x = _rand(rng, shape).ravel()
    x[::3] = 0.0
    x[1::6] = -0.0
    return x.reshape(shape)


ZERO_SHAPES = [(1,), (17,), (4, 129)]


@pytest.mark.parametrize("target", opcheck.targets(RELU, fd=False))
@pytest.mark.parametrize("shape", ZERO_SHAPES, ids=str)
def test_relu_at_exact_zero(target, rng, shape):
    # the kink: relu'(0) = 0 (PyTorch's choice), no finite differences there
    opcheck.check(target, RELU, (_with_exact_zeros(rng, shape),), out=True)


@pytest.mark.parametrize("target", opcheck.targets(LEAKY_RELU, fd=False))
@pytest.mark.parametrize("shape", ZERO_SHAPES, ids=str)
@pytest.mark.parametrize("slope", SLOPES)
def test_leaky_relu_at_exact_zero(target, rng, shape, slope):
    # leaky_relu'(0) = slope (PyTorch's choice)
    opcheck.check(target, LEAKY_RELU, (_with_exact_zeros(rng, shape),), dict(slope=slope), out=True)


@pytest.mark.parametrize("impl", [ops, ref], ids=["native", "reference"])
def test_backward_at_exact_zero_values(impl):
    x = np.float32([0.0, -0.0, 1.0, -1.0] * 5)
    g = np.arange(1, 21, dtype=np.float32)
    pos = x > 0
    np.testing.assert_array_equal(impl.relu_backward(g, x), np.where(pos, g, 0))
    np.testing.assert_array_equal(impl.leaky_relu_backward(g, x, slope=0.25), np.where(pos, g, g * np.float32(0.25)))
    np.testing.assert_array_equal(impl.relu(x), np.where(pos, x, 0))


def test_default_slope_is_0_01(rng):
    x = _rand(rng, (50,))
    np.testing.assert_array_equal(ops.leaky_relu(x), ref.leaky_relu(x, 0.01))
    np.testing.assert_array_equal(ops.leaky_relu_backward(x, x), ref.leaky_relu_backward(x, x, 0.01))


# ---- out= and in-place -------------------------------------------------------------------------

def test_out_and_in_place(rng):
    x = _rand(rng, (5, 37))
    expect = ref.sigmoid(x.astype(np.float64))
    out = np.empty_like(x)
    assert ops.sigmoid(x, out=out) is out
    np.testing.assert_allclose(out, expect, rtol=2 * ULP)
    y = x.copy()
    ops.sigmoid(y, out=y)  # exactly in place
    np.testing.assert_array_equal(y, out)
    g = _rand(rng, x.shape)
    expect_g = ref.relu_backward(g, x)
    ops.relu_backward(g, x, out=g)
    np.testing.assert_array_equal(g, expect_g)


def test_out_partially_overlapping_input(rng):
    buf = _rand(rng, (200,))
    x = buf[:150].copy()
    expect = ref.tanh(x.astype(np.float64))
    # out = buf[50:], input = buf[:150]: overlapping but not the same array
    src = buf[:150]
    src[...] = x
    ops.tanh(src, out=buf[50:])
    np.testing.assert_allclose(buf[50:], expect, rtol=2 * ULP)


# ---- accuracy of the vectorised math (vmath.h), saturation, specials ---------------------------

def _rel_ulps(got, want):
    want = np.asarray(want, np.float64)
    normal = np.abs(want) >= TINY
    rel = np.abs(got.astype(np.float64) - want)[normal] / np.abs(want[normal])
    return rel.max() / ULP


def _denormal_err(got, want):
    want = np.asarray(want, np.float64)
    tiny = (np.abs(want) < TINY)
    if not tiny.any():
        return 0.0
    return np.abs(got.astype(np.float64) - want)[tiny].max() / 2.0**-149


def test_exp_accuracy(isa):
    x = np.linspace(-104, 88.72, 600_001).astype(np.float32)
    want = np.exp(x.astype(np.float64))
    got = _native._vexp(x)
    assert _rel_ulps(got, want) < 1.0
    assert _denormal_err(got, want) <= 1.0


def test_exp_nonpos_accuracy(isa):
    x = np.concatenate([np.linspace(-104, 0, 600_001), -np.geomspace(1e-30, 1, 10_001)]).astype(np.float32)
    want = np.exp(x.astype(np.float64))
    got = _native._vexp_nonpos(x)
    assert _rel_ulps(got, want) < 1.0
    assert _denormal_err(got, want) <= 1.0
    sp = _native._vexp_nonpos(np.float32([-np.inf, -1e30, -105, 0.0, -0.0, np.nan]))
    np.testing.assert_array_equal(sp[:5], np.float32([0, 0, 0, 1, 1]))
    assert np.isnan(sp[5])


def test_log_accuracy(isa):
    x = np.exp(np.linspace(-87, 88, 400_001)).astype(np.float32)
    denormals = np.arange(1, 2**23, 4099, dtype=np.uint32).view(np.float32)
    x = np.concatenate([x[x > 0], denormals, np.float32([1.0, np.nextafter(1, 2, dtype=np.float32),
                                                         np.nextafter(1, 0, dtype=np.float32)])])
    want = np.log(x.astype(np.float64))
    got = _native._vlog(x)
    nonzero = want != 0
    assert _rel_ulps(got[nonzero], want[nonzero]) < 1.0
    assert np.all(got[~nonzero] == 0)


def test_tanh_accuracy(isa):
    x = np.concatenate([np.linspace(-12, 12, 400_001),
                        np.geomspace(1e-38, 1, 20_001), -np.geomspace(1e-38, 1, 20_001)]).astype(np.float32)
    got = ops.tanh(x)
    assert _rel_ulps(got, np.tanh(x.astype(np.float64))) < 1.5


def test_sigmoid_accuracy(isa):
    x = np.linspace(-110, 40, 600_001).astype(np.float32)
    x64 = x.astype(np.float64)
    want = 1 / (1 + np.exp(-x64))
    got = ops.sigmoid(x)
    assert _rel_ulps(got, want) < 2.0
    assert _denormal_err(got, want) <= 1.0


def test_saturation_and_specials(isa):
    with np.errstate(all="ignore"):
        x = np.float32([np.inf, -np.inf, 89.0, 1e30, -1e30, -105.0, 0.0, -0.0, np.nan])
        e = _native._vexp(x)
        np.testing.assert_array_equal(e[:8], np.float32([np.inf, 0, np.inf, np.inf, 0, 0, 1, 1]))
        assert np.isnan(e[8])
        s = ops.sigmoid(x)
        np.testing.assert_array_equal(s[:5], np.float32([1, 0, 1, 1, 0]))
        assert s[5] == 0 and s[6] == 0.5 and np.isnan(s[8])
        t = ops.tanh(x)
        np.testing.assert_array_equal(t[:6], np.float32([1, -1, 1, 1, -1, -1]))
        assert t[6] == 0 and not np.signbit(t[6]) and t[7] == 0 and np.signbit(t[7])
        assert np.isnan(t[8])
        assert np.all(ops.tanh(np.float32([9.1, 20, -9.1])) == np.float32([1, 1, -1]))
        assert np.all(ops.sigmoid(np.float32([17, 50])) == 1)
        lg = _native._vlog(np.float32([0, -0.0, -1, np.inf, np.nan, -np.inf]))
        assert lg[0] == -np.inf and lg[1] == -np.inf and np.isnan(lg[2]) and lg[3] == np.inf
        assert np.isnan(lg[4]) and np.isnan(lg[5])
        r = ops.relu(np.float32([np.nan, -np.inf, np.inf, -1]))
        assert np.isnan(r[0]) and r[1] == 0 and r[2] == np.inf and r[3] == 0
        lr = ops.leaky_relu(np.float32([np.nan, -np.inf]))
        assert np.isnan(lr[0]) and lr[1] == -np.inf


def test_nan_propagates_at_every_lane(isa):
    # a NaN at every position of a vector (and in the masked tail)
    for n in (1, 15, 16, 17, 33):
        for pos in range(n):
            x = np.zeros(n, np.float32)
            x[pos] = np.nan
            for f in (ops.relu, ops.sigmoid, ops.tanh, ops.leaky_relu, _native._vexp):
                y = f(x)
                assert np.isnan(y[pos]) and not np.isnan(np.delete(y, pos)).any()


def test_reference_works_in_float32_and_float64(rng):
    x = rng.standard_normal((4, 5))
    for dt in (np.float32, np.float64):
        xd = x.astype(dt)
        for name in ("relu", "leaky_relu", "sigmoid", "tanh"):
            y = getattr(ref, name)(xd)
            assert y.dtype == dt
            assert getattr(ref, name + "_backward")(xd, y).dtype == dt


# ---- bad inputs --------------------------------------------------------------------------------

@pytest.mark.parametrize("f", [ops.relu, ops.sigmoid, ops.tanh, ops.leaky_relu])
def test_forward_bad_inputs(f):
    with pytest.raises(TypeError, match="x"):
        f(np.zeros(4, np.float64))
    with pytest.raises(TypeError, match="x"):
        f([1.0, 2.0])
    with pytest.raises(ValueError, match="x"):
        f(np.zeros((4, 6), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="out"):
        f(np.zeros(4, np.float32), out=np.zeros(5, np.float32))
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out"):
        f(np.zeros(4, np.float32), out=ro)
    with pytest.raises(TypeError, match="out"):
        f(np.zeros(4, np.float32), out=np.zeros(4, np.float64))


@pytest.mark.parametrize("f,saved", [(ops.relu_backward, "x"), (ops.sigmoid_backward, "y"),
                                     (ops.tanh_backward, "y"), (ops.leaky_relu_backward, "x")])
def test_backward_bad_inputs(f, saved):
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="grad_y"):
        f(np.zeros((4, 3), np.float32), z)
    with pytest.raises(TypeError, match="grad_y"):
        f(z.astype(np.float64), z)
    with pytest.raises(TypeError, match=saved):
        f(z, z.astype(np.float16))
    with pytest.raises(ValueError, match=saved):
        f(z, np.zeros((3, 8), np.float32)[:, ::2])
