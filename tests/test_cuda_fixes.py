"""The CUDA backend's device-side behaviour that the kernels' results alone do not show: stream
ordering with other libraries (the interchange protocols), launch geometry within the device's
limits, memory and its pool, the device guard, error reporting, cuBLAS failures, determinism,
and the kernels that must write nothing on bad input.

They run on "cuda_emu": the CUDA sources compiled by g++ over the emulator of the CUDA execution
model (csrc/cuda/emu), whose streams run lazily (queued work runs only when something waits for
it), whose memory reads as NaN until written and after it is freed, and whose threads run in a
shuffled order; lamina._cuda_emu adds hooks for a second party (its own streams, a kernel
queued on any stream, the calling thread's current device). The launch plans need no device.
"""
import ctypes
import gc
import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import lamina
from lamina import backend, reference as ref

HAS_EMU = importlib.util.find_spec("lamina._cuda_emu") is not None
HAS_CUDA = importlib.util.find_spec("lamina._cuda") is not None
needs_emu = pytest.mark.skipif(not HAS_EMU, reason="lamina was built without the CUDA emulator (LAMINA_CUDA_EMU=ON)")
F32 = np.float32


@pytest.fixture
def be():
    if not HAS_EMU:
        pytest.skip("lamina was built without the CUDA emulator (LAMINA_CUDA_EMU=ON)")
    return backend.get_backend("cuda_emu")


@pytest.fixture
def mod(be):
    return be.rt.module


def _run(code, **env):
    """Runs `code` in a fresh interpreter (for what is read at import or init: the environment)."""
    e = dict(os.environ, **{k: str(v) for k, v in env.items()})
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                       env=e)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r.stdout


class _Producer:
    """Another library's device array: __cuda_array_interface__ over memory it owns."""

    def __init__(self, buf, n, stream="absent", version=2):
        self.buf = buf
        self.__cuda_array_interface__ = {"shape": (n,), "typestr": "<f4", "data": (buf.ptr, False),
                                         "version": version, "strides": None}
        if stream != "absent":
            self.__cuda_array_interface__["stream"] = stream


def _producer_memory(mod, n):
    buf = mod.Buffer(4 * n)
    mod.synchronize()  # the allocation is done before the producer's own stream writes to it
    return buf


# -- launch geometry ----------------------------------------------------------------------------
def _plans_module():
    for name in ("lamina._cuda", "lamina._cuda_emu"):
        if importlib.util.find_spec(name) is not None:
            return importlib.import_module(name)
    pytest.skip("lamina was built without CUDA")


def _within_sm90_limits(plan, what):
    gx, gy, gz = plan["grid"]
    bx, by, bz = plan["block"]
    assert 1 <= bx * by * bz <= 1024, f"{what}: {bx * by * bz} threads per block"
    assert 1 <= gx <= 2**31 - 1, f"{what}: grid.x = {gx}"
    assert 1 <= gy <= 65535 and 1 <= gz <= 65535, f"{what}: grid.y = {gy}, grid.z = {gz}"


SIZES = [0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 4096, 65535 * 64, 65535 * 64 + 1, 65535 * 128 + 7, 10**9,
         2**31 + 5, 2**40]


def test_gemm_plans_stay_within_the_device_limits_for_any_size():
    m = _plans_module()
    for M in SIZES:
        for N in SIZES:
            for K in (0, 1, 511, 512, 4096, 10**7, 2**33):
                for sms in (1, 132):
                    p = m.gemm_plan(M, N, K, sms)
                    what = f"gemm_plan({M}, {N}, {K}, sms={sms})"
                    _within_sm90_limits(p, what)
                    bm, bn = p["tile"]
                    tm, tn = p["tiles"]
                    assert tm * bm >= M and tn * bn >= N, what  # every element of C has a tile
                    assert p["grid"][0] <= tm * tn, what  # the blocks loop over the tiles
                    assert p["grid"][2] == p["splits"], what
                    if K:  # the splits cover K, each one nonempty
                        assert p["splits"] * p["k_chunk"] >= K > (p["splits"] - 1) * p["k_chunk"], what
                        assert p["k_chunk"] % 16 == 0, what


