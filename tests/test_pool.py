"""max_pool2d / avg_pool2d and their backward passes through opcheck: every implementation
(every CPU path and thread count, every registered backend) against the reference (odd sizes,
kernel = input, stride > kernel, padding, rectangular windows), the reference backward passes
by finite differences, PyTorch; then ties, NaN, -inf and bad inputs."""
import numpy as np
import pytest

import opcheck
from lamina import ops, reference as ref

CASES = [  # (x shape, kernel_size, stride, padding)
    ((1, 1, 1, 1), 1, None, 0),
    ((2, 3, 5, 7), 2, None, 0),
    ((2, 3, 5, 7), 3, 1, 1),
    ((1, 2, 6, 6), (2, 3), (1, 2), (1, 1)),
    ((2, 1, 7, 5), 3, 2, 1),
    ((1, 1, 4, 4), 4, None, 0),
    ((1, 1, 4, 4), 4, None, 2),
    ((2, 2, 9, 9), 2, 3, 0),
    ((1, 3, 33, 35), 5, 2, 2),
    ((3, 4, 24, 24), 2, None, 0),
    ((2, 1, 1, 40), (1, 3), (1, 2), (0, 1)),
    ((1, 2, 3, 70), 3, 1, 1),
    ((2, 64, 6, 6), 2, 2, 1),
    ((1, 1, 19, 37), (4, 2), (3, 1), (2, 1)),
    ((0, 3, 4, 4), 2, None, 0),
    ((4, 8, 28, 28), 2, None, 0),
    # small enough for finite differences on every element
    ((1, 2, 5, 7), 3, 1, 1),
    ((1, 2, 7, 5), 3, 2, 1),
    ((1, 2, 4, 4), 4, None, 2),
]


def _args(case):
    shape, k, s, p = case
    return dict(kernel_size=k, stride=s, padding=p)


# max pooling picks: bit for bit the reference's values and indices
MAX_POOL2D = opcheck.Op("max_pool2d", close=opcheck.EXACT, y=0, backward="max_pool2d_backward",
                        backward_args=lambda a, kw, out, gy: ((gy, out[1], a[0].shape), {}),
                        backward_close=opcheck.allclose(rtol=1e-6, atol=1e-6),
                        torch=lambda F, x, **kw: F.max_pool2d(x, **kw, return_indices=True))
AVG_POOL2D = opcheck.Op("avg_pool2d", close=opcheck.allclose(rtol=1e-5, atol=1e-6), backward="avg_pool2d_backward",
                        backward_args=lambda a, kw, out, gy: ((gy, a[0].shape), kw),
                        backward_close=opcheck.allclose(rtol=1e-5, atol=1e-6),
                        torch=lambda F, x, **kw: F.avg_pool2d(x, **kw))  # count_include_pad=True


@pytest.mark.parametrize("target", opcheck.targets(MAX_POOL2D))
@pytest.mark.parametrize("case", CASES, ids=str)
def test_max_pool2d(target, rng, case):
    opcheck.check(target, MAX_POOL2D, (rng.standard_normal(case[0]).astype(np.float32),), _args(case))


@pytest.mark.parametrize("target", opcheck.targets(AVG_POOL2D))
@pytest.mark.parametrize("case", CASES, ids=str)
def test_avg_pool2d(target, rng, case):
    opcheck.check(target, AVG_POOL2D, (rng.standard_normal(case[0]).astype(np.float32),), _args(case))


@pytest.mark.parametrize("target", opcheck.targets(MAX_POOL2D, fd=False))
@pytest.mark.parametrize("case", CASES[:14], ids=str)
def test_max_pool_ties_go_to_the_first_maximum(target, rng, case):
    x = rng.integers(0, 3, size=case[0]).astype(np.float32)  # many ties
    opcheck.check(target, MAX_POOL2D, (x,), _args(case), backward=False)


def test_max_pool_tie_prefers_earlier_row_over_earlier_column(isa):
    x = np.float32([[1, 5], [5, 0]]).reshape(1, 1, 2, 2)
    y, idx = ops.max_pool2d(x, 2)
    assert y.item() == 5 and idx.item() == 1  # (0, 1) comes before (1, 0) in row-major order


