"""Winograd 3x3 convolutions (csrc/cpu/kernels/winograd.cpp, lamina.reference.winograd).

The reference twin against conv2d's reference in float64; the native stages (filter, input and
output transforms) against the twin's, on every CPU path; conv2d / conv2d_backward with each
algorithm forced (conv_algo = winograd2 | winograd4 | gemm) through opcheck on every CPU path
and thread count, on shapes that hit the edge tiles (odd sizes, sizes below a tile, padding 0 to
3, channel counts off the vector width, groups of tiles cut mid-image); the algorithm report
(_conv_algorithms, backend_info) and LAMINA_CONV_ALGO."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lamina
import opcheck
from lamina import _native, ops, reference as R
from lamina.reference import winograd as RW

ISAS = opcheck.ISAS

# (N, C, H, W, O, padding): 3x3, stride 1, dilation 1 -- what Winograd applies to.
SHAPES = [
    (2, 3, 7, 9, 4, 1),      # odd sizes: partial tiles on both edges
    (1, 5, 2, 3, 3, 1),      # the whole output smaller than one tile
    (2, 17, 5, 5, 19, 0),    # channels off the vector width (8 and 16), no padding
    (2, 6, 6, 11, 7, 2),     # padding 2: the input gradient's convolution is unpadded
    (1, 4, 1, 1, 5, 1),      # a 1x1 image, padded to 3x3
    (1, 8, 3, 3, 8, 0),      # a single output pixel
    (2, 9, 13, 7, 5, 3),     # padding 3: grad_x (and so grad_w) stays on the GEMM path
    (3, 33, 9, 10, 20, 1),   # many channels, 3 images on 2 threads
    (4, 16, 12, 12, 24, 1),  # a batch split over 2 threads
    (1, 20, 17, 18, 9, (0, 2)),  # a padding pair
]


def _id(s):
    return "x".join(str(v).replace(" ", "") for v in s)


def _case(rng, shape, dtype=np.float32):
    N, C, H, W, O, p = shape
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    return x, w, b, p


def _pair(p):
    return (p, p) if np.isscalar(p) else tuple(p)


@pytest.fixture
def algo():
    """Sets the native conv algorithm for one test; back to the import-time tuning after."""
    def force(spec):
        _native._set_tuning(spec)
    yield force
    _native._reset_tuning()


# ---- the reference twin ----------------------------------------------------------------------

@pytest.mark.parametrize("m", RW.TILES)
def test_matrices_compute_a_1d_correlation(m, rng):
    BT, G, AT = RW.transform_matrices(m)
    g, d = rng.standard_normal(3), rng.standard_normal(m + 2)
    want = np.array([d[i:i + 3] @ g for i in range(m)])
    np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m", RW.TILES)
@pytest.mark.parametrize("shape", SHAPES, ids=_id)
def test_reference_twin_equals_conv_reference(m, rng, shape):
    x, w, b, p = _case(rng, shape, np.float64)
    want = R.conv2d(x, w, b, padding=p)
    got = RW.conv2d(x, w, b, padding=_pair(p), m=m)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    np.testing.assert_allclose(RW.conv2d(x, w, b, padding=_pair(p), m=m, activation="relu"), np.maximum(want, 0),
                               rtol=1e-10, atol=1e-10 * np.abs(want).max())
    if max(_pair(p)) <= 2:
        gy = rng.standard_normal(want.shape)
        gx = R.conv2d_backward(x, w, gy, padding=p)[0]
        np.testing.assert_allclose(RW.conv2d_backward_data(x.shape, w, gy, padding=_pair(p), m=m), gx,
                                   rtol=1e-10, atol=1e-10 * np.abs(gx).max())


def test_reference_twin_rejects_what_it_does_not_compute(rng):
    with pytest.raises(ValueError, match="m must be"):
        RW.transform_matrices(3)
    with pytest.raises(ValueError, match="3, 3"):
        RW.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match="padding must be in"):
        RW.conv2d_backward_data((1, 1, 5, 5), np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 9, 9)), padding=3)


# ---- the native stages against the twin's ----------------------------------------------------

@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m", RW.TILES)
@pytest.mark.parametrize("shape", [SHAPES[i] for i in (0, 1, 2, 3, 4, 7)], ids=_id)
def test_native_stages_match_the_reference(isa, m, rng, shape):
    x, w, b, p = _case(rng, shape)
    N, C, H, W, O, _ = shape
    ph, pw = _pair(p)
    OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
    isa0 = lamina.backend_info()["isa"]
    _native._select_isa(isa)
    try:
        U = _native._winograd_filter_transform(w, m)
        Ut = _native._winograd_filter_transform(np.ascontiguousarray(w.transpose(1, 0, 2, 3)), m, True)
        V = _native._winograd_input_transform(x, m, (ph, pw))
        M = rng.standard_normal(((m + 2) ** 2, O, V.shape[2])).astype(np.float32)
        y = _native._winograd_output_transform(M, m, N, OH, OW, b, "relu")
    finally:
        _native._select_isa(isa0)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    U_ref = RW.filter_transform(w64, m)
    np.testing.assert_allclose(U, U_ref, rtol=1e-6, atol=1e-6 * np.abs(U_ref).max())
    # flipped: the filter w[o, c, ::-1, ::-1] of the transposed-channel convolution
    np.testing.assert_allclose(Ut, RW.filter_transform(np.ascontiguousarray(w64[:, :, ::-1, ::-1]), m),
                               rtol=1e-6, atol=1e-6 * np.abs(U_ref).max())
    V_ref = RW.input_transform(x64, m, (ph, pw), OH, OW)
    np.testing.assert_allclose(V, V_ref, rtol=1e-6, atol=1e-6 * np.abs(V_ref).max())
    y_ref = RW.output_transform(M.astype(np.float64), m, N, OH, OW, b64, "relu")
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5 * np.abs(y_ref).max())


def test_stage_aids_check_their_arguments(rng):
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="m must be 2 or 4"):
        _native._winograd_filter_transform(w, 3)
    with pytest.raises(ValueError, match="w must be"):
        _native._winograd_filter_transform(np.zeros((2, 3, 5, 5), np.float32), 2)
    with pytest.raises(ValueError, match="M has shape"):
        _native._winograd_output_transform(np.zeros((16, 2, 5), np.float32), 2, 1, 4, 4)


# ---- conv2d / conv2d_backward with each algorithm forced, on every path ------------------------

def _conv_op():
    from test_conv import CONV2D
    return CONV2D


@pytest.mark.parametrize("target", opcheck.targets(backends=False, fd=False, torch=False))
@pytest.mark.parametrize("forced", ["winograd2", "winograd4", "gemm"])
@pytest.mark.parametrize("shape", SHAPES, ids=_id)
def test_forced_algorithm_matches_the_reference(target, forced, rng, algo, shape):
    algo(f"conv_algo={forced}")
    x, w, b, p = _case(rng, shape)
    reported = _native._conv_algorithms(x, w, padding=p)["forward"]
    assert reported == forced if forced != "gemm" else not reported.startswith("winograd")
    op = _conv_op()
    opcheck.check(target, op, (x, w, b), dict(stride=1, padding=p, dilation=1))
    opcheck.check(target, op, (x, w, b), dict(stride=1, padding=p, dilation=1, activation="relu"), backward=False)


@pytest.mark.parametrize("target", opcheck.targets(backends=False, fd=False, torch=False))
@pytest.mark.parametrize("forced", ["winograd2", "winograd4"])
@pytest.mark.parametrize("tiles", [1, 3, 7])
def test_groups_cut_anywhere(target, forced, tiles, rng, algo):
    """Groups of `tiles` tiles (rounded to whole tile rows): groups end mid-image and the last
    group of a thread is short; grad_w sums over groups and threads."""
    algo(f"conv_algo={forced},wino_tiles={tiles}")
    x, w, b, p = _case(rng, (3, 10, 11, 9, 12, 1))
    opcheck.check(target, _conv_op(), (x, w, b), dict(stride=1, padding=p, dilation=1))


@pytest.mark.parametrize("forced", ["winograd2", "winograd4"])
def test_backward_without_grad_x(forced, rng, algo):
    algo(f"conv_algo={forced}")
    x, w, _, p = _case(rng, SHAPES[7])
    gy = rng.standard_normal(R.conv2d(x, w, padding=p).shape).astype(np.float32)
    gx, gw, gb = ops.conv2d_backward(x, w, gy, padding=p, compute_grad_x=False)
    _, gw_ref, gb_ref = R.conv2d_backward(*(a.astype(np.float64) for a in (x, w, gy)), padding=p)
    assert gx is None
    np.testing.assert_allclose(gw, gw_ref, rtol=2e-5, atol=8e-5 * np.abs(gw_ref).max())
    np.testing.assert_allclose(gb, gb_ref, rtol=2e-5, atol=8e-5 * np.abs(gb_ref).max())


@pytest.mark.parametrize("forced", ["winograd2", "winograd4"])
def test_nan_in_the_input_reaches_the_outputs_it_touches(forced, rng, algo):
    algo(f"conv_algo={forced}")
    x, w, b, _ = _case(rng, (1, 4, 10, 10, 3, 1))
    x[0, 1, 4, 4] = np.nan
    y = ops.conv2d(x, w, b, padding=1, activation="relu")
    assert np.isnan(y[0, :, 3:6, 3:6]).all()
    assert np.isfinite(y[0, :, :2]).all()  # rows 0-1 read input rows 0-2 only


# ---- the choice and its report ---------------------------------------------------------------

def test_report_follows_the_forced_algorithm(rng, algo):
    x, w, _, _ = _case(rng, (2, 32, 8, 8, 32, 1))
    for forced in ("winograd2", "winograd4", "gemm"):
        algo(f"conv_algo={forced}")
        assert lamina.backend_info()["variants"]["conv_algo"] == forced
        a = _native._conv_algorithms(x, w, padding=1)
        if forced == "gemm":
            assert not any(v.startswith("winograd") for v in a.values()), a
        else:
            assert a == {"forward": forced, "grad_x": forced, "grad_w": forced}
    # strided or 5x5: never Winograd, forced or not
    algo("conv_algo=winograd4")
    assert _native._conv_algorithms(x, w, stride=2, padding=1)["forward"] != "winograd4"
    w5 = rng.standard_normal((4, 32, 5, 5)).astype(np.float32)
    assert _native._conv_algorithms(x, w5, padding=2)["forward"] != "winograd4"
    # padding 3: grad_x (and so grad_w) on the other paths
    a = _native._conv_algorithms(x, w, padding=3)
    assert a["forward"] == "winograd4" and a["grad_x"] == "gemm" and a["grad_w"] != "winograd4"


def test_auto_rule_picks_winograd_for_many_channels_only(rng, algo):
    algo("conv_algo=auto")
    x3 = np.zeros((64, 3, 32, 32), np.float32)
    w3 = np.zeros((32, 3, 3, 3), np.float32)
    assert not _native._conv_algorithms(x3, w3, padding=1)["forward"].startswith("winograd")
    x = np.zeros((64, 32, 16, 16), np.float32)
    w = np.zeros((64, 32, 3, 3), np.float32)
    assert _native._conv_algorithms(x, w, padding=1)["forward"].startswith("winograd")


def test_bad_algorithm_is_a_clear_error(algo):
    with pytest.raises(ValueError, match="conv_algo=fft: expected auto, gemm, winograd2 or winograd4"):
        algo("conv_algo=fft")
    with pytest.raises(ValueError, match="wino_tiles"):
        algo("wino_tiles=-1")


def _run(env_extra, code):
    env = {k: v for k, v in os.environ.items() if k not in ("LAMINA_TUNING", "LAMINA_CONV_ALGO")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_lamina_conv_algo_environment_variable():
    r = _run({"LAMINA_CONV_ALGO": "winograd2"},
             "import lamina, json; i = lamina.backend_info(); print(json.dumps([i['variants']['conv_algo'], i['tuning_source']]))")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == ["winograd2", "cpuid"]
    r = _run({"LAMINA_CONV_ALGO": "fast"}, "import lamina")
    assert r.returncode != 0 and "LAMINA_CONV_ALGO=fast" in r.stderr


# ---- out of memory inside the Winograd kernels: a MemoryError, and the next call works ----------

_frng = np.random.default_rng(11)
_fx, _fw, _fgy = (_frng.standard_normal(s).astype(np.float32) for s in ((8, 16, 16, 16), (24, 16, 3, 3), (8, 24, 16, 16)))
FAULT_CASES = {
    "conv2d": ("conv2d", (_fx, _fw), dict(padding=1)),
    "conv2d_backward": ("conv2d_backward", (_fx, _fw, _fgy), dict(padding=1)),
    "conv2d_backward, grad_w only": ("conv2d_backward", (_fx, _fw, _fgy), dict(padding=1, compute_grad_x=False)),
}


@pytest.fixture(scope="module", params=["winograd2", "winograd4"])
def wino_child(request):
    """A crashguard worker whose lamina was imported with LAMINA_CONV_ALGO set (every call in
    it a possible abort, reported as a failed case)."""
    from crashguard import Child
    old = os.environ.get("LAMINA_CONV_ALGO")
    os.environ["LAMINA_CONV_ALGO"] = request.param
    c = Child(timeout=60)
    try:
        info = c.run("lamina._native", "backend_info")
    finally:
        if old is None:
            del os.environ["LAMINA_CONV_ALGO"]
        else:
            os.environ["LAMINA_CONV_ALGO"] = old
    assert info[0] == "ok" and info[1]["variants"]["conv_algo"] == request.param, info[:2]
    yield c
    c.close()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("count", [1, 2**30], ids=["one failure", "every request fails"])
@pytest.mark.parametrize("case", list(FAULT_CASES))
def test_a_failed_workspace_allocation_is_a_memory_error(wino_child, case, count, threads):
    name, args, kwargs = FAULT_CASES[case]
    failed = wino_child.run("lamina.ops", name, args, kwargs, threads=threads, fail_allocs=count)
    assert failed[0] == "raise" and failed[1] == "MemoryError", f"{case}: {failed[:2]} {failed[2:]}"
    again = wino_child.run("lamina.ops", name, args, kwargs, threads=threads)
    assert again[0] == "ok", again[:3]
    want = R.conv2d(*(a.astype(np.float64) for a in args), **kwargs) if name == "conv2d" else \
        R.conv2d_backward(*(a.astype(np.float64) for a in args), padding=1)
    for g, r in zip(again[1] if isinstance(again[1], tuple) else (again[1],),
                    want if isinstance(want, tuple) else (want,)):
        if g is not None:
            np.testing.assert_allclose(g, r, rtol=2e-5, atol=8e-5 * np.abs(r).max())
