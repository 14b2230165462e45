"""softmax / log_softmax (every axis) and softmax_cross_entropy through opcheck (every CPU path
and thread count, every registered backend, the cross-entropy gradient by finite differences,
PyTorch), numerical stability, the softmax Jacobians by finite differences, bad inputs."""
import numpy as np
import pytest

import opcheck
from lamina import ops, reference as ref
from gradcheck import assert_grad_close, numeric_grad

CASES = [  # (shape, axis)
    ((1,), -1), ((17,), 0), ((1, 1), -1), ((3, 1), -1), ((1, 17), -1), ((5, 16), 1), ((7, 33), -1),
    ((7, 33), 0), ((2, 3, 5), 0), ((2, 3, 5), 1), ((2, 3, 5), 2), ((4, 1, 9), 1), ((2, 3, 4, 5), -2),
    ((0, 5), -1), ((3, 0), -1), ((3, 0), 0), ((2, 0, 3), 1),
    ((64, 1000), -1), ((64, 1000), 0), ((3, 200, 50), 1), ((1, 20, 3000), 1), ((2, 2000), 0),
]


def _logits(rng, shape, scale=5.0):
    return np.asarray(rng.standard_normal(shape) * scale, dtype=np.float32)


ULP = 2.0**-23


def _assert_softmax_close(y, x, axis, log, summed=0):
    # float32 cannot hold x - max exactly: exp's argument carries ~|x - max| 2^-24 of absolute
    # error, so the relative error of softmax (absolute, of log_softmax) grows with |x - max|.
    # summed: the ulps a plain float32 sum along the axis may add (float32 NumPy, not native)
    x64 = x.astype(np.float64)
    want = (ref.log_softmax if log else ref.softmax)(x64, axis=axis)
    spread = np.abs(x64 - np.max(x64, axis=axis, keepdims=True)) if x.size else x64
    bound = (8 + summed + spread) * ULP * (1 if log else np.abs(want)) + (np.abs(want) * 4 * ULP if log else 1e-37)
    err = np.abs(y.astype(np.float64) - want)
    assert np.all(err <= bound), float(np.max(err / bound))


def _softmax_close(log, plain_sum=False):
    def close(y, want, args, kw):
        x, axis = args[0], kw["axis"]
        _assert_softmax_close(y, x, axis, log, summed=x.shape[axis] if plain_sum else 0)
        if y.size and not log:
            np.testing.assert_allclose(y.sum(axis=axis, dtype=np.float64), 1.0, rtol=2e-6)
    return close


SOFTMAX = opcheck.Op("softmax", close=_softmax_close(False), other_close=_softmax_close(False, True),
                     torch=lambda F, x, axis: F.softmax(x, dim=axis))
LOG_SOFTMAX = opcheck.Op("log_softmax", close=_softmax_close(True), other_close=_softmax_close(True, True),
                         torch=lambda F, x, axis: F.log_softmax(x, dim=axis))


@pytest.mark.parametrize("target", opcheck.targets(SOFTMAX, LOG_SOFTMAX))
@pytest.mark.parametrize("shape,axis", CASES, ids=str)
def test_softmax_matches_reference(target, rng, shape, axis):
    x = _logits(rng, shape)
    opcheck.check(target, SOFTMAX, (x,), dict(axis=axis))
    opcheck.check(target, LOG_SOFTMAX, (x,), dict(axis=axis))


def test_axis_is_not_silently_the_last_one(rng):
    x = _logits(rng, (4, 6))
    np.testing.assert_allclose(ops.softmax(x, axis=0), ops.softmax(np.ascontiguousarray(x.T)).T, rtol=1e-6)
    np.testing.assert_allclose(ops.softmax(x, axis=-2), ops.softmax(x, axis=0), rtol=0)


