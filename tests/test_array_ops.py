"""The array family (fill, copy, transpose, add, scale, gather_rows, argmax, all_finite, dot):
native vs reference on every CPU path and thread count, odd and empty sizes, strided x and out,
aliasing out, integer dtypes, NaN / inf, bad inputs naming the argument."""
import numpy as np
import pytest

from lamina import ops, reference as ref

SHAPES = [(0,), (1,), (7,), (16,), (33,), (3, 5), (2, 3, 17), (0, 4), (4, 0, 3), (300, 257), (1000, 257)]
# (the last is large enough to be split over 2 threads)
INT_AND_FLOAT = [np.float32, np.int32, np.int64]


def _rand(rng, shape, dtype=np.float32):
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-1000, 1000, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# ---- fill --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fill(isa, threads, shape):
    x = np.full(shape, 3.0, np.float32)
    assert ops.fill(x, -1.5) is x
    np.testing.assert_array_equal(x, np.full(shape, -1.5, np.float32))
    r = np.zeros(shape)
    assert ref.fill(r, 2) is r and np.all(r == 2)


def test_fill_large_and_special_values(isa, threads):
    x = np.zeros(1_000_003, np.float32)
    ops.fill(x, np.inf)
    assert np.all(x == np.inf)
    ops.fill(x, np.float32(np.nan))
    assert np.all(np.isnan(x))


# ---- copy / transpose --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", INT_AND_FLOAT)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_copy_contiguous(isa, threads, rng, shape, dtype):
    x = _rand(rng, shape, dtype)
    y = ops.copy(x)
    assert y.dtype == dtype and y.shape == x.shape and y.flags.c_contiguous
    assert not np.shares_memory(x, y)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(ref.copy(x), x)


STRIDED_X = [  # (base shape, view of it)
    ((6, 10), lambda a: a[:, ::2]), ((6, 10), lambda a: a[::-1, 1:]), ((6, 10), lambda a: a.T),
    ((5, 7, 9), lambda a: a[:, 1:, ::3]), ((5, 7, 9), lambda a: a.transpose(2, 0, 1)),
    ((4, 1, 33), lambda a: a[..., ::-1]), ((300, 301), lambda a: a[1:, :-1].T),
    ((700, 401), lambda a: a[1:, :-1].T), ((2000, 300), lambda a: a[::2, 1:]),
    ((2, 3, 4, 5), lambda a: a[:, ::2].transpose(3, 1, 0, 2)),
]


@pytest.mark.parametrize("dtype", INT_AND_FLOAT)
@pytest.mark.parametrize("case", range(len(STRIDED_X)))
def test_copy_strided_x(isa, threads, rng, case, dtype):
    shape, view = STRIDED_X[case]
    x = view(_rand(rng, shape, dtype))
    y = ops.copy(x)
    assert y.flags.c_contiguous
    np.testing.assert_array_equal(y, x)


def test_copy_broadcast_x(isa):
    x = np.broadcast_to(np.arange(5, dtype=np.float32), (3, 5))
    np.testing.assert_array_equal(ops.copy(x), x)


@pytest.mark.parametrize("dtype", INT_AND_FLOAT)
def test_copy_into_strided_out(isa, threads, rng, dtype):
    F = 37
    W = np.zeros((50, 2 * F + 3), dtype)
    x = _rand(rng, (50, F), dtype)
    assert ops.copy(x, out=W[:, :F]) is not None
    np.testing.assert_array_equal(W[:, :F], x)
    assert np.all(W[:, F:] == 0)
    U = np.zeros((4, 6, 2 * F), dtype)  # a (T, N, 2F) buffer, the second half of step t
    xs = _rand(rng, (6, F), dtype)
    out = U[2, :, F:]
    assert ops.copy(xs, out=out) is out
    np.testing.assert_array_equal(U[2, :, F:], xs)
    U[2, :, F:] = 0
    assert np.all(U == 0)
    # both strided
    x2 = _rand(rng, (12, 2 * F), dtype)[::2, ::2]
    ops.copy(x2, out=U[1, :, :F])
    np.testing.assert_array_equal(U[1, :, :F], x2)
    # reference semantics agree
    R = np.zeros_like(W)
    ref.copy(x, out=R[:, :F])
    np.testing.assert_array_equal(R, W)