def test_gemm_plans_for_a_prediction_over_millions_of_rows():
    m = _plans_module()
    for M, N in ((4_200_000, 17), (8_400_000, 16), (100_000_000, 10), (100_000_000, 300)):
        p = m.gemm_plan(M, N, 400)
        _within_sm90_limits(p, f"gemm_plan({M}, {N}, 400)")
        assert p["grid"][1] == 1


def test_element_row_and_reduction_plans_stay_within_the_device_limits():
    m = _plans_module()
    for n in SIZES:
        for name in ("each_plan", "reduce_plan", "block_per_row_plan", "warp_per_row_plan"):
            _within_sm90_limits(getattr(m, name)(n), f"{name}({n})")
    assert m.reduce_plan(2**40)["grid"][0] <= 1024  # the partial sums' scratch holds 1024
    with pytest.raises(ValueError, match="M must be >= 0"):
        m.gemm_plan(-1, 2, 3)
    with pytest.raises(ValueError, match="sms must be >= 1"):
        m.gemm_plan(1, 2, 3, 0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        m.each_plan(-5)


# -- __cuda_array_interface__ and DLPack: ordering with the other library's streams ----------------
@needs_emu
def test_an_import_without_a_stream_waits_for_the_legacy_default_stream(be, mod):
    n = 1000
    buf = _producer_memory(mod, n)
    mod.emu_fill_async(buf.ptr, n, 3.0, 0)  # the producer's kernel, on the legacy default stream
    x = be.asarray(_Producer(buf, n))  # version 2, no stream published (as PyTorch)
    np.testing.assert_array_equal(be.to_numpy(be.scale(x, 2.0)), np.full(n, 6.0, F32))


@needs_emu
def test_an_import_waits_for_the_published_stream(be, mod):
    n = 1000
    h = mod.emu_stream_create(True)
    try:
        buf = _producer_memory(mod, n)
        mod.emu_fill_async(buf.ptr, n, 5.0, h)
        x = be.asarray(_Producer(buf, n, stream=h, version=3))
        np.testing.assert_array_equal(be.to_numpy(be.scale(x, 2.0)), np.full(n, 10.0, F32))
    finally:
        mod.emu_stream_destroy(h)


@needs_emu
def test_an_import_with_stream_zero_is_refused(be, mod):
    buf = _producer_memory(mod, 4)
    with pytest.raises(ValueError, match="stream'\\] is 0"):
        be.asarray(_Producer(buf, 4, stream=0, version=3))


@needs_emu
def test_the_producer_reuses_imported_memory_only_after_lamina_read_it(be, mod):
    n = 1000
    buf = _producer_memory(mod, n)
    mod.emu_fill_async(buf.ptr, n, 1.0, 0)
    x = be.asarray(_Producer(buf, n))  # no stream published: the producer works on the legacy stream
    y = be.scale(x, 2.0)  # queued on lamina's stream, not run yet
    del x
    gc.collect()  # lamina lets the memory go back to its producer ...
    mod.emu_fill_async(buf.ptr, n, 99.0, 0)  # ... which writes new data there, on its stream
    mod.emu_stream_synchronize(0)
    np.testing.assert_array_equal(be.to_numpy(y), np.full(n, 2.0, F32))


@needs_emu
def test_the_producer_reuses_memory_on_its_own_stream_only_after_lamina_read_it(be, mod):
    n = 1000
    h = mod.emu_stream_create(True)
    try:
        buf = _producer_memory(mod, n)
        mod.emu_fill_async(buf.ptr, n, 1.0, h)
        x = be.asarray(_Producer(buf, n, stream=h, version=3))
        y = be.scale(x, 2.0)  # queued on lamina's stream, not run yet
        del x
        gc.collect()  # lamina lets the memory go back to its producer ...
        mod.emu_fill_async(buf.ptr, n, 99.0, h)  # ... which writes new data there, on its stream
        mod.emu_stream_synchronize(h)
        np.testing.assert_array_equal(be.to_numpy(y), np.full(n, 2.0, F32))
    finally:
        mod.emu_stream_destroy(h)


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", ctypes.c_uint32), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    pass


_DLManagedTensor._fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                             ("deleter", ctypes.CFUNCTYPE(None, ctypes.POINTER(_DLManagedTensor)))]


