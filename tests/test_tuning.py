"""The CPU's identity and caches from cpuid, the GEMM blocking derived from them, the
per-microarchitecture variants (each forced in turn), the LAMINA_TUNING override, and the
bindings' fast keyword arguments."""
import os
import subprocess
import sys

import numpy as np
import pytest

import lamina
from lamina import _native, reference

from conftest import AVAILABLE_ISAS

INFO = lamina.backend_info()
X86 = INFO["cpu"]["vendor"] in ("GenuineIntel", "AuthenticAMD", "HygonGenuine")


def run(code, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("LAMINA_CPU", "LAMINA_TUNING")}
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=120)


@pytest.fixture
def tuning():
    """Restores the import-time tuning after a test that forces something."""
    yield _native._set_tuning
    _native._reset_tuning()


@pytest.mark.skipif(not X86, reason="cpuid is x86 only")
def test_caches_are_read_from_cpuid():
    c = INFO["caches"]
    assert c["source"].startswith("cpuid")
    assert 8 * 1024 <= c["l1d"] <= 256 * 1024 and c["l1d"] % 1024 == 0
    assert 128 * 1024 <= c["l2"] <= 64 * 1024 * 1024 and c["l2"] > c["l1d"]
    # What lscpu reports on Linux (sysfs) agrees with cpuid, where sysfs has it.
    path = "/sys/devices/system/cpu/cpu0/cache"
    if os.path.isdir(path):
        for d in os.listdir(path):
            f = os.path.join(path, d)
            if not os.path.exists(os.path.join(f, "size")):
                continue
            level = open(os.path.join(f, "level")).read().strip()
            kind = open(os.path.join(f, "type")).read().strip()
            size = open(os.path.join(f, "size")).read().strip()
            nbytes = int(size[:-1]) * {"K": 1024, "M": 1024 ** 2}[size[-1]]
            if level == "1" and kind == "Data":
                assert nbytes == c["l1d"]
            if level == "2":
                assert nbytes == c["l2"]


def test_blocking_follows_the_cache_model():
    b = INFO["gemm_blocking"]
    assert b["kc"] > 0 and b["mc"] % b["mr"] == 0 and b["nc"] % b["nr"] == 0 and b["nc_small"] % b["nr"] == 0
    model = _native._blocking_for(INFO["caches"]["l1d"] or 32 * 1024, INFO["caches"]["l2"] or 512 * 1024, INFO["isa"])
    assert {k: b[k] for k in model} == model


def test_blocking_model_on_the_two_cpus():
    # Sapphire Rapids (48 KiB L1d, 2 MiB L2): the blocking measured best there before it was
    # derived (KC 512, MC 168, NC 2048, NC_SMALL 512). Zen 4 (32 KiB, 1 MiB): the same depth
    # (the 14 x 32 tile's floor of 512, not the 336 its L1 alone gives), so smaller blocks and
    # panels that fit its smaller L2.
    assert _native._blocking_for(48 * 1024, 2048 * 1024, "avx512") == {"kc": 512, "mc": 168, "nc": 2048, "nc_small": 512}
    assert _native._blocking_for(32 * 1024, 1024 * 1024, "avx512") == {"kc": 512, "mc": 84, "nc": 1024, "nc_small": 256}
    # The AVX2 tile keeps its B sliver in half of L1 (BLIS's Haswell choice: KC 256 at 32 KiB).
    assert _native._blocking_for(32 * 1024, 256 * 1024, "avx2")["kc"] == 256
    with pytest.raises(ValueError, match="isa"):
        _native._blocking_for(1, 1, "sse9")


def test_variants_follow_the_cpu():
    cpu, v = INFO["cpu"], INFO["variants"]
    zen4 = cpu["vendor"] == "AuthenticAMD" and cpu["family"] == 0x19
    assert cpu["avx512_split"] == zen4
    assert cpu["slow_gather"] == (cpu["vendor"] in ("AuthenticAMD", "HygonGenuine"))
    assert v["small_n_b"] == ("transpose" if cpu["slow_gather"] else "gather")
    assert v["dot_width"] in (256, 512)
    assert INFO["tuning_source"] == "cpuid"