@pytest.mark.parametrize("shape,axes", [
    ((3, 4), (1, 0)), ((1, 9), (1, 0)), ((33, 17), (1, 0)), ((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (0, 2, 1)),
    ((2, 3, 4), (0, 1, 2)), ((5, 1, 7, 3), (3, 2, 1, 0)), ((0, 3), (1, 0)), ((3, 0, 2), (2, 1, 0)),
    ((7,), (0,)), ((), ()), ((257, 300), (1, 0)), ((64, 8, 65), (1, 2, 0)), ((701, 300), (1, 0)),
    ((3, 200, 333), (0, 2, 1)), ((40, 50, 70), (2, 0, 1)),
], ids=str)
@pytest.mark.parametrize("dtype", INT_AND_FLOAT)
def test_transpose(isa, threads, rng, shape, axes, dtype):
    x = _rand(rng, shape, dtype)
    y = ops.transpose(x, axes)
    want = x.transpose(axes)
    assert y.flags.c_contiguous and y.dtype == dtype and y.shape == want.shape
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(ref.transpose(x, axes), want)


def test_transpose_into_strided_out(isa, threads, rng):
    T, N, F = 3, 5, 8
    x = _rand(rng, (F, N))
    U = np.zeros((T, N, 2 * F), np.float32)
    ops.transpose(x, (1, 0), out=U[1, :, F:])
    np.testing.assert_array_equal(U[1, :, F:], x.T)
    assert np.all(U[0] == 0) and np.all(U[1, :, :F] == 0) and np.all(U[2] == 0)
    # strided x and strided out at once, 3-D
    x3 = _rand(rng, (4, 6, 10))[:, ::2, 1::3]  # (4, 3, 3)
    out = np.zeros((3, 8, 4), np.float32)[:, ::3, :]  # (3, 3, 4)
    ops.transpose(x3, (2, 1, 0), out=out)
    np.testing.assert_array_equal(out, x3.transpose(2, 1, 0))


def test_copy_and_transpose_overlapping_out(isa, rng):
    a = _rand(rng, (6, 6))
    want = a.T.copy()
    assert ops.transpose(a, (1, 0), out=a) is a  # in place through a temporary
    np.testing.assert_array_equal(a, want)
    b = _rand(rng, 20)
    want = b[:-2].copy()
    ops.copy(b[:-2], out=b[2:])
    np.testing.assert_array_equal(b[2:], want)
    c = _rand(rng, 20)
    want = c[::-1].copy()
    ops.copy(c[::-1], out=c)
    np.testing.assert_array_equal(c, want)


def test_copy_transpose_bad_inputs():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.copy([1.0, 2.0])
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.copy(x.astype(np.float64))
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.copy(x.astype(np.int16))
    with pytest.raises(TypeError, match=r"\bout\b"):
        ops.copy(x, out=np.zeros((3, 4), np.int32))
    with pytest.raises(ValueError, match=r"\bout\b"):
        ops.copy(x, out=np.zeros((4, 3), np.float32))
    ro = np.zeros((3, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"\bout\b"):
        ops.copy(x, out=ro)
    for bad in [(0, 0), (0,), (0, 1, 2), (1, 2), (-1, 0)]:
        with pytest.raises(ValueError, match=r"\baxes\b"):
            ops.transpose(x, bad)
        with pytest.raises(ValueError, match=r"\baxes\b"):
            ref.transpose(x, bad)
    with pytest.raises(TypeError, match=r"\baxes\b"):
        ops.transpose(x, 1)
    with pytest.raises(TypeError, match=r"\baxes\b"):
        ops.transpose(x, (0.0, 1.0))
    with pytest.raises(ValueError, match=r"\bout\b"):
        ops.transpose(x, (1, 0), out=np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"\bout\b"):
        ref.copy(x, out=np.zeros((4, 3), np.float32))


# ---- add / scale -------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("alpha", [1.0, -0.5, 0.0, 3])
def test_add(isa, threads, rng, shape, alpha):
    a, b = _rand(rng, shape), _rand(rng, shape)
    y = ops.add(a, b, alpha)
    assert y.dtype == np.float32 and y.shape == shape
    want = ref.add(a.astype(np.float64), b.astype(np.float64), alpha)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ref.add(a, b, alpha), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ops.add(a, b), a + b)


@pytest.mark.parametrize("shape", [(1,), (33,), (300, 257)], ids=str)
def test_add_aliasing_out(isa, threads, rng, shape):
    g, d = _rand(rng, shape), _rand(rng, shape)
    want = g + np.float32(0.25) * d
    assert ops.add(g, d, 0.25, out=g) is g  # in-place accumulation
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-7)
    g2, d2 = _rand(rng, shape), _rand(rng, shape)
    want = g2 + d2
    ops.add(g2, d2, out=d2)
    np.testing.assert_allclose(d2, want, rtol=1e-6)
    h = _rand(rng, shape)
    want = np.float32(3) * h
    ops.add(h, h, 2.0, out=h)  # a, b and out all the same array
    np.testing.assert_allclose(h, want, rtol=1e-6)
    # partial overlap goes through a temporary
    buf = _rand(rng, 41)
    a, b = buf[:40].copy(), buf[1:].copy()
    ops.add(buf[:40], buf[1:], 2.0, out=buf[1:])
    np.testing.assert_allclose(buf[1:], a + 2 * b, rtol=1e-6, atol=1e-6)


