"""Size arithmetic that overflows: an impossible geometry is a ValueError
naming the argument, before anything is allocated; an absurd but possible one gives the right
answer; nothing crashes. Every case runs in a child process (crashguard.py): the first one
used to kill the interpreter with a segmentation fault (the scratch size 4*8*(W + 2*pw) of
max_pool2d wrapped around and the padding loop wrote far out of bounds)."""
import numpy as np
import pytest

import lamina

from crashguard import Child

ONE = np.zeros((1, 1, 1, 1), np.float32)
f32 = np.float32

# (kernel, args, kwargs, expected): an exception type and a regex its message must match, or
# a function of the result that returns True.
CASES = {
    "max_pool2d kernel (1, 2**62) padding (0, 2**61) (the segfault)":
        ("max_pool2d", (ONE,), dict(kernel_size=(1, 2**62), padding=(0, 2**61)),
         lambda r: r[0].shape == (1, 1, 1, 1) and r[0][0, 0, 0, 0] == 0 and r[1][0, 0, 0, 0] == 0),
    "max_pool2d kernel (2**62, 2**62) padding 2**61":
        ("max_pool2d", (np.full((1, 1, 1, 1), 3, f32),), dict(kernel_size=2**62, padding=2**61),
         lambda r: r[0].ravel().tolist() == [3.0] and r[1].ravel().tolist() == [0]),
    "max_pool2d kernel (1, 2**40) padding (0, 2**39) (a 128 TiB scratch)":
        ("max_pool2d", (np.ones((2, 3, 2, 2), f32),), dict(kernel_size=(1, 2**40), padding=(0, 2**39)),
         lambda r: r[0].shape == (2, 3, 2, 1) and (r[0] == 1).all()),
    # start columns past 2**24 are not exact in float lanes: this returned index 16 in a 4x4 plane
    "max_pool2d kernel (4, 2**25) padding (0, 2**24), stride 1":
        ("max_pool2d", (np.arange(16, dtype=f32).reshape(1, 1, 4, 4),),
         dict(kernel_size=(4, 2**25), stride=1, padding=(0, 2**24)),
         lambda r: (r[0] == 15).all() and (r[1] == 15).all() and r[1].shape == (1, 1, 1, 5)),
    "max_pool2d padding 2**62 with kernel 2**63 - 1 (H + 2p wraps)":
        ("max_pool2d", (np.zeros((1, 1, 2, 2), f32),), dict(kernel_size=2**63 - 1, padding=2**62 - 1),
         (ValueError, "padding")),
    "max_pool2d kernel 2**63 - 1 padding 2**62 - 1 on one cell (fits exactly)":
        ("max_pool2d", (np.full((1, 1, 1, 1), -2, f32),), dict(kernel_size=2**63 - 1, padding=2**62 - 1),
         lambda r: r[0].ravel().tolist() == [-2.0] and r[1].ravel().tolist() == [0]),
    "max_pool2d kernel 2**63 (beyond int64)":
        ("max_pool2d", (ONE,), dict(kernel_size=2**63), (ValueError, "kernel_size")),
    "avg_pool2d kernel (2**62, 2**62) padding 2**61 (kh * kw overflows)":
        ("avg_pool2d", (np.ones((1, 1, 1, 1), f32),), dict(kernel_size=2**62, padding=2**61),
         lambda r: r.shape == (1, 1, 1, 1) and r[0, 0, 0, 0] == np.float32(2.0**-124)),
    "avg_pool2d_backward kernel 2**62 padding 2**61":
        ("avg_pool2d_backward", (np.ones((1, 1, 1, 1), f32), (1, 1, 1, 1)),
         dict(kernel_size=2**62, padding=2**61),
         lambda r: r.shape == (1, 1, 1, 1) and r[0, 0, 0, 0] == np.float32(2.0**-124)),
    "max_pool2d_backward input_shape (1, 1, 2**40, 2**40)":
        ("max_pool2d_backward", (ONE, np.zeros((1, 1, 1, 1), np.int64), (1, 1, 2**40, 2**40)), {},
         (ValueError, "input_shape")),
    "max_pool2d_backward input_shape (0, 1, 2**62, 2**62)":
        ("max_pool2d_backward", (np.zeros((0, 1, 1, 1), f32), np.zeros((0, 1, 1, 1), np.int64),
                                 (0, 1, 2**62, 2**62)), {}, (ValueError, "input_shape")),
    "max_pool2d_backward input_shape entry 2**64":
        ("max_pool2d_backward", (ONE, np.zeros((1, 1, 1, 1), np.int64), (1, 1, 2**64, 1)), {},
         (ValueError, "input_shape")),
    "avg_pool2d_backward input_shape (1, 1, 2**62, 2**62)":
        ("avg_pool2d_backward", (ONE, (1, 1, 2**62, 2**62)), dict(kernel_size=2**62),
         (ValueError, "input_shape")),
    "conv2d padding 2**39 (OH * OW = (2**40 + 1)**2)":
        ("conv2d", (ONE, ONE), dict(padding=2**39), (ValueError, "padding")),
    "conv2d padding 2**39, empty batch":
        ("conv2d", (np.zeros((0, 1, 1, 1), f32), ONE), dict(padding=2**39), (ValueError, "padding")),
    "conv2d padding 2**39, no output channels":
        ("conv2d", (ONE, np.zeros((0, 1, 1, 1), f32)), dict(padding=2**39), (ValueError, "padding")),
    "conv2d padding 2**30 (the output's bytes overflow)":
        ("conv2d", (ONE, ONE), dict(padding=2**30), (ValueError, "padding")),
    "conv2d_backward padding 2**39":
        ("conv2d_backward", (ONE, ONE, ONE), dict(padding=2**39), (ValueError, "padding")),
    "conv2d stride 2**62":
        ("conv2d", (ONE, ONE), dict(stride=2**62), (ValueError, "stride")),
    "conv2d dilation 2**63 (beyond int64)":
        ("conv2d", (ONE, ONE), dict(dilation=2**63), (ValueError, "dilation")),
    "upsample_nearest2d scale 2**40":
        ("upsample_nearest2d", (ONE, 2**40), {}, (ValueError, "scale")),
    "upsample_nearest2d scale 2**40, empty batch":
        ("upsample_nearest2d", (np.zeros((0, 1, 1, 1), f32), 2**40), {}, (ValueError, "scale")),
    "upsample_nearest2d scale 2**70 (beyond int64)":
        ("upsample_nearest2d", (ONE, 2**70), {}, (ValueError, "scale")),
    "upsample_nearest2d_backward scale 2**70":
        ("upsample_nearest2d_backward", (ONE, 2**70), {}, (ValueError, "scale")),
    "gather_rows 8 rows of (0, 2**60)":
        ("gather_rows", (np.zeros((0, 2**60), f32), np.zeros(8, np.int64)), {}, (ValueError, "indices")),
    "matmul (2**40, 0) @ (0, 2**40)":
        ("matmul", (np.zeros((2**40, 0), f32), np.zeros((0, 2**40), f32)), {}, (ValueError, "result")),
    "softmax axis 2**70":
        ("softmax", (np.zeros(3, f32),), dict(axis=2**70), (ValueError, "axis")),
    "argmax axis 2**70":
        ("argmax", (np.zeros(3, f32),), dict(axis=2**70), (ValueError, "axis")),
    "transpose axes (2**70,)":
        ("transpose", (np.zeros(3, f32), (2**70,)), {}, (ValueError, "axes")),
}


