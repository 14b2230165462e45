"""The geometry of 2-D windows, parsed once for conv, pooling and the layers that build them.

``_pair(v, name)`` reads an int-or-pair argument (kernel_size, stride, padding, dilation) as
PyTorch does: a wrong length is a ValueError, anything that is not an integer (a float, a bool,
a string) a TypeError, both naming the argument; a float is never truncated (int(2.7) == 2).

``conv_output_shape`` is the output size of a window sliding over a zero-padded input, for
convolution and (dilation 1) pooling alike, per spatial dimension:

    OH = (H + 2*ph - dh*(kH - 1) - 1) // sh + 1
"""
import operator

import numpy as np


def _int(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r} ({type(v).__name__})")
    return operator.index(v)


def _count(v, name, low=1):
    """An integer argument (a Python or NumPy int, not a bool) that must be >= low."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    v = operator.index(v)
    if v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return v


def pair(v, name):
    """An int (or NumPy integer) or a tuple / list of two -> (h, w), Python ints; TypeError or
    ValueError naming the argument ``name`` otherwise (see the module).

    Example:

        >>> from lamina import reference
        >>> reference.pair(3, "kernel_size"), reference.pair([1, 2], "stride")
        ((3, 3), (1, 2))
    """
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got a sequence of length "
                             f"{len(v)}: {v!r}")
        return _int(v[0], name), _int(v[1], name)
    v = _int(v, name)
    return v, v


_pair = pair  # (the name the reference modules use)


def conv_output_shape(input_hw, kernel_size, stride=1, padding=0, dilation=1):
    """(H, W) of the input -> (OH, OW) of the output; every argument an int or a pair.

    ValueError for a kernel_size, stride or dilation below 1, a negative padding, or a dilated
    kernel larger than the padded input (an output size below 1).
    """
    H, W = _pair(input_hw, "input_hw")
    (kh, kw), (sh, sw) = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    (ph, pw), (dh, dw) = _pair(padding, "padding"), _pair(dilation, "dilation")
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel_size must be >= 1, got {(kh, kw)}")
    if sh < 1 or sw < 1:
        raise ValueError(f"stride must be >= 1, got {(sh, sw)}")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {(ph, pw)}")
    if dh < 1 or dw < 1:
        raise ValueError(f"dilation must be >= 1, got {(dh, dw)}")
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # the dilated kernel's extent
    OH, OW = (H + 2 * ph - eh) // sh + 1, (W + 2 * pw - ew) // sw + 1
    if OH < 1 or OW < 1:
        dil = f" with dilation {(dh, dw)}" if (dh, dw) != (1, 1) else ""
        raise ValueError(f"kernel_size {(kh, kw)} (extent {(eh, ew)}{dil}) is larger than the "
                         f"padded input {(H + 2 * ph, W + 2 * pw)} (input {(H, W)}, padding "
                         f"{(ph, pw)})")
    return OH, OW
