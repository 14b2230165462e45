"""upsample_nearest2d and its backward: native vs reference on every CPU path and thread count,
odd and empty sizes, out= (with overlap), the reference backward by finite differences, PyTorch
parity when torch is installed, bad inputs."""
import numpy as np
import pytest

from lamina import ops, reference as ref
from gradcheck import assert_grad_close, numeric_grad

CASES = [((1, 1, 1, 1), 1), ((1, 1, 1, 1), 3), ((2, 3, 5, 7), 2), ((1, 2, 4, 17), 3), ((2, 1, 3, 33), 4),
         ((0, 3, 4, 4), 2), ((2, 0, 4, 4), 2), ((1, 1, 0, 5), 2), ((1, 2, 5, 0), 2), ((3, 2, 9, 9), 1),
         ((8, 16, 32, 32), 2), ((4, 8, 20, 21), 3)]


@pytest.mark.parametrize("shape,s", CASES, ids=str)
def test_matches_reference(isa, threads, rng, shape, s):
    x = rng.standard_normal(shape).astype(np.float32)
    y = ops.upsample_nearest2d(x, s)
    N, C, H, W = shape
    assert y.dtype == np.float32 and y.shape == (N, C, s * H, s * W)
    np.testing.assert_array_equal(y, ref.upsample_nearest2d(x, s))
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = ops.upsample_nearest2d_backward(gy, s)
    assert gx.shape == shape
    want = ref.upsample_nearest2d_backward(gy.astype(np.float64), s)
    np.testing.assert_allclose(gx, want, rtol=1e-5, atol=1e-5 * s)
    out = np.empty(shape, np.float32)
    assert ops.upsample_nearest2d_backward(gy, s, out=out) is out
    np.testing.assert_array_equal(out, gx)
    yo = np.empty_like(y)
    assert ops.upsample_nearest2d(x, s, out=yo) is yo
    np.testing.assert_array_equal(yo, y)


def test_scale_one_is_copy_and_overlap(isa, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    want = x.copy()
    ops.upsample_nearest2d(x, 1, out=x)  # out is x: through a temporary
    np.testing.assert_array_equal(x, want)
    ops.upsample_nearest2d_backward(x, 1, out=x)
    np.testing.assert_array_equal(x, want)
    buf = np.zeros(2 * 3 * 4 * 4 * 4, np.float32)
    xs = buf[:2 * 3 * 2 * 2].reshape(2, 3, 2, 2)
    xs[...] = rng.standard_normal(xs.shape)
    want = ref.upsample_nearest2d(xs.copy(), 2)
    ops.upsample_nearest2d(xs, 2, out=buf[:2 * 3 * 4 * 4].reshape(2, 3, 4, 4))
    np.testing.assert_array_equal(buf[:2 * 3 * 4 * 4].reshape(2, 3, 4, 4), want)


def test_values_special(isa):
    x = np.float32([[[[np.nan, np.inf], [-np.inf, 1.0]]]])
    np.testing.assert_array_equal(ops.upsample_nearest2d(x, 2), ref.upsample_nearest2d(x, 2))


def test_reference_backward_by_finite_differences(rng):
    for shape, s in [((1, 2, 2, 3), 2), ((2, 1, 3, 2), 3), ((1, 1, 2, 2), 1)]:
        x = rng.standard_normal(shape)
        N, C, H, W = shape
        w = rng.standard_normal((N, C, s * H, s * W))
        analytic = ref.upsample_nearest2d_backward(w, s)
        numeric = numeric_grad(lambda z: float(np.sum(w * ref.upsample_nearest2d(z, s))), x)
        assert_grad_close(analytic, numeric)


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.interpolate(tx, scale_factor=3, mode="nearest")
    np.testing.assert_array_equal(ops.upsample_nearest2d(x, 3), ty.detach().numpy())
    gy = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(ops.upsample_nearest2d_backward(gy, 3), tx.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_bad_inputs():
    x = np.zeros((1, 2, 3, 4), np.float32)
    for f in (ops.upsample_nearest2d, ref.upsample_nearest2d):
        with pytest.raises(ValueError, match="scale"):
            f(x, 0)
        with pytest.raises(TypeError, match="scale"):
            f(x, 2.0)
        with pytest.raises(TypeError, match="scale"):
            f(x, True)
        with pytest.raises(ValueError, match="x"):
            f(np.zeros((2, 3, 4), np.float32), 2)
    with pytest.raises(TypeError, match="x"):
        ops.upsample_nearest2d(x.astype(np.float64), 2)
    with pytest.raises(ValueError, match="x"):
        ops.upsample_nearest2d(np.zeros((1, 2, 3, 8), np.float32)[..., ::2], 2)
    with pytest.raises(ValueError, match="out"):
        ops.upsample_nearest2d(x, 2, out=np.zeros((1, 2, 6, 7), np.float32))
    with pytest.raises(TypeError, match="out"):
        ops.upsample_nearest2d(x, 2, out=np.zeros((1, 2, 6, 8)))
    with pytest.raises(ValueError, match="scale"):
        ops.upsample_nearest2d(np.zeros((1, 1, 2, 2), np.float32), 1 << 62)
    gy = np.zeros((1, 2, 6, 8), np.float32)
    for f in (ops.upsample_nearest2d_backward, ref.upsample_nearest2d_backward):
        with pytest.raises(ValueError, match="grad_y"):
            f(gy, 4)  # 6 is not a multiple of 4
        with pytest.raises(ValueError, match="grad_y"):
            f(np.zeros((6, 8), np.float32), 2)
        with pytest.raises(ValueError, match="scale"):
            f(gy, -1)
    with pytest.raises(ValueError, match="out"):
        ops.upsample_nearest2d_backward(gy, 2, out=np.zeros((1, 2, 3, 3), np.float32))
    ro = np.zeros((1, 2, 3, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out"):
        ops.upsample_nearest2d_backward(gy, 2, out=ro)