def test_stability_huge_logits(isa):
    x = np.float32([[1e30, -1e30, 1e30, 0.0], [1e30, 1e30, 1e30, 1e30], [-1e30] * 4, [3e38, -3e38, 0, 1]])
    y = ops.softmax(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [[0.5, 0, 0.5, 0], [0.25] * 4, [0.25] * 4, [1, 0, 0, 0]], rtol=1e-6)
    ly = ops.log_softmax(x)
    assert np.all(np.isfinite(ly[:3]))  # (-3e38 - 3e38 is -inf in float32: row 3 is exact as is)
    np.testing.assert_array_equal(ly[3], np.float32([0, -np.inf, -3e38, -3e38]))
    np.testing.assert_allclose(ly[1], -np.log(4), rtol=1e-6)
    np.testing.assert_allclose(ly[0, [0, 2]], -np.log(2), rtol=1e-6)
    np.testing.assert_allclose(ly[0, 1], -2e30, rtol=1e-6)
    xt = np.ascontiguousarray(x[:3].T)  # the column kernel too
    np.testing.assert_allclose(ops.softmax(xt, axis=0), y[:3].T, rtol=1e-6)
    np.testing.assert_allclose(ops.log_softmax(xt, axis=0), ly[:3].T, rtol=1e-6)
    loss, grad = ops.softmax_cross_entropy(x, np.array([1, 0, 3, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, (2e30 + np.log(2) + np.log(4) + np.log(4) + 0) / 4, rtol=1e-6)


HUGE = np.float32(1e30)


def _huge_positions(rng, n):
    # the first lane, the last, the first and last of the masked tail (n % 16), the first lane of
    # the second vector, and random ones
    tail = n - n % 16 if n % 16 else n - 16
    fixed = {0, n - 1, n - 2, tail, min(16, n - 1)}
    return sorted(fixed | set(rng.choice(n, size=3, replace=False).tolist()))


def _huge_rows(rng, n, pairs):
    """Rows of N(0, 1) logits with 1e30 at one position each (or at two: pairs=True), and the
    positions; every exp(x - max) but the huge ones' is exactly 0."""
    pos = _huge_positions(rng, n)
    x = rng.standard_normal((len(pos), n)).astype(np.float32)
    second = [(p + 1 + int(rng.integers(n - 1))) % n for p in pos] if pairs else None
    for r, p in enumerate(pos):
        x[r, p] = HUGE
        if pairs:
            x[r, second[r]] = HUGE
    return x, pos, second


@pytest.mark.parametrize("n", [17, 33, 1000])
@pytest.mark.parametrize("pairs", [False, True], ids=["one", "two"])
def test_huge_logits_anywhere(isa, rng, n, pairs):
    # A max (or sum) that misses the masked tail or reads only the first vector overflows
    # exp(1e30 - max) to inf here, or puts the mass in the wrong place.
    x, pos, second = _huge_rows(rng, n, pairs)
    rows = np.arange(len(pos))
    want = np.zeros_like(x)
    want_log = np.full_like(x, -HUGE)  # x_i - 1e30 rounds to -1e30 in float32 for |x_i| < 2**75
    want[rows, pos] = 0.5 if pairs else 1.0
    want_log[rows, pos] = -np.log(2.0) if pairs else 0.0
    if pairs:
        want[rows, second] = 0.5
        want_log[rows, second] = -np.log(2.0)
    for impl in (ops, ref):
        for axis, t in ((-1, lambda a: a), (0, lambda a: np.ascontiguousarray(a.T))):  # rows, columns
            y = impl.softmax(t(x), axis=axis)
            np.testing.assert_allclose(y, t(want), rtol=1e-6, atol=0, err_msg=f"{impl.__name__} softmax axis {axis}")
            ly = impl.log_softmax(t(x), axis=axis)
            np.testing.assert_allclose(ly, t(want_log), rtol=1e-6, atol=0,
                                       err_msg=f"{impl.__name__} log_softmax axis {axis}")
            # the backward's sum(grad_y * y) meets y's mass wherever it is
            g = rng.integers(-8, 9, x.shape).astype(np.float32)
            gs = (g * want).sum(axis=1, keepdims=True)
            gx = impl.softmax_backward(t(g), t(want), axis=axis)
            np.testing.assert_allclose(gx, t(want * (g - gs)), rtol=1e-6, atol=0,
                                       err_msg=f"{impl.__name__} softmax_backward axis {axis}")
        # cross-entropy: the huge logit's own label costs 0, another label costs 1e30 - x_label
        labels = np.array(pos)
        labels[1::2] = (labels[1::2] + 1 + rng.integers(n - 1)) % n
        if pairs:
            labels[1::2] = np.where(labels[1::2] == np.array(second)[1::2], (labels[1::2] + 1) % n, labels[1::2])
        loss, grad = impl.softmax_cross_entropy(x, labels)
        per_row = -np.log(np.float64(want[rows, labels]), where=want[rows, labels] > 0,
                          out=np.full(len(rows), np.nan))
        wrong = want[rows, labels] == 0
        per_row[wrong] = np.float64(HUGE) - x[rows, labels][wrong]
        assert loss == pytest.approx(per_row.mean(), rel=1e-6), impl.__name__
        onehot = np.zeros_like(x)
        onehot[rows, labels] = 1
        np.testing.assert_allclose(grad, (want - onehot) / len(rows), rtol=1e-6, atol=0, err_msg=impl.__name__)


def test_neg_inf_and_nan(isa):
    x = np.float32([[0.0, -np.inf, 1.0], [np.nan, 0.0, 1.0], [1.0, 2.0, 3.0]])
    with np.errstate(invalid="ignore"):
        y = ops.softmax(x)
        ly = ops.log_softmax(x)
        yc = ops.softmax(np.ascontiguousarray(x.T), axis=0).T
    assert y[0, 1] == 0 and ly[0, 1] == -np.inf
    assert np.all(np.isnan(y[1])) and np.all(np.isnan(ly[1])) and np.all(np.isnan(yc[1]))
    np.testing.assert_allclose(y[2], ref.softmax(x[2].astype(np.float64)), rtol=1e-6)


def test_out_and_in_place(rng):
    x = _logits(rng, (5, 70))
    want = ops.softmax(x, axis=0)
    out = np.empty_like(x)
    assert ops.softmax(x, axis=0, out=out) is out
    np.testing.assert_array_equal(out, want)
    for axis in (0, 1):
        y = x.copy()
        ops.log_softmax(y, axis=axis, out=y)
        np.testing.assert_array_equal(y, ops.log_softmax(x, axis=axis))
        y = x.copy()
        ops.softmax(y, axis=axis, out=y)
        np.testing.assert_array_equal(y, ops.softmax(x, axis=axis))
    buf = np.zeros(400, np.float32)
    buf[:350] = x.reshape(-1)
    ops.softmax(buf[:350].reshape(5, 70), out=buf[50:].reshape(5, 70))  # partial overlap
    np.testing.assert_array_equal(buf[50:].reshape(5, 70), ops.softmax(x))


# ---- cross-entropy -----------------------------------------------------------------------------

def _cross_entropy_close(got, want, args, kw):
    n = args[0].shape[0]
    np.testing.assert_allclose(got[0], want[0], rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=2e-6, atol=2e-7 / n)


SOFTMAX_CROSS_ENTROPY = opcheck.Op("softmax_cross_entropy", loss=True, close=_cross_entropy_close,
                                   torch=lambda F, logits, labels: F.cross_entropy(logits, labels))


@pytest.mark.parametrize("target", opcheck.targets(SOFTMAX_CROSS_ENTROPY))
@pytest.mark.parametrize("n,k", [(1, 1), (1, 10), (3, 17), (4, 6), (8, 16), (5, 1000), (256, 130)])
def test_cross_entropy_matches_reference(target, rng, n, k):
    opcheck.check(target, SOFTMAX_CROSS_ENTROPY, (_logits(rng, (n, k)), rng.integers(0, k, size=n)))


def test_cross_entropy_label_dtypes_and_empty(rng):
    logits = _logits(rng, (4, 5))
    want = ops.softmax_cross_entropy(logits, np.array([0, 4, 2, 1]))
    for dt in (np.int32, np.uint8, np.int16, np.uint64):
        got = ops.softmax_cross_entropy(logits, np.array([0, 4, 2, 1], dtype=dt))
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])
    loss, grad = ops.softmax_cross_entropy(np.zeros((0, 5), np.float32), np.zeros(0, np.int64))
    assert np.isnan(loss) and grad.shape == (0, 5)