SMALL_N_SHAPES = [(64, 500, 10), (1, 1, 1), (7, 33, 3), (5, 17, 16), (9, 8, 9), (33, 100, 13), (4, 16, 8), (3, 1000, 5),
                  (17, 24, 15), (6, 40, 6), (13, 20, 7), (11, 30, 11), (5, 9, 12), (3, 50, 14), (2, 7, 4)]


@pytest.mark.parametrize("variant", ["small_n_b=gather,dot_width=512", "small_n_b=transpose,dot_width=512",
                                     "small_n_b=gather,dot_width=256", "small_n_b=transpose,dot_width=256"])
def test_each_small_n_variant_is_exact_enough(variant, isa, tuning, rng):
    tuning(variant)
    assert lamina.backend_info()["variants"]["small_n_b"] in variant
    for m, k, n in SMALL_N_SHAPES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        bias = rng.standard_normal(n, dtype=np.float32)
        ref = a.astype(np.float64) @ b
        tol = 1e-5 * np.sqrt(k) * (np.abs(a) @ np.abs(b)).max()
        big = np.zeros((k, 2 * n + 1), np.float32)
        big[:, 1::2][:, :n] = b  # a row-major B with row stride 2n + 1 and column stride 2
        for got in (_native.matmul(a, b),                                      # row-major B
                    _native.matmul(a, np.ascontiguousarray(b.T), trans_b=True),  # B^T in place
                    _native.matmul(a, np.asfortranarray(b)),                   # column-major B
                    _native.matmul(a, big[:, 1::2][:, :n]),                    # strided B
                    _native.matmul(np.asfortranarray(a), b)):                  # column-major A
            np.testing.assert_allclose(got, ref, atol=tol, rtol=0)
        got = _native.linear(a, np.ascontiguousarray(b.T), bias, activation="relu")
        np.testing.assert_allclose(got, np.maximum(ref + bias, 0), atol=tol, rtol=0)


@pytest.mark.parametrize("spec", ["kc=16,mc=14,nc=32,nc_small=32", "kc=1,mc=1,nc=1,nc_small=1",
                                  "kc=1000,mc=500,nc=4000,nc_small=4000"])
def test_forced_blocking_is_exact(spec, isa, tuning, rng):
    tuning(spec)
    b = lamina.backend_info()["gemm_blocking"]
    assert b["mc"] % b["mr"] == 0 and b["nc"] % b["nr"] == 0 and b["nc_small"] % b["nr"] == 0
    for m, k, n in [(70, 90, 100), (300, 37, 70), (29, 300, 33), (1, 50, 64)]:
        a = rng.standard_normal((m, k), dtype=np.float32)
        bb = rng.standard_normal((n, k), dtype=np.float32)
        ref = a.astype(np.float64) @ bb.T.astype(np.float64)
        tol = 1e-5 * np.sqrt(k) * (np.abs(a) @ np.abs(bb).T).max()
        np.testing.assert_allclose(_native.matmul(a, bb, trans_b=True), ref, atol=tol, rtol=0)
        np.testing.assert_allclose(_native.matmul(a, np.ascontiguousarray(bb.T)), ref, atol=tol, rtol=0)
        np.testing.assert_allclose(reference.matmul(a.astype(np.float64), bb.T.astype(np.float64)), ref)


