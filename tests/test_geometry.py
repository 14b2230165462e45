"""Geometry arguments (kernel_size, stride, padding, dilation), parsed once per language:
lamina.reference._geometry (_pair, conv_output_shape) and the bindings' int_pair_arg. A wrong
length is a ValueError, a non-integer a TypeError, both naming the argument, in the native and
the reference kernels alike (as PyTorch: a float kernel size is never truncated)."""
import numpy as np
import pytest

from lamina import ops
from lamina import reference as R
from lamina.reference._geometry import _pair, conv_output_shape


@pytest.mark.parametrize("v, want", [(3, (3, 3)), (np.int64(2), (2, 2)), ((1, 2), (1, 2)),
                                     ([4, np.int32(5)], (4, 5)), (0, (0, 0)), (-1, (-1, -1))])
def test_pair_accepts_ints_and_pairs(v, want):
    got = _pair(v, "stride")
    assert got == want and all(type(e) is int for e in got)


@pytest.mark.parametrize("v", [2.0, 2.7, np.float32(2), True, np.bool_(True), "2", None,
                               (2, 2.0), (True, 1), [1, "1"], np.array([2, 2])])
def test_pair_rejects_non_integers_with_type_error(v):
    with pytest.raises(TypeError, match="kernel_size"):
        _pair(v, "kernel_size")


@pytest.mark.parametrize("v", [(), (1,), (1, 2, 3), [1, 1, 1]])
def test_pair_rejects_wrong_lengths_with_value_error(v):
    with pytest.raises(ValueError, match="padding"):
        _pair(v, "padding")


@pytest.mark.parametrize("hw, k, s, p, d", [((8, 8), 3, 1, 0, 1), ((7, 9), (3, 2), (2, 1), (1, 0), 1),
                                            ((10, 11), 3, 2, 2, (2, 3)), ((5, 5), 5, 1, 0, 1),
                                            ((1, 1), 1, 7, 0, 1)])
def test_conv_output_shape_formula(hw, k, s, p, d):
    (H, W), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = hw, _pair(k, "k"), _pair(s, "s"), _pair(p, "p"), _pair(d, "d")
    want = ((H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1)
    assert conv_output_shape(hw, k, s, p, d) == want
    # the same geometry as the reference and the native convolution
    x = np.zeros((1, 1, H, W), np.float32)
    w = np.zeros((1, 1, kh, kw), np.float32)
    assert R.conv2d(x, w, stride=s, padding=p, dilation=d).shape[2:] == want
    assert ops.conv2d(x, w, stride=s, padding=p, dilation=d).shape[2:] == want


def test_conv_output_shape_errors():
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv_output_shape((2, 8), 3)
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv_output_shape((8, 8), 3, dilation=4)
    with pytest.raises(ValueError, match="kernel_size"):
        conv_output_shape((8, 8), 0)
    with pytest.raises(ValueError, match="stride"):
        conv_output_shape((8, 8), 3, stride=(1, 0))
    with pytest.raises(ValueError, match="padding"):
        conv_output_shape((8, 8), 3, padding=-1)
    with pytest.raises(ValueError, match="dilation"):
        conv_output_shape((8, 8), 3, dilation=0)
    with pytest.raises(TypeError, match="kernel_size"):
        conv_output_shape((8, 8), 2.7)
    with pytest.raises(ValueError, match="stride"):
        conv_output_shape((8, 8), 3, stride=(1, 1, 1))
    assert conv_output_shape((8, 8), 3, padding=1) == (8, 8)


@pytest.mark.parametrize("impl", [ops, R], ids=["native", "reference"])
@pytest.mark.parametrize("arg", ["stride", "padding", "dilation"])
def test_conv_geometry_argument_types(impl, arg):
    x = np.zeros((1, 2, 8, 8), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    for bad in (2.7, 1.0, np.float64(1), True, "1", None, (1, 1.0)):
        with pytest.raises(TypeError, match=arg):
            impl.conv2d(x, w, **{arg: bad})
        with pytest.raises(TypeError, match=arg):
            impl.conv2d_backward(x, w, np.zeros((1, 3, 6, 6), np.float32), **{arg: bad})
    for bad in ((1, 1, 1), (), [1]):
        with pytest.raises(ValueError, match=arg):
            impl.conv2d(x, w, **{arg: bad})


@pytest.mark.parametrize("impl", [ops, R], ids=["native", "reference"])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_geometry_argument_types(impl, kind):
    x = np.zeros((1, 2, 8, 8), np.float32)
    f = getattr(impl, f"{kind}_pool2d")
    for arg in ("kernel_size", "stride", "padding"):
        kw = {"kernel_size": 2}
        for bad in (2.7, 2.0, np.float32(2), False, "2", (2, 2.0)):
            with pytest.raises(TypeError, match=arg):
                f(x, **{**kw, arg: bad})
        for bad in ((2, 2, 2), (2,), []):
            with pytest.raises(ValueError, match=arg):
                f(x, **{**kw, arg: bad})
    # the backward of average pooling parses the same arguments
    with pytest.raises(TypeError, match="kernel_size"):
        impl.avg_pool2d_backward(np.zeros((1, 2, 4, 4), np.float32), (1, 2, 8, 8), 2.7)
    with pytest.raises(ValueError, match="stride"):
        impl.avg_pool2d_backward(np.zeros((1, 2, 4, 4), np.float32), (1, 2, 8, 8), 2, stride=(2, 2, 2))


def test_native_geometry_out_of_range_is_value_error():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="kernel_size"):
        ops.max_pool2d(x, 2**70)
    with pytest.raises(ValueError, match="stride"):
        ops.conv2d(x, np.zeros((1, 1, 2, 2), np.float32), stride=(1, -2**70))


def test_reference_conv2d_out(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    out = np.empty((2, 4, 4, 4))
    assert R.conv2d(x, w, out=out) is out
    np.testing.assert_array_equal(out, R.conv2d(x, w))
    with pytest.raises(ValueError, match="out"):
        R.conv2d(x, w, out=np.empty((2, 4, 4, 5)))