def test_cross_entropy_same_loss_for_any_thread_count(rng):
    import lamina

    logits = _logits(rng, (300, 700))
    labels = rng.integers(0, 700, size=300)
    before = lamina.get_num_threads()
    try:
        lamina.set_num_threads(1)
        a = ops.softmax_cross_entropy(logits, labels)
        lamina.set_num_threads(2)
        b = ops.softmax_cross_entropy(logits, labels)
    finally:
        lamina.set_num_threads(before)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


def test_reference_softmax_and_log_softmax_by_finite_differences(rng):
    # The forward twins are checked against their Jacobians: for C = sum(w * y),
    # dC/dx = y * (w - sum(w * y)) for softmax and w - softmax * sum(w) for log_softmax.
    x = rng.standard_normal((3, 5))
    w = rng.standard_normal((3, 5))
    for axis in (0, 1):
        y = ref.softmax(x, axis=axis)
        analytic = y * (w - np.sum(w * y, axis=axis, keepdims=True))
        assert_grad_close(analytic, numeric_grad(lambda z: float(np.sum(w * ref.softmax(z, axis=axis))), x))
        analytic = w - y * np.sum(w, axis=axis, keepdims=True)
        assert_grad_close(analytic, numeric_grad(lambda z: float(np.sum(w * ref.log_softmax(z, axis=axis))), x))