def _consume(capsule):
    """Takes the tensor out of a DLPack capsule as a consumer does: (DLManagedTensor pointer)."""
    api = ctypes.pythonapi
    api.PyCapsule_GetPointer.restype, api.PyCapsule_GetPointer.argtypes = ctypes.c_void_p, [ctypes.py_object,
                                                                                          ctypes.c_char_p]
    api.PyCapsule_SetName.restype, api.PyCapsule_SetName.argtypes = ctypes.c_int, [ctypes.py_object, ctypes.c_char_p]
    p = api.PyCapsule_GetPointer(capsule, b"dltensor")
    assert api.PyCapsule_SetName(capsule, b"used_dltensor") == 0
    return ctypes.cast(p, ctypes.POINTER(_DLManagedTensor))


_FREED_WORD = 0x7FF7DEAD  # what the emulator writes over memory when its free executes


@needs_emu
def test_a_dlpack_export_is_freed_only_after_the_consumers_stream_is_done(be, mod):
    n = 1000
    h = mod.emu_stream_create(True)
    try:
        a = be.asarray(np.ones(n, F32))
        addr = a.ptr
        cap = a.__dlpack__(stream=h)
        t = _consume(cap)
        assert t.contents.dl_tensor.data == addr and t.contents.dl_tensor.device.device_type == 2
        mod.emu_fill_async(addr, n, 7.0, h)  # the consumer's kernel on its stream (queued, not run)
        t.contents.deleter(t)  # the consumer is done with the tensor; lamina may free it now
        del a, cap
        gc.collect()
        mod.synchronize()  # lamina's free has run
        mod.emu_stream_synchronize(h)  # and so has the consumer's kernel
        # The emulator keeps freed memory mapped (poisoned, in quarantine): the free came last.
        words = np.frombuffer(ctypes.string_at(addr, 4 * n), np.uint32)
        assert (words == _FREED_WORD).all(), "the consumer's kernel ran after lamina freed the memory"
    finally:
        mod.emu_stream_destroy(h)


@needs_emu
def test_dlpack_checks_its_stream_and_device(be, mod):
    a = be.asarray(np.ones(3, F32))
    assert a.__dlpack_device__() == (2, mod.device_id())
    with pytest.raises(ValueError, match="stream 0 is disallowed"):
        a.__dlpack__(stream=0)
    with pytest.raises(TypeError, match="stream must be an int"):
        a.__dlpack__(stream="1")
    with pytest.raises(BufferError, match="dl_device"):
        a.__dlpack__(dl_device=(1, 0))
    a.__dlpack__(stream=-1, dl_device=(2, mod.device_id()))  # no ordering asked: fine


# -- kernels -------------------------------------------------------------------------------------
@needs_emu
def test_softmax_cross_entropy_with_no_classes_raises_the_references_error(be):
    logits = np.zeros((3, 0), F32)
    labels = np.array([1, 0, 2])
    with pytest.raises(ValueError) as want:
        ref.softmax_cross_entropy(logits, labels)
    with pytest.raises(ValueError) as got:
        be.softmax_cross_entropy(be.asarray(logits), be.asarray(labels))
    assert str(got.value) == str(want.value)
    loss, grad = be.softmax_cross_entropy(be.zeros((0, 0)), be.asarray(np.zeros(0, np.int64)))
    assert np.isnan(loss) and grad.shape == (0, 0)