def test_add_self_in_place(isa):
    h = np.arange(50, dtype=np.float32)
    ops.add(h, h, 1.0, out=h)
    np.testing.assert_array_equal(h, 2 * np.arange(50, dtype=np.float32))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_scale(isa, threads, rng, shape):
    x = _rand(rng, shape)
    np.testing.assert_array_equal(ops.scale(x, -2.5), np.float32(-2.5) * x)
    np.testing.assert_array_equal(ref.scale(x, -2.5), np.float32(-2.5) * x)
    want = np.float32(0.5) * x
    assert ops.scale(x, 0.5, out=x) is x
    np.testing.assert_array_equal(x, want)


def test_add_scale_nonfinite(isa):
    a = np.float32([np.inf, np.nan, 1, -np.inf])
    np.testing.assert_array_equal(ops.add(a, np.ones(4, np.float32)), a + 1)
    np.testing.assert_array_equal(ops.scale(a, 2.0), 2 * a)


def test_add_scale_bad_inputs():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"\bb\b"):
        ops.add(a, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\bb\b"):
        ref.add(a, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\bb\b"):
        ops.add(a, np.zeros((1, 4), np.float32))  # no broadcasting
    with pytest.raises(TypeError, match=r"\ba\b"):
        ops.add(a.astype(np.float64), a)
    with pytest.raises(TypeError, match=r"\bb\b"):
        ops.add(a, a.astype(np.int32))
    with pytest.raises(TypeError, match=r"\balpha\b"):
        ops.add(a, a, "2")
    with pytest.raises(ValueError, match=r"\ba\b"):
        ops.add(np.zeros((3, 8), np.float32)[:, ::2], a)
    with pytest.raises(ValueError, match=r"\bout\b"):
        ops.add(a, a, out=np.zeros(12, np.float32))
    with pytest.raises(TypeError, match=r"\bout\b"):
        ops.add(a, a, out=np.zeros((3, 4)))
    ro = a.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"\bout\b"):
        ops.scale(a, 2.0, out=ro)
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.scale([1.0], 2.0)
    with pytest.raises(TypeError, match=r"\balpha\b"):
        ops.scale(a, None)
    with pytest.raises(ValueError, match=r"\bx\b"):
        ops.fill(ro, 1.0)
    with pytest.raises(ValueError, match=r"\bx\b"):
        ref.fill(ro, 1.0)
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.fill(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match=r"\bx\b"):
        ops.fill(np.zeros((3, 8), np.float32)[:, ::2], 1.0)
    with pytest.raises(TypeError, match=r"\bvalue\b"):
        ops.fill(a, "1")


# ---- gather_rows -------------------------------------------------------------------------
@pytest.mark.parametrize("xdtype", INT_AND_FLOAT)
@pytest.mark.parametrize("idtype", [np.int64, np.int32])
@pytest.mark.parametrize("xshape,m", [((10,), 7), ((10, 3), 25), ((5, 2, 7), 5), ((1, 33), 3), ((6, 4), 0),
                                      ((6, 0), 4), ((3000, 64), 5000)], ids=str)
def test_gather_rows(isa, threads, rng, xshape, m, xdtype, idtype):
    x = _rand(rng, xshape, xdtype)
    idx = rng.integers(0, xshape[0], size=m).astype(idtype)
    y = ops.gather_rows(x, idx)
    assert y.dtype == xdtype and y.shape == (m,) + xshape[1:]
    np.testing.assert_array_equal(y, x[idx])
    np.testing.assert_array_equal(ref.gather_rows(x, idx), x[idx])
    out = np.empty((m,) + xshape[1:], xdtype)
    assert ops.gather_rows(x, idx, out=out) is out
    np.testing.assert_array_equal(out, x[idx])


def test_gather_rows_strided_indices_and_overlap(isa, rng):
    x = _rand(rng, (8, 5))
    idx = np.arange(16, dtype=np.int64)[::-2] % 8
    np.testing.assert_array_equal(ops.gather_rows(x, idx), x[idx])
    want = x[[3, 3, 0, 7, 1, 2, 4, 5]]
    ops.gather_rows(x, np.int64([3, 3, 0, 7, 1, 2, 4, 5]), out=x)  # out is x: via a temporary
    np.testing.assert_array_equal(x, want)


def test_gather_rows_bad_inputs():
    x = np.zeros((4, 3), np.float32)
    for bad, v in [([0, 4], 4), ([-1, 0], -1), ([1, 2, 1 << 40], 1 << 40)]:
        for mod in (ops, ref):
            with pytest.raises(ValueError, match=rf"indices.*{v}"):
                mod.gather_rows(x, np.array(bad, np.int64))
    with pytest.raises(ValueError, match=r"indices\[1\] = 9"):
        ops.gather_rows(x, np.int32([0, 9]))
    with pytest.raises(TypeError, match=r"\bindices\b"):
        ops.gather_rows(x, np.array([0, 1], np.uint8))
    with pytest.raises(TypeError, match=r"\bindices\b"):
        ref.gather_rows(x, np.array([0, 1], np.uint8))
    with pytest.raises(TypeError, match=r"\bindices\b"):
        ops.gather_rows(x, np.float32([0, 1]))
    with pytest.raises(TypeError, match=r"\bindices\b"):
        ops.gather_rows(x, [0, 1])
    with pytest.raises(ValueError, match=r"\bindices\b"):
        ops.gather_rows(x, np.zeros((2, 1), np.int64))
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.gather_rows(x.astype(np.float64), np.int64([0]))
    with pytest.raises(ValueError, match=r"\bx\b"):
        ops.gather_rows(np.zeros((4, 6), np.float32)[:, ::2], np.int64([0]))
    with pytest.raises(ValueError, match=r"\bx\b"):
        ops.gather_rows(np.array(1.0, np.float32), np.int64([0]))
    with pytest.raises(ValueError, match=r"\bout\b"):
        ops.gather_rows(x, np.int64([0, 1]), out=np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"\bout\b"):
        ops.gather_rows(x, np.int64([0, 1]), out=np.zeros((2, 6), np.float32)[:, ::2])
    with pytest.raises(TypeError, match=r"\bout\b"):
        ops.gather_rows(x, np.int64([0, 1]), out=np.zeros((2, 3), np.int32))


# ---- argmax ------------------------------------------------------------------------------
ARGMAX_CASES = [((1,), -1), ((17,), 0), ((5, 16), 1), ((7, 33), 0), ((2, 3, 5), 1), ((2, 3, 5), 0),
                ((2, 3, 5), -1), ((0, 4), 1), ((4, 0, 3), 2), ((64, 1000), -1), ((300, 1000), -1), ((3, 2000, 5), 1),
                ((3, 2000, 50), 1), ((2000, 70), 0),
                ((2, 5, 1500), 1)]


@pytest.mark.parametrize("shape,axis", ARGMAX_CASES, ids=str)
def test_argmax(isa, threads, rng, shape, axis):
    x = _rand(rng, shape)
    y = ops.argmax(x, axis)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, np.argmax(x, axis=axis))
    np.testing.assert_array_equal(ref.argmax(x, axis), np.argmax(x, axis=axis))


