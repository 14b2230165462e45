"""matmul / linear through opcheck: every implementation (every CPU path and thread count,
every registered backend) against lamina.reference, and the reference against PyTorch; then
strided views, overlap, zero sizes, NaN, reentrancy and bad inputs.

Tolerance: |C - C64| <= 1e-5 * sqrt(K) * (|op(A)| @ |op(B)|) elementwise, where C64 is the
float64 product of the same float32 inputs: float32 accumulation error grows like sqrt(K)
times the magnitude of the terms summed, so this bound holds for any order of summation.
"""
import threading

import numpy as np
import pytest

import opcheck
from lamina import ops

TRANS = [(False, False), (False, True), (True, False), (True, True)]


def operands(rng, m, k, n, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    return a, b


def check_close(c, a, b, ta=False, tb=False, bias=None, relu=False):
    A = (a.T if ta else a).astype(np.float64)
    B = (b.T if tb else b).astype(np.float64)
    ref = A @ B
    if bias is not None:
        ref = ref + bias
    if relu:
        ref = np.maximum(ref, 0)
    k = A.shape[1]
    # Rounding errors of a float32 dot product of length K grow like u sqrt(K) times the root of
    # the squared terms (u = 2**-24): float32 accumulation reaches about a quarter of
    # 8 u sqrt(K) sqrt(|A|^2 @ |B|^2); inputs rounded to TF32 (10-bit mantissa) 80x or more of it.
    u = 2.0**-24
    bound = 8 * u * (np.sqrt(max(k, 1)) * np.sqrt(np.square(A) @ np.square(B))
                     + (0 if bias is None else np.abs(bias))) + 1e-30
    assert c.shape == ref.shape and c.dtype == np.float32
    err = np.abs(c - ref)
    assert np.all(err <= bound), f"max err {err.max()} (bound {np.broadcast_to(bound, err.shape).flat[np.argmax(err - bound)]}) at K={k}"


def _matmul_close(got, want, args, kwargs):
    check_close(got, *args, kwargs.get("trans_a", False), kwargs.get("trans_b", False))


def _linear_close(got, want, args, kwargs):
    x, w, b = args
    check_close(got, x, w, False, True, bias=b, relu=kwargs.get("activation") == "relu")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(x.shape[1]))


def _torch_linear(F, x, w, b=None, activation=None):
    y = F.linear(x, w, b)
    return F.relu(y) if activation == "relu" else y


def _torch_matmul(F, a, b, trans_a=False, trans_b=False):
    return (a.T if trans_a else a) @ (b.T if trans_b else b)


MATMUL = opcheck.Op("matmul", close=_matmul_close, torch=_torch_matmul)
LINEAR = opcheck.Op("linear", close=_linear_close, torch=_torch_linear)


def sweep_sizes():
    edge = [63, 64, 65, 100, 257]
    fixed = 37
    for s in list(range(1, 41)) + edge:
        yield s, fixed, fixed
        yield fixed, s, fixed
        yield fixed, fixed, s


@pytest.mark.parametrize("target", opcheck.targets(MATMUL, torch=False))  # torch: the views below
@pytest.mark.parametrize("ta,tb", TRANS)
def test_matmul_sweep_every_size(target, rng, ta, tb):
    for m, k, n in sweep_sizes():
        a, b = operands(rng, m, k, n, ta, tb)
        opcheck.check(target, MATMUL, (a, b), dict(trans_a=ta, trans_b=tb))


@pytest.mark.parametrize("target", opcheck.targets(MATMUL, torch=False))
@pytest.mark.parametrize("ta,tb", TRANS)
def test_matmul_with_out(target, rng, ta, tb):
    for m, k, n in [(1, 1, 1), (13, 29, 33), (70, 9, 5), (3, 200, 47), (31, 17, 45)]:
        a, b = operands(rng, m, k, n, ta, tb)
        # out starts as NaN: beta = 0 must not read it
        opcheck.check(target, MATMUL, (a, b), dict(trans_a=ta, trans_b=tb), out=True)