@pytest.mark.parametrize("spec", ["", "kc=48,mc=84", "kc=40,mc=28,nc=64"])
def test_row_blocks_and_packed_a_edges(spec, isa, tuning, rng):
    # Each A block's rows are shared evenly over its tiles (a ragged last block included), and
    # pack_a stores whole 8-row transposes, spilling into the next depth step, the next sliver
    # or the buffer's slack: depths that are multiples of 8 (and not), blocks of 1..MR + 1 rows.
    tuning(spec)
    # (64, 800, 500), (40, 600, 300), (70, 33, 47): B read in place (short rows, <= 5 row tiles)
    for m, k, n in [(85, 48, 40), (97, 64, 33), (127, 96, 70), (128, 40, 64), (13, 48, 32), (22, 56, 50),
                    (9, 8, 64), (169, 45, 96), (15, 800, 40), (64, 800, 500), (40, 600, 300), (70, 33, 47),
                    (71, 20, 40)]:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        ref = a.astype(np.float64) @ b.astype(np.float64)
        tol = 1e-5 * np.sqrt(k) * (np.abs(a) @ np.abs(b)).max()
        wide = np.zeros((k, n + 7), np.float32)
        wide[:, 3:3 + n] = b  # a row-major B whose row stride is not its width
        for got in (_native.matmul(a, b), _native.matmul(np.asfortranarray(a), b),
                    _native.matmul(a, np.ascontiguousarray(b.T), trans_b=True), _native.matmul(a, wide[:, 3:3 + n])):
            np.testing.assert_allclose(got, ref, atol=tol, rtol=0)


def test_forced_blocking_reaches_another_path(tuning):
    other = [i for i in AVAILABLE_ISAS if i != INFO["isa"]]
    if not other:
        pytest.skip("one CPU path only")
    tuning(f"{other[0]}.kc=48")
    assert lamina.backend_info()["gemm_blocking"]["kc"] == INFO["gemm_blocking"]["kc"]
    assert "override" in lamina.backend_info()["tuning_source"]


@pytest.mark.parametrize("spec, match", [("kc", "not key=value"), ("kc=x", "not an integer"), ("kc=0", "not an integer"),
                                         ("kc=99999999", "not an integer"), ("small_n_b=scatter", "gather or transpose"),
                                         ("dot_width=128", "256 or 512"), ("bogus=1", "unknown key"),
                                         ("sse.kc=8", "not a CPU path")])
def test_bad_spec_is_a_clear_error(spec, match, tuning):
    before = lamina.backend_info()["gemm_blocking"]
    with pytest.raises(ValueError, match=match):
        tuning(spec)
    assert lamina.backend_info()["gemm_blocking"] == before  # nothing half-applied


def test_lamina_tuning_environment_variable():
    code = "import lamina, json; i = lamina.backend_info(); print(json.dumps([i['gemm_blocking'], i['variants'], i['tuning_source']]))"
    r = run(code, LAMINA_TUNING="kc=128,mc=28,small_n_b=gather,dot_width=512", LAMINA_CPU="avx512" if "avx512" in AVAILABLE_ISAS else "")
    assert r.returncode == 0, r.stderr
    import json
    blocking, variants, source = json.loads(r.stdout)
    assert blocking["kc"] == 128 and variants["small_n_b"] == "gather" and variants["dot_width"] == 512
    assert source == "cpuid + LAMINA_TUNING"
    if INFO["isa"] == "avx512":
        assert blocking["mc"] == 28
    r = run("import lamina", LAMINA_TUNING="kc=-3")
    assert r.returncode != 0 and "LAMINA_TUNING=kc=-3" in r.stderr and "Segmentation" not in r.stderr


def test_reset_tuning_restores_the_import_choice(tuning):
    tuning("kc=64,small_n_b=gather,dot_width=512")
    _native._reset_tuning()
    info = lamina.backend_info()
    assert info["gemm_blocking"] == INFO["gemm_blocking"] and info["variants"] == INFO["variants"]