# ---- bad inputs --------------------------------------------------------------------------------

def test_softmax_bad_inputs():
    x = np.zeros((3, 4), np.float32)
    for f in (ops.softmax, ops.log_softmax):
        with pytest.raises(ValueError, match="axis"):
            f(x, axis=2)
        with pytest.raises(ValueError, match="axis"):
            f(x, axis=-3)
        with pytest.raises(TypeError, match="axis"):
            f(x, axis=1.0)
        with pytest.raises(TypeError, match="axis"):
            f(x, axis=True)
        with pytest.raises(ValueError, match="x"):
            f(np.zeros((), np.float32))
        with pytest.raises(TypeError, match="x"):
            f(x.astype(np.float64))
        with pytest.raises(ValueError, match="x"):
            f(np.zeros((3, 8), np.float32)[:, ::2])
        with pytest.raises(ValueError, match="out"):
            f(x, out=np.zeros((4, 3), np.float32))


def test_cross_entropy_bad_inputs():
    logits = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"labels\[2\] = 4"):
        ops.softmax_cross_entropy(logits, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match=r"labels\[1\] = -1"):
        ops.softmax_cross_entropy(logits, np.array([0, -1, 4]))
    with pytest.raises(ValueError, match=r"labels\[2\] = 4"):
        ref.softmax_cross_entropy(logits, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match="labels"):
        ops.softmax_cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match="labels"):
        ops.softmax_cross_entropy(logits, np.zeros((3, 1), np.int64))
    with pytest.raises(TypeError, match="labels"):
        ops.softmax_cross_entropy(logits, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="logits"):
        ops.softmax_cross_entropy(np.zeros(4, np.float32), np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="logits"):
        ops.softmax_cross_entropy(logits.astype(np.float64), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="logits"):
        ops.softmax_cross_entropy(np.zeros((3, 8), np.float32)[:, ::2], np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"labels\[0\] = 0"):
        ops.softmax_cross_entropy(np.zeros((2, 0), np.float32), np.zeros(2, np.int64))