@pytest.mark.parametrize("target", opcheck.targets(backends=False, threads=(2,)))
@pytest.mark.parametrize("ta,tb", TRANS)
def test_matmul_large_crosses_every_block(target, rng, ta, tb):
    # M > MC, K > KC (three depth blocks), N > NC: every loop of the driver takes > 1 trip, and
    # the error bound (check_close) is tight enough to catch inputs rounded in the deep blocks.
    m, k, n = 173 * 2 + 5, 1100, 2100
    a, b = operands(rng, m, k, n, ta, tb)
    opcheck.check(target, MATMUL, (a, b), dict(trans_a=ta, trans_b=tb))


@pytest.mark.parametrize("target", opcheck.targets(MATMUL))
def test_strided_and_negative_views_are_read_in_place(target, rng):
    big_a = rng.standard_normal((60, 90), dtype=np.float32)
    big_b = rng.standard_normal((90, 80), dtype=np.float32)
    views = [
        (big_a[::2, ::3], big_b[:30:1, ::2]),
        (big_a[::-1, :], big_b[::-1, :]),
        (big_a[:, ::-2][:40, :30], big_b[5:35, ::-1]),
        (big_a.T[::3, :][:, :20], big_b[:30, :20]),  # a.T view: (30, 60)[:, :20] -> (30, 20)
    ]
    for a, b in views:
        if a.shape[1] != b.shape[0]:
            b = b[: a.shape[1]] if b.shape[0] >= a.shape[1] else None
        if b is None:
            continue
        opcheck.check(target, MATMUL, (a, b))
    a = big_a[:, :40]
    opcheck.check(target, MATMUL, (a, a), dict(trans_b=True))  # same array both sides


def test_out_overlapping_an_input_gives_the_right_answer(rng):
    a = rng.standard_normal((40, 40), dtype=np.float32)
    b = rng.standard_normal((40, 40), dtype=np.float32)
    expect = a.astype(np.float64) @ b
    ops.matmul(a, b, out=a)
    np.testing.assert_allclose(a, expect, rtol=1e-4, atol=1e-4)


def test_zero_sized_dimensions(isa):
    z = ops.matmul(np.ones((0, 5), np.float32), np.ones((5, 3), np.float32))
    assert z.shape == (0, 3)
    z = ops.matmul(np.ones((4, 5), np.float32), np.ones((5, 0), np.float32))
    assert z.shape == (4, 0)
    z = ops.matmul(np.ones((4, 0), np.float32), np.ones((0, 3), np.float32))
    assert z.shape == (4, 3) and np.all(z == 0)
    out = np.full((4, 3), 7.0, np.float32)
    ops.matmul(np.ones((4, 0), np.float32), np.ones((0, 3), np.float32), out=out)
    assert np.all(out == 0)
    y = ops.linear(np.ones((2, 0), np.float32), np.ones((3, 0), np.float32), np.array([1, -2, 3], np.float32), "relu")
    np.testing.assert_array_equal(y, [[1, 0, 3], [1, 0, 3]])


@pytest.mark.parametrize("target", opcheck.targets(LINEAR))
@pytest.mark.parametrize("n,fin,fout", [(1, 1, 1), (64, 800, 500), (64, 500, 10), (33, 17, 70), (5, 300, 16),
                                        (200, 31, 3)])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("act", [None, "relu"])
def test_linear(target, rng, n, fin, fout, with_bias, act):
    x = rng.standard_normal((n, fin), dtype=np.float32)
    w = rng.standard_normal((fout, fin), dtype=np.float32)
    b = rng.standard_normal(fout, dtype=np.float32) if with_bias else None
    opcheck.check(target, LINEAR, (x, w, b), dict(activation=act), out=target.kind != "torch")