# -- fast keyword arguments (csrc/bindings/fast_kwargs.h) ------------------------------------
def test_keywords_map_onto_positions(rng):
    a = rng.standard_normal((5, 7), dtype=np.float32)
    b = rng.standard_normal((6, 7), dtype=np.float32)
    want = a @ b.T
    np.testing.assert_allclose(_native.matmul(a, b, False, True), want, rtol=1e-5)
    np.testing.assert_allclose(_native.matmul(a, b, trans_b=True), want, rtol=1e-5)
    np.testing.assert_allclose(_native.matmul(b=b, a=a, trans_b=True), want, rtol=1e-5)
    out = np.empty((5, 6), np.float32)
    assert _native.matmul(a, b, out=out, trans_b=True) is out
    np.testing.assert_allclose(out, want, rtol=1e-5)
    x = rng.standard_normal(9, dtype=np.float32)
    np.testing.assert_array_equal(_native.leaky_relu(x, slope=0.5), np.where(x > 0, x, 0.5 * x))


@pytest.mark.parametrize("call", [
    lambda a: _native.matmul(a, a, bogus=1),           # unknown keyword
    lambda a: _native.matmul(a, a, a=a),               # given twice
    lambda a: _native.matmul(a, trans_b=True),         # required b missing
    lambda a: _native.matmul(a, a, False, False, None, out=None),  # too many
    lambda a: _native.matmul(a, a, trans_b="yes"),     # wrong type through a keyword
])
def test_irregular_keywords_raise_type_error(call):
    a = np.ones((2, 2), np.float32)
    with pytest.raises(TypeError):
        call(a)


def test_wrapped_functions_keep_their_identity():
    f = _native.matmul
    assert f.__name__ == "matmul" and "op(a) @ op(b)" in f.__doc__
    assert f.__wrapped__.__name__ == "matmul"
    assert "matmul" in repr(f)
    assert set(_native._kernel_signatures()) >= set(lamina.backend.KERNELS)


# -- the direct convolution (csrc/cpu/kernels/conv_direct.h), forced on and off ---------------
CONV_CASES = [  # (N, C, H, W, O, k, pad): eligible for the direct path (stride 1, few taps,
    (64, 1, 28, 28, 6, 5, 2),  # LeNet's conv1
    (3, 2, 17, 20, 5, 3, 1), (2, 3, 32, 33, 16, 5, 0), (1, 1, 16, 16, 1, 1, 0), (5, 1, 40, 37, 7, 4, 3),
    (2, 3, 19, 19, 12, 5, 4), (3, 1, 9, 47, 9, 2, 1),
    # channels in lanes (narrow rows, 8..16 output channels; AVX-512), LeNet's conv2 first:
    (4, 6, 14, 14, 16, 5, 0), (3, 4, 9, 11, 8, 3, 1), (2, 6, 14, 14, 12, 5, 2), (5, 3, 12, 7, 9, 5, 4),
    (2, 2, 30, 6, 16, 4, 1),
    # and their input gradient with an input row in the lanes (W <= 16): channel blocks of 6
    # (8 = 6 + 2, 13 = 6 + 6 + 1), a full-width row, 1 x 1 taps, fewer rows than a block; a
    # row wider than a vector keeps the GEMM path's grad_x
    (3, 8, 10, 16, 11, 3, 0), (2, 13, 7, 5, 16, 3, 2), (2, 16, 5, 9, 10, 1, 0), (4, 7, 3, 12, 8, 3, 1),
    (2, 6, 18, 18, 9, 5, 0),
    (3, 2, 8, 8, 20, 3, 1),  # more channels than lanes: the GEMM path either way
]


