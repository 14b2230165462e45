"""The array kernels of the backend contract, as tables over tests/opcheck.py: every
native path and thread count, every registered backend (the wrapped stand-in device backend),
finite differences for the backward kernels and PyTorch where it has a twin. The special cases
(strided and overlapping outputs, int dtypes, bad input) are in test_array_ops.py,
test_upsample.py, test_softmax.py and test_optim_out.py."""
import numpy as np
import pytest

import opcheck

SHAPES = [(1,), (17,), (3, 5), (2, 3, 4), (300, 411)]
ids = str


def _x(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


SCALE = opcheck.Op("scale", close=opcheck.allclose(rtol=1e-6), torch=lambda F, x, alpha: alpha * x)
ADD = opcheck.Op("add", close=opcheck.allclose(rtol=1e-6, atol=1e-7), torch=lambda F, a, b, alpha=1.0: a + alpha * b)
COPY = opcheck.Op("copy", close=opcheck.EXACT)
TRANSPOSE = opcheck.Op("transpose", close=opcheck.EXACT)
DOT = opcheck.Op("dot", close=opcheck.allclose(rtol=1e-6, atol=1e-6))
ARGMAX = opcheck.Op("argmax", close=opcheck.EXACT)


@pytest.mark.parametrize("target", opcheck.targets(SCALE))
@pytest.mark.parametrize("shape", SHAPES, ids=ids)
def test_scale(target, rng, shape):
    opcheck.check(target, SCALE, (_x(rng, shape),), dict(alpha=-0.75), out=True)


@pytest.mark.parametrize("target", opcheck.targets(ADD))
@pytest.mark.parametrize("shape", SHAPES, ids=ids)
def test_add(target, rng, shape):
    opcheck.check(target, ADD, (_x(rng, shape), _x(rng, shape)), dict(alpha=-0.5), out=True)


@pytest.mark.parametrize("target", opcheck.targets(COPY))
@pytest.mark.parametrize("shape", SHAPES, ids=ids)
def test_copy(target, rng, shape):
    opcheck.check(target, COPY, (_x(rng, shape),), out=True)


@pytest.mark.parametrize("target", opcheck.targets(TRANSPOSE))
@pytest.mark.parametrize("shape,axes", [((3, 5), (1, 0)), ((2, 3, 4), (1, 0, 2)), ((2, 3, 4), (2, 0, 1)),
                                        ((67, 45), (1, 0)), ((4, 1, 3, 2), (3, 2, 1, 0))], ids=ids)
def test_transpose(target, rng, shape, axes):
    opcheck.check(target, TRANSPOSE, (_x(rng, shape), axes))


@pytest.mark.parametrize("target", opcheck.targets(DOT))
@pytest.mark.parametrize("shape", SHAPES, ids=ids)
def test_dot(target, rng, shape):
    opcheck.check(target, DOT, (_x(rng, shape), _x(rng, shape)))


@pytest.mark.parametrize("target", opcheck.targets(ARGMAX))
@pytest.mark.parametrize("shape,axis", [((7,), -1), ((3, 5), 1), ((3, 5), 0), ((2, 3, 4), 1), ((64, 10), -1)],
                         ids=ids)
def test_argmax(target, rng, shape, axis):
    opcheck.check(target, ARGMAX, (_x(rng, shape),), dict(axis=axis))


UPSAMPLE = opcheck.Op(
    "upsample_nearest2d", close=opcheck.EXACT, backward="upsample_nearest2d_backward",
    backward_args=lambda a, kw, out, gy: ((gy, a[1]), kw), backward_close=opcheck.allclose(rtol=1e-6, atol=1e-6),
    torch=lambda F, x, scale: F.interpolate(x, scale_factor=scale, mode="nearest"))


@pytest.mark.parametrize("target", opcheck.targets(UPSAMPLE))
@pytest.mark.parametrize("shape,scale", [((1, 1, 1, 1), 1), ((2, 3, 4, 5), 2), ((1, 2, 3, 3), 3), ((4, 6, 7, 7), 2)],
                         ids=ids)
def test_upsample_nearest2d(target, rng, shape, scale):
    opcheck.check(target, UPSAMPLE, (_x(rng, shape), scale))


def _softmax_then_backward(a, kw, out, gy):
    return (gy, out), kw  # softmax_backward(grad_y, y, axis)


SOFTMAX_WITH_BACKWARD = opcheck.Op(
    "softmax", close=opcheck.allclose(rtol=1e-5, atol=1e-7), backward="softmax_backward",
    backward_args=_softmax_then_backward, backward_close=opcheck.allclose(rtol=1e-4, atol=1e-6),
    torch=lambda F, x, axis=-1: F.softmax(x, dim=axis))


@pytest.mark.parametrize("target", opcheck.targets(SOFTMAX_WITH_BACKWARD))
@pytest.mark.parametrize("shape,axis", [((1, 1), -1), ((5, 7), -1), ((5, 7), 0), ((2, 3, 4), 1), ((64, 10), -1)],
                         ids=ids)
def test_softmax_backward(target, rng, shape, axis):
    opcheck.check(target, SOFTMAX_WITH_BACKWARD, (_x(rng, shape),), dict(axis=axis))