def test_linear_relu_propagates_nan_and_out(rng):
    x = rng.standard_normal((4, 8), dtype=np.float32)
    x[1, 3] = np.nan
    w = rng.standard_normal((5, 8), dtype=np.float32)
    out = np.empty((4, 5), np.float32)
    y = ops.linear(x, w, activation="relu", out=out)
    assert y is out
    assert np.all(np.isnan(y[1])) and not np.any(np.isnan(y[[0, 2, 3]]))
    assert np.all(y[[0, 2, 3]] >= 0)


def test_reentrant_from_python_threads(rng):
    # The GIL is released during compute and every thread has its own packing buffers.
    pairs = [operands(rng, 90 + i, 130, 70 + 3 * i, False, i % 2 == 1) for i in range(4)]
    errors, checked = [], [0] * 4

    def work(i):
        a, b = pairs[i]
        try:  # any exception of a worker (not only a failed check) fails the test
            for _ in range(20):
                c = ops.matmul(a, b, trans_b=i % 2 == 1)
                check_close(c, a, b, False, i % 2 == 1)
                checked[i] += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert checked == [20] * 4  # every worker ran and checked every product


# ---------------------------------------------------------------------------------------
# bad input: a clear exception naming the argument, never a crash


def f32(*shape):
    return np.ones(shape, np.float32)


@pytest.mark.parametrize("a,b,exc,match", [
    (np.ones((2, 2)), f32(2, 2), TypeError, r"\ba\b.*float32.*float64"),
    (f32(2, 2), np.ones((2, 2), np.int32), TypeError, r"\bb\b.*float32.*int32"),
    ([[1.0]], f32(1, 1), TypeError, r"\ba\b.*numpy.ndarray"),
    (np.ones((2, 2), np.dtype(">f4")), f32(2, 2), TypeError, r"\ba\b.*float32.*>f4"),
    (f32(2), f32(2, 2), ValueError, r"\ba\b must be 2-D"),
    (f32(2, 2), f32(2, 2, 2), ValueError, r"\bb\b must be 2-D"),
    (f32(2, 3), f32(2, 3), ValueError, r"inner dimensions"),
])
def test_matmul_bad_inputs(a, b, exc, match):
    with pytest.raises(exc, match=match):
        ops.matmul(a, b)


def test_matmul_bad_out():
    a, b = f32(2, 3), f32(3, 4)
    with pytest.raises(ValueError, match=r"out has shape \(4, 2\), expected \(2, 4\)"):
        ops.matmul(a, b, out=f32(4, 2))
    with pytest.raises(TypeError, match=r"out.*float32"):
        ops.matmul(a, b, out=np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"out must be C-contiguous"):
        ops.matmul(a, b, out=f32(2, 8)[:, ::2])
    ro = f32(2, 4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"out is read-only"):
        ops.matmul(a, b, out=ro)


def test_unaligned_view_is_rejected():
    raw = np.zeros(4 * 13 + 1, np.uint8)[1:].view(np.float32).reshape(13, 1)  # misaligned
    with pytest.raises(ValueError, match=r"\ba\b.*aligned"):
        ops.matmul(raw, f32(1, 2))


def test_linear_bad_inputs():
    x, w = f32(3, 4), f32(5, 4)
    with pytest.raises(ValueError, match=r"w has shape \(5, 3\)"):
        ops.linear(x, f32(5, 3))
    with pytest.raises(ValueError, match=r"\bb\b has shape \(4,\)"):
        ops.linear(x, w, f32(4))
    with pytest.raises(ValueError, match=r"activation must be None or 'relu'"):
        ops.linear(x, w, activation="gelu")
    with pytest.raises(TypeError, match=r"\bx\b.*float32"):
        ops.linear(x.astype(np.float16), w)
    with pytest.raises(ValueError, match=r"\bb\b must be 1-D"):
        ops.linear(x, w, f32(5, 1))