@pytest.fixture(scope="module")
def child():
    c = Child(timeout=20)
    yield c
    c.close()


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_huge_sizes_are_checked(child, case):
    name, args, kwargs, expected = CASES[case]
    outcome = child.run("lamina.ops", name, args, kwargs)
    assert outcome[0] in ("ok", "raise"), f"{case}: the child died or hung: {outcome}"
    if callable(expected):
        assert outcome[0] == "ok", f"{case}: {outcome}"
        assert expected(outcome[1]), f"{case}: wrong result {outcome[1]!r}"
    else:
        exc, pattern = expected
        assert outcome[0] == "raise", f"{case}: expected {exc.__name__}, got {outcome[1]!r}"
        assert outcome[1] == exc.__name__, f"{case}: {outcome}"
        assert pattern in outcome[2], f"{case}: message does not name {pattern!r}: {outcome[2]}"


def test_max_pool2d_with_huge_padding_matches_small_padding(child):
    # A window that clips to the input sees the same cells whatever the padding beyond it.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5, 7)).astype(f32)
    for isa in lamina.backend_info()["isas_available"]:
        big = child.run("lamina.ops", "max_pool2d", (x,), dict(kernel_size=(3, 2**41 + 1), stride=(1, 2**41),
                                                               padding=(1, 2**40)), isa=isa, threads=2)
        small = child.run("lamina.ops", "max_pool2d", (x,), dict(kernel_size=(3, 15), stride=(1, 8),
                                                                 padding=(1, 7)), isa=isa, threads=2)
        assert big[0] == small[0] == "ok", (big, small)
        np.testing.assert_array_equal(big[1][0], small[1][0])
        np.testing.assert_array_equal(big[1][1], small[1][1])