# ---- softmax_backward --------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", CASES + [((600, 300), -1), ((300, 600), 0), ((4, 300, 200), 1)], ids=str)
def test_softmax_backward_matches_reference(isa, threads, rng, shape, axis):
    x = _logits(rng, shape, scale=2.0)
    y = ops.softmax(x, axis=axis)
    gy = rng.standard_normal(shape).astype(np.float32)
    gx = ops.softmax_backward(gy, y, axis=axis)
    assert gx.dtype == np.float32 and gx.shape == shape
    want = ref.softmax_backward(gy.astype(np.float64), y.astype(np.float64), axis=axis)
    # error ~ ulp(y * |grad_y - d|) plus y * the float32 rounding of d (a sum of K terms)
    d = np.sum(np.abs(gy.astype(np.float64) * y), axis=axis, keepdims=True) if gy.size else 0
    bound = 4 * ULP * (np.abs(want) + y * (np.abs(gy) + d)) + 1e-30
    assert np.all(np.abs(gx - want) <= bound)
    np.testing.assert_allclose(ref.softmax_backward(gy, y, axis=axis), want, rtol=1e-4, atol=1e-6)


def test_softmax_backward_out_and_aliasing(isa, rng):
    x = _logits(rng, (6, 40))
    for axis in (0, 1):
        y = ops.softmax(x, axis=axis)
        gy = rng.standard_normal(x.shape).astype(np.float32)
        want = ops.softmax_backward(gy, y, axis=axis)
        out = np.empty_like(y)
        assert ops.softmax_backward(gy, y, axis=axis, out=out) is out
        np.testing.assert_array_equal(out, want)
        g2 = gy.copy()
        assert ops.softmax_backward(g2, y, axis=axis, out=g2) is g2  # out = grad_y
        np.testing.assert_array_equal(g2, want)
        y2 = y.copy()
        ops.softmax_backward(gy, y2, axis=axis, out=y2)  # out = y
        np.testing.assert_array_equal(y2, want)
    buf = np.zeros(300, np.float32)
    y = ops.softmax(x[:, :40])
    buf[:240] = y.reshape(-1)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    want = ops.softmax_backward(gy, y)
    ops.softmax_backward(gy, buf[:240].reshape(6, 40), out=buf[60:].reshape(6, 40))  # partial overlap
    np.testing.assert_array_equal(buf[60:].reshape(6, 40), want)


def test_reference_softmax_backward_by_finite_differences(rng):
    for shape, axis in [((3, 5), 0), ((3, 5), 1), ((2, 3, 4), 1), ((7,), -1)]:
        x = rng.standard_normal(shape)
        w = rng.standard_normal(shape)
        analytic = ref.softmax_backward(w, ref.softmax(x, axis=axis), axis=axis)
        numeric = numeric_grad(lambda z: float(np.sum(w * ref.softmax(z, axis=axis))), x)
        assert_grad_close(analytic, numeric)


def test_softmax_backward_bad_inputs():
    y = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="grad_y"):
        ops.softmax_backward(np.zeros((4, 3), np.float32), y)
    with pytest.raises(ValueError, match="grad_y"):
        ref.softmax_backward(np.zeros((4, 3), np.float32), y)
    with pytest.raises(TypeError, match="grad_y"):
        ops.softmax_backward(y.astype(np.float64), y)
    with pytest.raises(TypeError, match="y"):
        ops.softmax_backward(y, [[0.0] * 4] * 3)
    with pytest.raises(ValueError, match="y"):
        ops.softmax_backward(y, np.zeros((3, 8), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="axis"):
        ops.softmax_backward(y, y, axis=2)
    with pytest.raises(TypeError, match="axis"):
        ops.softmax_backward(y, y, axis=0.5)
    with pytest.raises(ValueError, match="out"):
        ops.softmax_backward(y, y, out=np.zeros(12, np.float32))
    ro = y.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out"):
        ops.softmax_backward(y, y, out=ro)


@pytest.mark.parametrize("axis", [None, 1.0])
def test_softmax_backward_takes_one_integer_axis_everywhere(axis):
    # the reference and the native kernel agree: an axis that is not one int is a TypeError
    # (None would otherwise sum over every axis in NumPy)
    from lamina import backend
    a = np.full((3, 4), 0.25, np.float32)
    for fn in (ref.softmax_backward, backend.get_backend("native").softmax_backward):
        with pytest.raises(TypeError, match=r"\baxis\b"):
            fn(a, a, axis=axis)