@needs_emu
def test_out_equal_to_an_input_gives_the_right_result_for_every_kernel_that_is_not_element_wise(be):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((130, 130)).astype(F32)
    b = rng.standard_normal((130, 130)).astype(F32)
    da, db = be.asarray(a), be.asarray(b)
    got = be.matmul(da, db, out=da)
    assert got is da
    np.testing.assert_allclose(be.to_numpy(da), a @ b, rtol=1e-4, atol=1e-3)
    dx, dw = be.asarray(a), be.asarray(b)
    be.linear(dx, dw, activation="relu", out=dx)
    np.testing.assert_allclose(be.to_numpy(dx), np.maximum(a @ b.T, 0), rtol=1e-4, atol=1e-3)
    perm = rng.permutation(130)
    dg = be.asarray(a)
    be.gather_rows(dg, be.asarray(perm), out=dg)
    np.testing.assert_array_equal(be.to_numpy(dg), a[perm])
    x = rng.standard_normal((2, 4, 6, 6)).astype(F32)
    w = rng.standard_normal((4, 4, 1, 1)).astype(F32)
    dx4 = be.asarray(x)
    be.conv2d(dx4, be.asarray(w), out=dx4)
    np.testing.assert_allclose(be.to_numpy(dx4), ref.conv2d(x, w), rtol=1e-4, atol=1e-4)
    dup = be.asarray(x)
    be.upsample_nearest2d_backward(dup, 2, out=dup[:, :, :3, :3])
    np.testing.assert_allclose(be.to_numpy(dup)[:, :, :3, :3], ref.upsample_nearest2d_backward(x, 2), rtol=1e-5,
                               atol=1e-6)
    # element-wise kernels still write in place
    dr = be.asarray(a)
    assert be.relu(dr, out=dr) is dr
    np.testing.assert_array_equal(be.to_numpy(dr), np.maximum(a, 0))


def _overlapping_windows(rng):
    # 3x3 windows at stride 1 overlap; values of very different magnitudes make the sum's order
    # change its rounding
    x = rng.standard_normal((2, 3, 12, 12)).astype(F32)
    gy = (rng.standard_normal((2, 3, 10, 10)) * 10.0 ** rng.integers(-4, 5, (2, 3, 10, 10))).astype(F32)
    return x, gy


@needs_emu
def test_max_pool2d_backward_is_deterministic_and_the_cpus_bits(be):
    rng = np.random.default_rng(7)
    x, gy = _overlapping_windows(rng)
    x[:, :, 4:8, 4:8] = 3.0  # ties: many windows pick the same cell
    native = backend.get_backend("native")
    _, idx = native.max_pool2d(x, 3, 1)
    want = native.max_pool2d_backward(gy, idx, x.shape)
    np.testing.assert_allclose(want, ref.max_pool2d_backward(gy, idx, x.shape), rtol=1e-6, atol=1e-6)
    dgy, didx = be.asarray(gy), be.asarray(idx)
    for _ in range(3):  # each launch runs the threads in another order
        got = be.to_numpy(be.max_pool2d_backward(dgy, didx, x.shape))
        np.testing.assert_array_equal(got, want)


@needs_emu
def test_max_pool2d_backward_reports_the_first_bad_index(be):
    rng = np.random.default_rng(8)
    x, gy = _overlapping_windows(rng)
    _, idx = ref.max_pool2d(x, 3, 1)
    idx[1, 2, 3, 4] = 144
    idx[1, 2, 5, 0] = -1
    with pytest.raises(ValueError) as want:
        ref.max_pool2d_backward(gy, idx, x.shape)
    with pytest.raises(ValueError) as got:
        be.max_pool2d_backward(be.asarray(gy), be.asarray(idx), x.shape)
    assert str(got.value) == str(want.value)


@needs_emu
def test_gather_rows_writes_nothing_when_an_index_is_bad(be):
    x = np.arange(40, dtype=F32).reshape(10, 4)
    out = be.zeros((5, 4))
    idx = np.array([1, 2, 3, 4, 10])
    with pytest.raises(ValueError) as want:
        ref.gather_rows(x, idx, np.zeros((5, 4), F32))
    for dtype in (np.int64, np.int32):
        with pytest.raises(ValueError) as got:
            be.gather_rows(be.asarray(x), be.asarray(idx.astype(dtype)), out=out)
        assert str(got.value) == str(want.value)
        np.testing.assert_array_equal(be.to_numpy(out), np.zeros((5, 4), F32))