@pytest.mark.parametrize("target", opcheck.targets(MAX_POOL2D, fd=False))
@pytest.mark.parametrize("case", CASES[:14], ids=str)
def test_max_pool_nan_and_neg_inf(target, rng, case):
    x = rng.standard_normal(case[0]).astype(np.float32)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, size=max(1, flat.size // 7), replace=False)] = np.nan
    flat[rng.choice(flat.size, size=max(1, flat.size // 5), replace=False)] = -np.inf
    opcheck.check(target, MAX_POOL2D, (x,), _args(case), backward=False)  # NaN == NaN here


def test_all_neg_inf_window_indexes_an_input_cell(isa):
    x = np.full((1, 1, 3, 3), -np.inf, np.float32)
    y, idx = ops.max_pool2d(x, 3, stride=1, padding=1)
    assert np.all(y == -np.inf)
    np.testing.assert_array_equal(idx.reshape(3, 3), [[0, 0, 1], [0, 0, 1], [3, 3, 4]])
    np.testing.assert_array_equal(ref.max_pool2d(x, 3, stride=1, padding=1)[1], idx)


def test_backward_accumulates_overlapping_windows(isa):
    x = np.zeros((1, 1, 3, 3), np.float32)
    x[0, 0, 1, 1] = 1  # the max of all four 2x2 stride-1 windows
    y, idx = ops.max_pool2d(x, 2, stride=1)
    gx = ops.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    assert gx[0, 0, 1, 1] == 4 and gx.sum() == 4


# ---- bad inputs --------------------------------------------------------------------------------

@pytest.mark.parametrize("f", [ops.max_pool2d, ops.avg_pool2d, ref.max_pool2d, ref.avg_pool2d])
def test_bad_geometry(f):
    x = np.zeros((2, 3, 6, 6), np.float32)
    with pytest.raises(ValueError, match="kernel_size"):
        f(x, 0)
    with pytest.raises(ValueError, match="stride"):
        f(x, 2, stride=0)
    with pytest.raises(ValueError, match="stride"):
        f(x, 2, stride=(1, 0))
    with pytest.raises(ValueError, match="padding"):
        f(x, 2, padding=-1)
    with pytest.raises(ValueError, match="padding"):
        f(x, 3, padding=2)
    with pytest.raises(ValueError, match="padding"):
        f(x, (4, 2), padding=(2, 2))
    with pytest.raises(ValueError, match="kernel_size"):
        f(x, 7)
    with pytest.raises(ValueError, match="kernel_size"):
        f(x, (2, 9), padding=(0, 1))
    with pytest.raises(ValueError, match="kernel_size"):
        f(x, (2, 2, 2))
    with pytest.raises(TypeError, match="kernel_size"):
        f(x, 2.0)
    with pytest.raises(TypeError, match="kernel_size"):
        f(x, True)
    with pytest.raises(TypeError, match="stride"):
        f(x, 2, stride="1")
    with pytest.raises(ValueError, match="height and width"):
        f(np.zeros((1, 1, 0, 4), np.float32), 1)


@pytest.mark.parametrize("f", [ops.max_pool2d, ops.avg_pool2d])
def test_bad_x(f):
    with pytest.raises(ValueError, match="x"):
        f(np.zeros((3, 6, 6), np.float32), 2)
    with pytest.raises(TypeError, match="x"):
        f(np.zeros((1, 3, 6, 6), np.float64), 2)
    with pytest.raises(ValueError, match="x"):
        f(np.zeros((1, 3, 6, 12), np.float32)[..., ::2], 2)


def test_pair_arguments_accept_numpy_ints_and_lists(rng):
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    want = ops.max_pool2d(x, (2, 3), (1, 2), (1, 1))
    got = ops.max_pool2d(x, [np.int64(2), 3], stride=[1, np.int32(2)], padding=(1, 1))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_max_pool_backward_bad_inputs(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    y, idx = ops.max_pool2d(x, 2)
    g = np.ones_like(y)
    bad = idx.copy()
    bad[1, 2, 0, 1] = 16
    with pytest.raises(ValueError, match=r"indices\[1, 2, 0, 1\] = 16"):
        ops.max_pool2d_backward(g, bad, x.shape)
    with pytest.raises(ValueError, match=r"indices\[1, 2, 0, 1\] = 16"):
        ref.max_pool2d_backward(g, bad, x.shape)
    bad[0, 0, 1, 0] = -1
    with pytest.raises(ValueError, match=r"indices\[0, 0, 1, 0\] = -1"):
        ops.max_pool2d_backward(g, bad, x.shape)
    with pytest.raises(ValueError, match="indices"):
        ops.max_pool2d_backward(g, idx[:, :, :1], x.shape)
    with pytest.raises(TypeError, match="indices"):
        ops.max_pool2d_backward(g, idx.astype(np.float32), x.shape)
    with pytest.raises(ValueError, match="input_shape"):
        ops.max_pool2d_backward(g, idx, (2, 4, 4, 4))
    with pytest.raises(ValueError, match="input_shape"):
        ops.max_pool2d_backward(g, idx, (2, 3, 4))
    with pytest.raises(TypeError, match="input_shape"):
        ops.max_pool2d_backward(g, idx, 5)
    with pytest.raises(ValueError, match="grad_y"):
        ops.max_pool2d_backward(g[0], idx[0], x.shape)
    # indices from a smaller plane are fine; into a larger plane they are out of range
    g = np.arange(1, g.size + 1, dtype=np.float32).reshape(g.shape)
    wider = ops.max_pool2d_backward(g, idx, (2, 3, 4, 5))
    assert wider.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(wider, ref.max_pool2d_backward(g, idx, (2, 3, 4, 5)))
    # the flat index i of a 4x4 plane is cell (i // 5, i % 5) of a 4x5 one
    want = np.zeros((2, 3, 20), np.float32)
    np.add.at(want, (np.arange(2)[:, None, None], np.arange(3)[None, :, None], idx.reshape(2, 3, -1)),
              g.reshape(2, 3, -1))
    np.testing.assert_array_equal(wider, want.reshape(2, 3, 4, 5))
    with pytest.raises(ValueError, match="indices"):
        ops.max_pool2d_backward(g, idx, (2, 3, 2, 2))


def test_avg_pool_backward_bad_inputs():
    g = np.ones((2, 3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="grad_y"):
        ops.avg_pool2d_backward(g, (2, 3, 6, 6), 2)
    with pytest.raises(ValueError, match="grad_y"):
        ref.avg_pool2d_backward(g, (2, 3, 6, 6), 2)
    with pytest.raises(ValueError, match="kernel_size"):
        ops.avg_pool2d_backward(g, (2, 3, 4, 4), 5)
    with pytest.raises(ValueError, match="input_shape"):
        ops.avg_pool2d_backward(g, (2, 3, 4), 2)
    g = np.arange(1, 25, dtype=np.float32).reshape(2, 3, 2, 2)
    got = ops.avg_pool2d_backward(g, (2, 3, 4, 4), 2)
    np.testing.assert_allclose(got, np.repeat(np.repeat(g, 2, 2), 2, 3) / 4, rtol=1e-6)
    np.testing.assert_allclose(got, ref.avg_pool2d_backward(g, (2, 3, 4, 4), 2), rtol=1e-6)
    got = ops.avg_pool2d_backward(g, (2, 3, 5, 5), 2)  # the last row / column is in no window
    assert got.shape == (2, 3, 5, 5)
    np.testing.assert_array_equal(got[:, :, 4], 0)
    np.testing.assert_array_equal(got[:, :, :, 4], 0)
    np.testing.assert_allclose(got[:, :, :4, :4], np.repeat(np.repeat(g, 2, 2), 2, 3) / 4, rtol=1e-6)
    np.testing.assert_allclose(got, ref.avg_pool2d_backward(g, (2, 3, 5, 5), 2), rtol=1e-6)


# ---- the 2x2 / stride 2 / no padding path (LeNet's pools; its own vector kernels) ---------------

POOL22_SHAPES = [(1, 1, 2, 2), (2, 3, 2, 3), (2, 3, 3, 5), (1, 1, 5, 2), (1, 2, 3, 3), (2, 5, 10, 10),
                 (3, 4, 28, 28), (2, 3, 33, 17), (1, 2, 2, 40), (1, 2, 9, 67), (1, 1, 4, 33),
                 (64, 6, 28, 28), (64, 16, 10, 10)]


def _pool22_data(rng, shape, kind):
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "ties":
        return rng.integers(0, 3, size=shape).astype(np.float32)
    if kind == "equal":
        return np.full(shape, 1.5, np.float32)
    if kind == "all_neg_inf":
        return np.full(shape, -np.inf, np.float32)
    if kind == "all_nan":
        return np.full(shape, np.nan, np.float32)
    x = rng.integers(0, 3, size=shape).astype(np.float32)  # "special": NaN, -inf, inf, ties
    u = rng.random(shape)
    x[u < 0.3] = np.nan  # often two or more NaNs in a window: the last one wins
    x[(u >= 0.3) & (u < 0.55)] = -np.inf
    x[(u >= 0.55) & (u < 0.6)] = np.inf
    return x


def _assert_bits_equal(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("kind", ["normal", "ties", "equal", "all_neg_inf", "all_nan", "special"])
@pytest.mark.parametrize("shape", POOL22_SHAPES, ids=str)
def test_max_pool22_matches_reference(isa, threads, rng, shape, kind):
    x = _pool22_data(rng, shape, kind)
    y, idx = ops.max_pool2d(x, 2)
    ry, ridx = ref.max_pool2d(x, 2)
    assert idx.dtype == np.int64 and y.shape == ry.shape
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(y, ry)  # NaN == NaN here
    # the forward's value is the input at its index, bit for bit
    picked = np.take_along_axis(x.reshape(*shape[:2], -1), idx.reshape(*shape[:2], -1), axis=2)
    _assert_bits_equal(y, picked.reshape(y.shape))
    # backward: grad_y with -0.0 and exact ties, NaN in the unused cells only
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gy[rng.random(y.shape) < 0.2] = -0.0
    gx = ops.max_pool2d_backward(gy, idx, x.shape)
    _assert_bits_equal(gx, ref.max_pool2d_backward(gy, idx, x.shape))  # -0 + 0 = +0 in both


def test_max_pool22_window_order(isa):
    # ties, NaNs (one, two, in every cell) and -inf in each position, one window each
    nan, inf = np.nan, np.inf
    cells = [[0, 1, 2, 3], [3, 3, 3, 3], [1, 3, 3, 0], [2, 0, 3, 3], [3, 0, 0, 3],
             [nan, 1, 2, 3], [1, nan, 2, nan], [nan, nan, 1, 1], [1, 2, nan, nan], [-inf] * 4,
             [-inf, nan, -inf, 0], [0, -inf, -inf, -inf]]
    k = len(cells)
    x = np.zeros((1, 1, 2, 2 * k), np.float32)
    for j, a in enumerate(cells):
        x[0, 0, :, 2 * j:2 * j + 2] = np.float32(a).reshape(2, 2)
    y, idx = ops.max_pool2d(x, 2)
    ry, ridx = ref.max_pool2d(x, 2)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(y, ry)
    # first maximum / last NaN, spelled out: the winning cell of each window in row-major order
    win = [3, 0, 1, 2, 0, 0, 3, 1, 3, 0, 1, 0]
    want = [(c // 2) * 2 * k + c % 2 + 2 * j for j, c in enumerate(win)]
    np.testing.assert_array_equal(idx.reshape(-1), want)


def test_max_pool22_backward_relu_first(isa, threads, rng):
    # Sequential's ReLU -> MaxPool2D backward: relu mask at the pooled resolution, then unpool
    z = rng.standard_normal((64, 6, 28, 28)).astype(np.float32)
    x = np.maximum(z, 0)
    y, idx = ops.max_pool2d(x, 2)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    got = ops.max_pool2d_backward(ops.relu_backward(gy, y), idx, x.shape)
    want = ref.max_pool2d_backward(gy * (y > 0), idx, x.shape)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (3, 2, 10, 11), (1, 1, 4, 4)], ids=str)
def test_max_pool22_backward_indices_outside_their_window(isa, threads, rng, shape):
    # OH = H / 2, OW = W / 2 but the indices are not one per own 2x2 window: the general scatter
    N, C, H, W = shape
    gy = rng.standard_normal((N, C, H // 2, W // 2)).astype(np.float32)
    # from another geometry with the same output size (3x3, stride 2, padding 1) ...
    _, idx = ops.max_pool2d(rng.standard_normal(shape).astype(np.float32), 3, stride=2, padding=1)
    if idx.shape == gy.shape:
        np.testing.assert_array_equal(ops.max_pool2d_backward(gy, idx, shape),
                                      ref.max_pool2d_backward(gy, idx, shape))
    # ... and arbitrary in-range indices, repeated ones accumulating, in one plane only
    _, idx = ops.max_pool2d(rng.standard_normal(shape).astype(np.float32), 2)
    idx[-1, -1].flat[:] = rng.integers(0, H * W, size=idx[-1, -1].size)
    idx[0, 0].flat[:] = 0
    np.testing.assert_allclose(ops.max_pool2d_backward(gy, idx, shape),
                               ref.max_pool2d_backward(gy, idx, shape), rtol=1e-6, atol=1e-6)
    # an out-of-range index in the last window of the last plane is still reported
    idx[-1, -1, -1, -1] = H * W
    with pytest.raises(ValueError, match=r"indices\[%d, %d, %d, %d\] = %d" % (N - 1, C - 1, H // 2 - 1, W // 2 - 1, H * W)):
        ops.max_pool2d_backward(gy, idx, shape)