@pytest.mark.parametrize("direct", ["0", "1"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c)))
def test_conv_direct_forced_each_way(case, direct, isa, threads, tuning, rng):
    n, c, h, w_, o, k, pad = case
    tuning("conv_direct=" + direct)
    assert lamina.backend_info()["variants"]["conv_direct"] == (direct == "1")
    x = rng.standard_normal((n, c, h, w_), dtype=np.float32)
    w = rng.standard_normal((o, c, k, k), dtype=np.float32)
    b = rng.standard_normal(o, dtype=np.float32)
    x64, w64, b64 = x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
    scale = np.sqrt(c * k * k)
    for bias, act in ((b, "relu"), (None, None)):
        got = _native.conv2d(x, w, bias, padding=pad, activation=act)
        want = reference.conv2d(x64, w64, None if bias is None else b64, padding=pad, activation=act)
        np.testing.assert_allclose(got, want, atol=2e-6 * scale * np.abs(want).max(), rtol=0)
    gy = rng.standard_normal(got.shape, dtype=np.float32)
    want = reference.conv2d_backward(x64, w64, gy.astype(np.float64), padding=pad)
    for need_dx in (False, True):
        gx, gw, gb = _native.conv2d_backward(x, w, gy, padding=pad, compute_grad_x=need_dx)
        assert (gx is None) == (not need_dx)
        if need_dx:
            np.testing.assert_allclose(gx, want[0], atol=2e-6 * np.sqrt(o * k * k) * np.abs(want[0]).max(), rtol=0)
        tol = 2e-6 * np.sqrt(n * got.shape[2] * got.shape[3])
        np.testing.assert_allclose(gw, want[1], atol=tol * np.abs(want[1]).max(), rtol=0)
        np.testing.assert_allclose(gb, want[2], atol=tol * np.abs(want[2]).max(), rtol=0)


@pytest.mark.parametrize("shape", [((8, 1, 28, 28), (6, 1, 5, 5), 2), ((8, 6, 14, 14), (16, 6, 5, 5), 0)],
                         ids=["conv1", "conv2"])
def test_conv_direct_forward_matches_the_gemm_path_bit_for_bit(shape, tuning, rng):
    # Both sum the taps in the same order from zero, then add the bias: the direct forwards
    # (rows in lanes for conv1, channels in lanes for conv2) are faster schedules of the same
    # arithmetic.
    xs, ws, pad = shape
    x = rng.standard_normal(xs, dtype=np.float32)
    w = rng.standard_normal(ws, dtype=np.float32)
    b = rng.standard_normal(ws[0], dtype=np.float32)
    ys = []
    for direct in "01":
        tuning("conv_direct=" + direct)
        ys.append(_native.conv2d(x, w, b, padding=pad, activation="relu"))
    np.testing.assert_array_equal(ys[0], ys[1])


@pytest.mark.parametrize("case", [
    # (N, C, H, W, O, kH, kW, pad): kernel rows longer than one segment of 8 taps (6 + 5 and
    # 5 + 4), on the rows-in-lanes path (wide planes) and the channels-in-lanes path (narrow)
    (3, 1, 9, 40, 6, 3, 11, (1, 5)), (2, 1, 18, 18, 10, 9, 9, (0, 0)), (2, 2, 6, 30, 7, 1, 13, (0, 6)),
], ids=lambda c: "x".join(map(str, c[:7])))
def test_conv_direct_long_kernel_rows(case, isa, tuning, rng):
    n, c, h, w_, o, kh, kw, pad = case
    x = rng.standard_normal((n, c, h, w_), dtype=np.float32)
    w = rng.standard_normal((o, c, kh, kw), dtype=np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = reference.conv2d(x64, w64, None, padding=pad)
    gy = rng.standard_normal(y.shape)
    want = reference.conv2d_backward(x64, w64, gy, padding=pad)
    for direct in "01":
        tuning("conv_direct=" + direct)
        got = _native.conv2d(x, w, padding=pad)
        np.testing.assert_allclose(got, y, atol=2e-6 * np.sqrt(c * kh * kw) * np.abs(y).max(), rtol=0)
        gx, gw, gb = _native.conv2d_backward(x, w, gy.astype(np.float32), padding=pad)
        tol = 2e-6 * np.sqrt(n * y.shape[2] * y.shape[3])
        np.testing.assert_allclose(gx, want[0], atol=2e-6 * np.sqrt(o * kh * kw) * np.abs(want[0]).max(), rtol=0)
        np.testing.assert_allclose(gw, want[1], atol=tol * np.abs(want[1]).max(), rtol=0)
        np.testing.assert_allclose(gb, want[2], atol=tol * np.abs(want[2]).max(), rtol=0)