@needs_emu
def test_sgd_step_without_momentum_copies_the_velocity_to_velocity_out(be):
    p = np.array([1.0, 2.0, 3.0], F32)
    g = np.array([0.5, -1.0, 2.0], F32)
    v = np.array([4.0, 5.0, 6.0], F32)
    dp, dv, dvout = be.asarray(p), be.asarray(v), be.zeros(3)
    be.sgd_step(dp, be.asarray(g), 0.1, velocity=dv, momentum=0.0, velocity_out=dvout)
    rp, rv, rvout = p.copy(), v.copy(), np.zeros(3, F32)
    ref.sgd_step(rp, g, 0.1, velocity=rv, momentum=0.0, velocity_out=rvout)
    np.testing.assert_array_equal(be.to_numpy(dvout), rvout)
    np.testing.assert_array_equal(be.to_numpy(dv), v)
    np.testing.assert_allclose(be.to_numpy(dp), rp, rtol=1e-7)
    with pytest.raises(ValueError, match="velocity_out requires velocity"):
        be.sgd_step(dp, be.asarray(g), 0.1, velocity_out=dvout)


def _native_uses_fma():
    return lamina.backend_info().get("isa") in ("avx2", "avx512")


@needs_emu
@pytest.mark.parametrize("decay", ["none", "l2", "decoupled"])
def test_adam_step_gives_the_cpus_bits(be, decay):
    if not _native_uses_fma():
        pytest.skip("the native backend runs its generic path (no FMA): its Adam step is not the GPU's bits")
    rng = np.random.default_rng(11)
    n = 1000
    p, g = rng.standard_normal(n).astype(F32), rng.standard_normal(n).astype(F32)
    m, v = (rng.standard_normal(n) * 0.1).astype(F32), rng.random(n).astype(F32) * 0.01
    kw = dict(lr=1e-3, step=7, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0 if decay == "none" else 0.01,
              decoupled=decay == "decoupled")
    native = backend.get_backend("native")
    cp, cm, cv = p.copy(), m.copy(), v.copy()
    native.adam_step(cp, g, cm, cv, **kw)
    dp, dm, dv = be.asarray(p), be.asarray(m), be.asarray(v)
    be.adam_step(dp, be.asarray(g), dm, dv, **kw)
    for got, want in ((dp, cp), (dm, cm), (dv, cv)):
        np.testing.assert_array_equal(be.to_numpy(got).view(np.uint32), want.view(np.uint32))


@needs_emu
@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 1e-3)])
def test_sgd_step_gives_the_cpus_bits(be, momentum, nesterov, wd):
    if not _native_uses_fma():
        pytest.skip("the native backend runs its generic path (no FMA)")
    rng = np.random.default_rng(12)
    n = 1000
    p, g, v = (rng.standard_normal(n).astype(F32) for _ in range(3))
    native = backend.get_backend("native")
    cp, cv = p.copy(), v.copy()
    kw = dict(momentum=momentum, nesterov=nesterov, weight_decay=wd)
    native.sgd_step(cp, g, 0.037, velocity=cv, **kw)
    dp, dv = be.asarray(p), be.asarray(v)
    be.sgd_step(dp, be.asarray(g), 0.037, velocity=dv, **kw)
    np.testing.assert_array_equal(be.to_numpy(dp).view(np.uint32), cp.view(np.uint32))
    np.testing.assert_array_equal(be.to_numpy(dv).view(np.uint32), cv.view(np.uint32))