def test_adam_step_past_int64_takes_the_step_of_the_last_int64(child):
    # Past 2**63 - 1 the bias corrections 1 - beta**step are 1: the update equals the one at
    # 2**63 - 1, and it moves the parameter (lr * m / (sqrt(v) + eps) with m, v updated).
    rng = np.random.default_rng(5)
    state = [rng.standard_normal(7).astype(f32) for _ in range(3)] + [rng.random(7).astype(f32)]
    results = {}
    for step in (2**70, 2**63 - 1):
        outcome = child.run("lamina.ops", "adam_step", tuple(a.copy() for a in state) + (0.1, step))
        assert outcome[0] == "ok" and outcome[1] is None, f"step {step}: {outcome}"
        results[step] = outcome[2][0][:4]
    ref = [a.copy() for a in state]
    lamina.reference.adam_step(*ref, 0.1, 2**63 - 1)
    for got, last, want in zip(results[2**70], results[2**63 - 1], ref):
        np.testing.assert_array_equal(got, last)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert not np.allclose(results[2**70][0], state[0]), "the parameter did not move"


def _empty_at_odd_address(shape, dtype):
    """A zero-size array whose data pointer is not a multiple of its element size (as NumPy may
    give an empty array it unpickles or slices)."""
    a = np.ndarray(shape, dtype, buffer=np.zeros(64, np.uint8), offset=1)
    assert a.size == 0 and a.ctypes.data % np.dtype(dtype).itemsize != 0
    return a


def test_zero_size_arrays_need_no_alignment():
    g = _empty_at_odd_address((0, 1, 1, 1), f32)
    idx = _empty_at_odd_address((0, 1, 1, 1), np.int64)
    gx = lamina.ops.max_pool2d_backward(g, idx, (0, 1, 2, 2))
    assert gx.shape == (0, 1, 2, 2) and gx.dtype == f32
    # the impossible geometry is what is reported, not the empty array's address
    with pytest.raises(ValueError, match=r"\binput_shape\b"):
        lamina.ops.max_pool2d_backward(g, idx, (0, 1, 2**62, 2**62))
    assert lamina.ops.relu(_empty_at_odd_address((0, 3), f32)).shape == (0, 3)
    assert lamina.ops.matmul(_empty_at_odd_address((2, 0), f32), np.zeros((0, 3), f32)).tolist() == [[0] * 3] * 2
    # an array with elements still has to be aligned
    odd = np.zeros(4 * 8 + 1, np.uint8)[1:].view(f32)
    with pytest.raises(ValueError, match=r"\bx\b.*not aligned"):
        lamina.ops.relu(odd)