@pytest.mark.parametrize("axis", [0, 1])
def test_argmax_ties_nan_inf(isa, threads, rng, axis):
    x = rng.integers(0, 3, size=(40, 37)).astype(np.float32)  # many ties: the first wins
    x[5, 3] = np.nan
    x[9, 3] = np.nan
    x[0, 7] = np.inf
    x[20, 7] = np.nan
    x[:, 11] = -np.inf
    x[3, 12] = np.nan
    x[0, 12] = np.nan
    if axis == 0:
        x[17, :] = np.nan
    y = ops.argmax(x, axis)
    np.testing.assert_array_equal(y, np.argmax(x, axis=axis))
    np.testing.assert_array_equal(ref.argmax(x, axis), np.argmax(x, axis=axis))
    np.testing.assert_array_equal(ops.argmax(np.full((3, 5), -np.inf, np.float32)), [0, 0, 0])
    np.testing.assert_array_equal(ops.argmax(np.float32([[np.nan, 1], [2, np.nan]])), [0, 1])


def test_argmax_bad_inputs():
    with pytest.raises(ValueError, match=r"\bx\b"):
        ops.argmax(np.array(1.0, np.float32))
    with pytest.raises(ValueError, match=r"\bx\b"):
        ref.argmax(np.array(1.0, np.float32))
    with pytest.raises(ValueError, match=r"\baxis\b"):
        ops.argmax(np.zeros((2, 3), np.float32), 2)
    with pytest.raises(ValueError, match=r"\baxis\b"):
        ref.argmax(np.zeros((2, 3), np.float32), -3)
    with pytest.raises(TypeError, match=r"\baxis\b"):
        ops.argmax(np.zeros((2, 3), np.float32), 1.0)
    with pytest.raises(ValueError, match=r"\bempty\b"):
        ops.argmax(np.zeros((2, 0), np.float32))
    with pytest.raises(ValueError, match=r"\bempty\b"):
        ref.argmax(np.zeros((2, 0), np.float32))
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.argmax(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\bx\b"):
        ops.argmax(np.zeros((2, 6), np.float32)[:, ::2])


# ---- all_finite --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 7, 16, 33, 4095, 4097, 1_000_001])
def test_all_finite(isa, threads, rng, n):
    x = _rand(rng, n)
    assert ops.all_finite(x) is True and ref.all_finite(x) is True
    if n == 0:
        return
    big = np.float32([3.4e38, -3.4e38, 1e-45])  # huge and denormal values are finite
    assert ops.all_finite(np.concatenate([x, big]))
    for bad in (np.nan, np.inf, -np.inf):
        for pos in {0, n // 2, n - 1}:
            y = x.copy()
            y[pos] = bad
            assert ops.all_finite(y) is False, (bad, pos)
            assert ref.all_finite(y) is False


def test_all_finite_nd_and_bad_inputs(isa):
    x = np.zeros((3, 4, 5), np.float32)
    assert ops.all_finite(x)
    x[2, 3, 4] = np.nan
    assert not ops.all_finite(x)
    assert ops.all_finite(np.zeros((0, 3), np.float32))
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.all_finite(np.zeros(3))
    with pytest.raises(TypeError, match=r"\bx\b"):
        ops.all_finite([1.0])
    with pytest.raises(ValueError, match=r"\bx\b"):
        ops.all_finite(np.zeros((3, 8), np.float32)[:, ::2])


# ---- dot ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES + [(1_000_003,)], ids=str)
def test_dot(isa, threads, rng, shape):
    a, b = _rand(rng, shape), _rand(rng, shape)
    d = ops.dot(a, b)
    assert type(d) is float
    want = float(np.sum(a.astype(np.float64) * b.astype(np.float64)))
    bound = 1e-14 * float(np.sum(np.abs(a.astype(np.float64) * b))) + 1e-300
    assert abs(d - want) <= bound
    assert abs(ref.dot(a, b) - want) <= bound
    np.testing.assert_allclose(ops.dot(a, a), float(np.sum(a.astype(np.float64) ** 2)), rtol=1e-13)


def test_dot_accumulates_in_double_and_is_thread_count_exact(isa, rng):
    import lamina
    a = np.ones(1 << 25 >> 3, np.float32)  # 4M ones: a float32 sum would still be exact here
    a[0] = 1e8                             # ... but 1e8 + 1 + 1 ... loses every 1 in float32
    assert ops.dot(a, np.ones_like(a)) == 1e8 + (a.size - 1)
    x, y = _rand(rng, 300_001), _rand(rng, 300_001)
    before = lamina.get_num_threads()
    try:
        lamina.set_num_threads(1)
        d1 = ops.dot(x, y)
        lamina.set_num_threads(2)
        d2 = ops.dot(x, y)
    finally:
        lamina.set_num_threads(before)
    assert d1 == d2
    assert ops.dot(np.float32([np.inf, 1]), np.float32([1, 1])) == np.inf
    assert np.isnan(ops.dot(np.float32([np.nan, 1]), np.float32([1, 1])))


def test_dot_bad_inputs():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"\bb\b"):
        ops.dot(a, np.zeros(12, np.float32))
    with pytest.raises(ValueError, match=r"\bb\b"):
        ref.dot(a, np.zeros(12, np.float32))
    with pytest.raises(TypeError, match=r"\ba\b"):
        ops.dot(a.astype(np.float64), a)
    with pytest.raises(TypeError, match=r"\bb\b"):
        ops.dot(a, [0.0])
    with pytest.raises(ValueError, match=r"\ba\b"):
        ops.dot(np.zeros((3, 8), np.float32)[:, ::2], a)


def test_reference_float64():
    x = np.arange(6.0).reshape(2, 3)
    assert ref.transpose(x, (1, 0)).dtype == np.float64
    assert ref.add(x, x, 0.5).dtype == np.float64
    assert ref.scale(x, 2).dtype == np.float64
    assert ref.gather_rows(x, np.int32([1])).dtype == np.float64
    assert ref.dot(x, x) == 55.0