# -- memory ----------------------------------------------------------------------------------------
@needs_emu
def test_lamina_has_a_pool_of_its_own_and_empty_cache_releases_it(be, mod):
    # the device's default pool, which other libraries share, keeps its release threshold (0)
    assert mod.default_pool_release_threshold() == 0
    a = be.zeros((1 << 18,))
    info = mod.pool_info()
    assert info["pool_used"] >= a.nbytes and info["pool_reserved"] >= info["pool_used"]
    assert info["pool_reserved_peak"] >= info["pool_reserved"] and info["pool_used_peak"] >= info["pool_used"]
    del a
    gc.collect()
    mod.synchronize()
    kept = mod.pool_info()
    assert kept["pool_reserved"] >= 1 << 20  # freed memory stays cached in lamina's pool
    released = mod.empty_cache()
    after = mod.pool_info()
    assert released >= 1 << 20 and after["pool_reserved"] == kept["pool_reserved"] - released
    assert after["pool_reserved"] <= after["pool_used"] + (1 << 20)


# -- the device guard ----------------------------------------------------------------------------
@needs_emu
def test_every_call_runs_on_laminas_device_and_leaves_the_callers_current():
    out = _run("""
        import threading
        import numpy as np
        import lamina._cuda_emu as m
        from lamina import backend
        m.emu_set_device(1)
        be = backend.get_backend("cuda_emu")  # initialises lamina's device (0)
        assert m.emu_get_device() == 1, m.emu_get_device()
        x = be.asarray(np.arange(6, dtype=np.float32))
        y = be.matmul(x.reshape(2, 3), x.reshape(3, 2))
        assert m.emu_get_device() == 1
        got = []
        def work():
            m.emu_set_device(1)
            z = be.scale(x, 2.0)
            got.append((be.to_numpy(z), m.emu_get_device()))
        t = threading.Thread(target=work)
        t.start(); t.join()
        assert got[0][1] == 1
        np.testing.assert_array_equal(got[0][0], np.arange(6) * 2.0)
        np.testing.assert_array_equal(be.to_numpy(y), np.arange(6).reshape(2, 3) @ np.arange(6).reshape(3, 2))
        del x, y
        import gc; gc.collect()
        m.synchronize()
        assert m.emu_get_device() == 1
        print("ok")
    """, LAMINA_CUDA_EMU_DEVICES=2)
    assert out.strip().endswith("ok")


# -- errors ----------------------------------------------------------------------------------------
@needs_emu
def test_lamina_cuda_sync_runs_every_launch_before_returning():
    code = """
        import numpy as np
        import lamina._cuda_emu as m
        from lamina import backend
        be = backend.get_backend("cuda_emu")
        x = be.asarray(np.ones(1000, np.float32))
        m.synchronize()
        y = be.scale(x, 2.0)
        print(m.sync_mode(), m.emu_pending(m.stream()))
    """
    assert _run(code, LAMINA_CUDA_SYNC=1).split() == ["True", "False"]
    assert _run(code, LAMINA_CUDA_SYNC=0).split() == ["False", "True"]


_FAKE_CUBLAS = r"""
int cublasCreate_v2(void** h) { *h = (void*)0x1; return CREATE_STATUS; }
int cublasSetStream_v2(void* h, void* s) { return 0; }
int cublasSetMathMode(void* h, int m) { return 0; }
int cublasSgemm_v2(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* a, int lda,
                   const float* b, int ldb, const float* beta, float* c, int ldc) { return SGEMM_STATUS; }
int lamina_emu_cublas_attach(const void* api) { return 0; }
"""


def _fake_cublas(tmp_path, create_status, sgemm_status):
    cc = next((c for c in ("cc", "gcc", "clang") if subprocess.run(["which", c], capture_output=True).returncode == 0),
              None)
    if cc is None:
        pytest.skip("no C compiler to build a stand-in libcublas")
    src = tmp_path / "fake_cublas.c"
    src.write_text(_FAKE_CUBLAS)
    lib = tmp_path / f"libfakecublas_{create_status}_{sgemm_status}.so"
    subprocess.run([cc, "-shared", "-fPIC", f"-DCREATE_STATUS={create_status}", f"-DSGEMM_STATUS={sgemm_status}",
                    "-o", str(lib), str(src)], check=True)
    return lib


_CUBLAS_RUN = """
    import numpy as np
    import lamina._cuda_emu as m
    assert m.cublas_load(LIB) == "", m.cublas_load(LIB)
    from lamina import backend
    be = backend.get_backend("cuda_emu")
    m.set_gemm_path(2)  # cuBLAS whenever it is usable
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.arange(8, dtype=np.float32).reshape(4, 2)
    try:
        got = be.to_numpy(be.matmul(be.asarray(a), be.asarray(b)))
        np.testing.assert_array_equal(got, a @ b)
        print("result ok")
    except MemoryError as e:
        print("MemoryError:", e)
    print("status:", m.cublas_status())
"""


@needs_emu
def test_a_failing_cublas_create_falls_back_to_laminas_sgemm_and_says_why(tmp_path):
    lib = _fake_cublas(tmp_path, 3, 0)
    out = _run(_CUBLAS_RUN.replace("LIB", repr(str(lib))))
    assert "result ok" in out
    assert "status: cublasCreate failed (status 3: CUBLAS_STATUS_ALLOC_FAILED); lamina's own SGEMM is used" in out


@needs_emu
def test_cublas_alloc_failed_is_a_memory_error(tmp_path):
    lib = _fake_cublas(tmp_path, 0, 3)
    out = _run(_CUBLAS_RUN.replace("LIB", repr(str(lib))))
    assert "MemoryError: lamina.cuda: out of device memory in gemm (cublasSgemm: status 3: CUBLAS_STATUS_ALLOC_FAILED)" \
        in out
    assert "status: \n" in out or out.rstrip().endswith("status:")


# -- one warp per row: softmax, cross-entropy, argmax ---------------------------------------------
@needs_emu
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's inf - inf in the rows of infinities
@pytest.mark.parametrize("K", [1, 5, 31, 32, 33, 100, 1000])
def test_row_kernels_match_the_reference_at_every_row_length(be, K):
    rng = np.random.default_rng(K)
    rows = 37
    x = (rng.standard_normal((rows, K)) * 4).astype(F32)
    x[3] = 1.5  # ties everywhere: the first maximum
    x[5, K // 2] = np.nan  # a NaN: the row's softmax is NaN, its argmax the first NaN
    x[5, -1] = np.nan
    x[6] = -np.inf
    if K > 2:
        x[7, 1:] = np.inf
    dx = be.asarray(x)
    for axis in (-1, 0):
        np.testing.assert_allclose(be.to_numpy(be.softmax(dx, axis=axis)), ref.softmax(x, axis=axis), rtol=2e-6,
                                   atol=1e-7)
        np.testing.assert_allclose(be.to_numpy(be.log_softmax(dx, axis=axis)), ref.log_softmax(x, axis=axis),
                                   rtol=2e-6, atol=2e-6)
        np.testing.assert_array_equal(be.to_numpy(be.argmax(dx, axis=axis)), ref.argmax(x, axis=axis))
        y = ref.softmax(x, axis=axis)
        gy = rng.standard_normal(x.shape).astype(F32)
        np.testing.assert_allclose(be.to_numpy(be.softmax_backward(be.asarray(gy), be.asarray(y), axis=axis)),
                                   ref.softmax_backward(gy, y, axis=axis), rtol=1e-5, atol=1e-6)
    finite = np.where(np.isfinite(x), x, 0.0).astype(F32)
    labels = rng.integers(0, K, rows)
    for lab in (labels, labels.astype(np.int32)):
        loss, grad = be.softmax_cross_entropy(be.asarray(finite), be.asarray(lab))
        want_loss, want_grad = ref.softmax_cross_entropy(finite, lab)
        assert loss == pytest.approx(want_loss, rel=1e-6)
        np.testing.assert_allclose(be.to_numpy(grad), want_grad, rtol=1e-5, atol=1e-7)
    bad = labels.copy()
    bad[20], bad[30] = K, -1
    with pytest.raises(ValueError, match=rf"labels\[20\] = {K} is out of range \[0, {K}\)"):
        be.softmax_cross_entropy(be.asarray(finite), be.asarray(bad))
