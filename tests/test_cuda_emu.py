"""The CUDA emulator (csrc/cuda/emu, backend "cuda_emu") as a checker: it must report what a GPU
run would get wrong (a divergent barrier, a warp operation with an absent lane, a launch over the
sm_90 limits, a missing barrier, reads of uninitialised or freed memory, a missing cross-stream
dependency), run what is right, and run lamina's models step for step like the numpy backend.
The kernels of every family run on it through the opcheck tables (conftest registers it)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import lamina
from lamina import backend, nn, optim
import lamina.cuda as lcuda

pytestmark = pytest.mark.skipif(not lcuda.emu_built(), reason="built without the CUDA emulator (LAMINA_CUDA_EMU=OFF)")


@pytest.fixture(scope="module")
def be():
    return backend.get_backend("cuda_emu")


@pytest.fixture(scope="module")
def mod(be):
    return be.rt.module


# -- the execution model's rules --------------------------------------------------------------
@pytest.mark.parametrize("case,message", [
    ("divergent_barrier", r"kernel divergent_barrier failed: __syncthreads\(\) divergence: threads wait at .*bind_emu"),
    ("shfl_exited_lane", r"kernel shfl_exited_lane failed: __shfl_down_sync .* names lane 5, which has exited"),
    ("shfl_lane_at_barrier", r"kernel shfl_lane_at_barrier failed: .* names lane 16, which waits at __syncthreads"),
    ("trap", r"kernel trap failed: __trap\(\) \(block \(0, 0, 0\), thread \(7, 0, 0\)\)"),
    ("grid_y_65536", r"kernel grid_y_65536 failed .*grid.y = 65536 exceeds 65535"),
    ("grid_z_65536", r"kernel grid_z_65536 failed .*grid.z = 65536 exceeds 65535"),
    ("block_1025", r"kernel block_1025 failed .*block \(1025, 1, 1\) exceeds \(1024, 1024, 64\)"),
    ("block_z_65", r"kernel block_z_65 failed .*block \(1, 1, 65\) exceeds"),
    ("dynamic_shared_64k", r"kernel dynamic_shared_64k failed .*65536 bytes of dynamic shared memory exceed 49152"),
])
def test_rule_breaking_kernels_are_reported_naming_the_kernel(mod, case, message):
    with pytest.raises(mod.CudaError, match=message):
        mod.emu_selftest(case)
    # the failure is reported once, and the device goes on working
    np.testing.assert_array_equal(mod.emu_selftest("warp_votes")[:32], np.full(32, 3.0))


def test_what_the_rules_allow_runs(mod):
    out = np.array(mod.emu_selftest("barrier_after_exit"))
    np.testing.assert_array_equal(out[:32], 1.0)
    assert np.isnan(out[32:]).all()  # never written: the allocation's NaN poison
    half = np.array(mod.emu_selftest("shfl_half_warp"))
    np.testing.assert_array_equal(half[:16], np.arange(16) ^ 1)
    votes = np.array(mod.emu_selftest("warp_votes"))[:32]
    np.testing.assert_array_equal(votes, 3.0)  # ballot of the odd lanes, any(lane 31), not all odd
    opted = np.array(mod.emu_selftest("dynamic_shared_64k_opted_in"))[:32]
    np.testing.assert_array_equal(opted, np.arange(32))


def test_a_missing_barrier_changes_the_result(mod):
    want = np.array([(i % 256 + 1 + 1000 * (i // 256)) + ((i + 1) % 256 + 1 + 1000 * (i // 256))
                     for i in range(1024)], np.float32)
    np.testing.assert_array_equal(mod.emu_selftest("shared_with_barrier"), want)
    racy = np.array(mod.emu_selftest("shared_without_barrier"))
    assert (racy != want).sum() > 100  # the shuffled thread order reads slots not yet written


def test_thread_order_is_seeded_and_reproducible():
    code = ("import lamina, numpy as np; be = lamina.get_backend('cuda_emu'); "
            "print(np.array(be.rt.module.emu_selftest('shared_without_barrier')).astype(int).tolist())")
    out = {}
    for seed in ("1", "1", "2"):
        env = dict(os.environ, LAMINA_CUDA_EMU_SEED=seed)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        out.setdefault(seed, []).append(r.stdout)
    assert out["1"][0] == out["1"][1]
    assert out["1"][0] != out["2"][0]


# -- memory and streams ----------------------------------------------------------------------
def test_fresh_device_memory_reads_as_nan(be):
    a = be.empty((1000,))
    assert np.isnan(a.numpy()).all()
    ints = be.empty((10,), np.int64).numpy()
    assert (ints > 2**62).all()  # an index or label read from it is out of range, never 0 or -1


def test_work_queued_on_another_stream_runs_only_when_waited_for(be, mod):
    a = be.zeros((256,))
    other = mod.emu_stream_create(True)
    try:
        mod.emu_fill_async(a.ptr, 256, 5.0, other)
        assert mod.emu_pending(other)
        # lamina's stream does not wait for `other`: the copy sees the old values
        np.testing.assert_array_equal(be.to_numpy(be.copy(a)), 0.0)
        mod.lamina_wait(other)  # an event recorded on `other`, waited on by lamina's stream
        np.testing.assert_array_equal(be.to_numpy(be.copy(a)), 5.0)
        assert not mod.emu_pending(other)
    finally:
        mod.emu_stream_destroy(other)


def test_a_reader_queued_after_a_free_reads_poison(be, mod):
    src = be.asarray(np.full(64, 3.0, np.float32))
    dst = be.zeros((64,))
    reader = mod.emu_stream_create(True)
    try:
        ptr = src.ptr
        del src  # the free is queued on lamina's stream
        mod.emu_copy_async(dst.ptr, ptr, 64 * 4, reader)  # a consumer that did not order itself after it
        mod.synchronize()  # lamina's stream runs: the free poisons the buffer
        mod.emu_stream_synchronize(reader)
        assert np.isnan(dst.numpy()).all()
    finally:
        mod.emu_stream_destroy(reader)


def test_copies_outside_device_allocations_are_refused(be, mod):
    a = be.zeros((4,))
    with pytest.raises(mod.CudaError, match="not inside one live device allocation"):
        mod.d2d(a.ptr, a.ptr + 8, 16)  # reads 8 bytes past the end
    host = np.zeros(4, np.float32)
    with pytest.raises(mod.CudaError, match="not inside one live device allocation"):
        mod.h2d(host.ctypes.data, host)  # a host address as the destination


def test_a_launch_on_another_devices_stream_is_refused():
    code = """
import lamina, numpy as np
be = lamina.get_backend('cuda_emu'); m = be.rt.module
x = be.asarray(np.ones(8, np.float32))
m.emu_set_device(1)
try:
    y = be.relu(x)
    print('ran', be.to_numpy(y).sum(), m.emu_get_device())
except Exception as e:
    print('refused', e)
"""
    env = dict(os.environ, LAMINA_CUDA_EMU_DEVICES="2")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    # lamina's entry points make lamina's device current for the call and restore the caller's
    assert r.stdout.split()[:3] == ["ran", "8.0", "1"], r.stdout


# -- the stand-in cuBLAS -----------------------------------------------------------------------
def test_cublas_is_the_stand_in_loaded_through_dlopen(be, mod):
    assert mod.cublas_loaded()
    assert mod.cublas_path().endswith("liblamina_cublas_emu.so")
    assert "liblamina_cublas_emu.so" in be.rt.cublas


def test_cublas_tf32_rounds_the_operands_only_when_allowed(be, mod, rng):
    a = (1.0 + rng.random((64, 64)) * 2.0**-12).astype(np.float32)  # differences below TF32's 10 bits
    b = np.ones((64, 64), np.float32)
    mod.set_gemm_path(2)
    try:
        full = be.to_numpy(be.matmul(be.asarray(a), be.asarray(b)))
        mod.set_allow_tf32(True)
        try:
            rounded = be.to_numpy(be.matmul(be.asarray(a), be.asarray(b)))
        finally:
            mod.set_allow_tf32(False)
    finally:
        mod.set_gemm_path(0)
    np.testing.assert_allclose(full, a.astype(np.float64) @ b, rtol=1e-6)
    np.testing.assert_array_equal(rounded, np.full((64, 64), 64.0, np.float32))


# -- models train on it step for step like numpy ------------------------------------------------
def _train(be_name, make, X, y, loss, steps=5, bs=8, opt="sgd"):
    lamina.seed(11)
    model = make().to(be_name)
    params = model.parameters()
    o = optim.SGD(params, lr=0.05, momentum=0.9) if opt == "sgd" else optim.Adam(params, lr=1e-3)
    model.compile(o, loss)
    dev = backend.get_backend(be_name)
    losses = [model.train_step(dev.asarray(X[s * bs:(s + 1) * bs]), y[s * bs:(s + 1) * bs])[0] for s in range(steps)]
    return losses, [p.numpy() for p in params], model.predict(X[:10])


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_mlp_trains_step_for_step_like_numpy(be, rng, opt):
    X = rng.standard_normal((40, 20)).astype(np.float32)
    y = rng.integers(0, 5, 40)
    make = lambda: nn.Sequential(nn.Dense(20, 32), nn.ReLU(), nn.Dropout(0.2, seed=1), nn.Dense(32, 16), nn.Tanh(),
                                 nn.Dense(16, 5))
    ref = _train("numpy", make, X, y, "cross_entropy", opt=opt)
    got = _train("cuda_emu", make, X, y, "cross_entropy", opt=opt)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4)
    for a, b in zip(got[1], ref[1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-3, atol=1e-4)


def test_rnn_trains_step_for_step_like_numpy(be, rng):
    X = rng.standard_normal((40, 7, 3)).astype(np.float32)
    y = rng.standard_normal((40, 2)).astype(np.float32)
    make = lambda: nn.Sequential(nn.RNN(3, 6), nn.Dense(6, 2))
    ref = _train("numpy", make, X, y, "mse")
    got = _train("cuda_emu", make, X, y, "mse")
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4)
    for a, b in zip(got[1], ref[1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-3, atol=1e-5)


def _buffers(model):
    return [b.numpy() for b in model.buffers()]


def test_lenet_with_batch_norm_trains_step_for_step_like_numpy(be, rng):
    """batch_norm / batch_norm_backward on (N, C, H, W) and (N, F), training mode, then the running
    statistics they left (evaluation mode, through predict) and the buffers themselves."""
    X = rng.standard_normal((48, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 48)
    make = lambda: nn.Sequential(
        nn.Conv2D(1, 6, 5, padding=2), nn.BatchNorm2D(6), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(6, 16, 5), nn.BatchNorm2D(16), nn.ReLU(), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(400, 120), nn.BatchNorm1D(120), nn.ReLU(), nn.Dense(120, 84), nn.ReLU(),
        nn.Dense(84, 10))
    models = {}
    for name in ("numpy", "cuda_emu"):
        lamina.seed(11)
        models[name] = make()
    ref = _train("numpy", lambda: models["numpy"], X, y, "cross_entropy", steps=6, bs=8)
    got = _train("cuda_emu", lambda: models["cuda_emu"], X, y, "cross_entropy", steps=6, bs=8)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4)
    for a, b in zip(got[1], ref[1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-3, atol=1e-4)
    bufs, ref_bufs = _buffers(models["cuda_emu"]), _buffers(models["numpy"])
    assert len(bufs) == 9  # running_mean, running_var, num_batches_tracked of each BatchNorm
    for a, b in zip(bufs, ref_bufs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_gated_rnn_trains_step_for_step_like_numpy(be, rng, layer):
    X = rng.standard_normal((40, 7, 3)).astype(np.float32)
    y = rng.standard_normal((40, 2)).astype(np.float32)
    cls = getattr(nn, layer)
    make = lambda: nn.Sequential(cls(3, 6, return_sequences=True), cls(6, 5), nn.Dense(5, 2))
    ref = _train("numpy", make, X, y, "mse")
    got = _train("cuda_emu", make, X, y, "mse")
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4)
    for a, b in zip(got[1], ref[1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-3, atol=1e-5)


def test_memory_info_and_empty_cache_report_lamina_s_own_pool(be):
    lcuda.empty_cache("cuda_emu")
    base = lcuda.memory_info("cuda_emu")
    assert set(base) == {"pool_reserved", "pool_used", "pool_reserved_peak", "pool_used_peak"}
    x = be.zeros((1 << 20,))
    assert lcuda.memory_info("cuda_emu")["pool_used"] == base["pool_used"] + (4 << 20)
    del x
    be.rt.synchronize()
    info = lcuda.memory_info("cuda_emu")
    assert info["pool_used"] == base["pool_used"] and info["pool_reserved"] >= base["pool_reserved"] + (4 << 20)
    assert lcuda.empty_cache("cuda_emu") >= 4 << 20  # the cached block goes back
    assert lcuda.memory_info("cuda_emu")["pool_reserved"] == base["pool_used"]
    with pytest.raises(ValueError, match="device must be 'cuda' or 'cuda_emu'"):
        lcuda.memory_info("gpu")


def test_lamina_cuda_sync_names_the_failing_kernel_at_its_launch():
    code = ("import lamina; m = lamina.get_backend('cuda_emu').rt.module\n"
            "try:\n    m.emu_selftest('divergent_barrier')\nexcept Exception as e:\n    print(e)")
    said = {}
    for sync in ("0", "1"):
        env = dict(os.environ, LAMINA_CUDA_SYNC=sync)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        said[sync] = r.stdout
    assert "kernel divergent_barrier failed" in said["0"] and "copy to the host" in said["0"]  # found later
    assert said["1"].startswith("lamina.cuda: kernel divergent_barrier failed"), said["1"]  # at its launch


def test_a_failed_stream_wait_leaks_no_event(mod):
    before = mod.emu_live_events()
    with pytest.raises(mod.CudaError, match="not a live stream"):
        mod.lamina_wait(0x1234)  # an event is created, then recording it on a bad stream fails
    with pytest.raises(mod.CudaError, match="not a live stream"):
        mod.stream_wait(0x1234)
    assert mod.emu_live_events() == before


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2)])
def test_convolution_index_paths_agree(be, mod, rng, stride, padding, dilation):
    """The convolution's element-wise passes run in 32-bit index arithmetic where the sizes allow
    and in 64-bit otherwise (forced here): both against the reference, bit for bit alike."""
    from lamina import reference as ref
    x = rng.standard_normal((3, 4, 11, 9)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    want_y = ref.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kw)
    gy = rng.standard_normal(want_y.shape).astype(np.float32)
    want_g = ref.conv2d_backward(x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64), **kw)
    got = {}
    for wide in (False, True):
        mod.set_force_index64(wide)
        try:
            y = be.to_numpy(be.conv2d(be.asarray(x), be.asarray(w), be.asarray(b), **kw))
            g = [be.to_numpy(a) for a in be.conv2d_backward(be.asarray(x), be.asarray(w), be.asarray(gy), **kw)]
        finally:
            mod.set_force_index64(False)
        np.testing.assert_allclose(y, want_y, rtol=1e-4, atol=1e-4)
        for a, r in zip(g, want_g):
            np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-3)
        got[wide] = [y] + g
    for a, c in zip(got[False], got[True]):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_pooling_index_paths_agree(be, mod, rng, kernel, stride, padding):
    """Max and average pooling and their backward passes on the 32-bit and (forced) 64-bit index
    paths: both as the reference, bit for bit alike."""
    from lamina import reference as ref
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    kw = dict(stride=stride, padding=padding)
    y_ref, i_ref = ref.max_pool2d(x, kernel, **kw)
    gy = rng.standard_normal(y_ref.shape).astype(np.float32)
    a_ref = ref.avg_pool2d(x, kernel, **kw)
    ga = rng.standard_normal(a_ref.shape).astype(np.float32)
    got = {}
    for wide in (False, True):
        mod.set_force_index64(wide)
        try:
            y, i = be.max_pool2d(be.asarray(x), kernel, **kw)
            gx = be.max_pool2d_backward(be.asarray(gy), i, x.shape)
            a = be.avg_pool2d(be.asarray(x), kernel, **kw)
            gxa = be.avg_pool2d_backward(be.asarray(ga), x.shape, kernel, **kw)
            got[wide] = [be.to_numpy(v) for v in (y, i, gx, a, gxa)]
        finally:
            mod.set_force_index64(False)
        np.testing.assert_array_equal(got[wide][0], y_ref)
        np.testing.assert_array_equal(got[wide][1], i_ref)
        np.testing.assert_allclose(got[wide][2], ref.max_pool2d_backward(gy, i_ref, x.shape), rtol=1e-6)
        np.testing.assert_allclose(got[wide][3], a_ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[wide][4], ref.avg_pool2d_backward(ga, x.shape, kernel, **kw), rtol=1e-5,
                                   atol=1e-6)
    for u, v in zip(got[False], got[True]):
        np.testing.assert_array_equal(u, v)


def test_upsampling_index_paths_agree(be, mod, rng):
    from lamina import reference as ref
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    gy = rng.standard_normal((2, 3, 15, 21)).astype(np.float32)
    got = {}
    for wide in (False, True):
        mod.set_force_index64(wide)
        try:
            got[wide] = [be.to_numpy(be.upsample_nearest2d(be.asarray(x), 3)),
                         be.to_numpy(be.upsample_nearest2d_backward(be.asarray(gy), 3))]
        finally:
            mod.set_force_index64(False)
        np.testing.assert_array_equal(got[wide][0], ref.upsample_nearest2d(x, 3))
        np.testing.assert_allclose(got[wide][1], ref.upsample_nearest2d_backward(gy, 3), rtol=1e-6, atol=1e-6)
    for u, v in zip(got[False], got[True]):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("path", [1, 2])
@pytest.mark.parametrize("K", [0, 700])
def test_gemm_epilogue_index_paths_agree(be, mod, rng, path, K):
    """The split-K sum + epilogue (ours), the epilogue after cuBLAS and the K = 0 store, on the
    32-bit and (forced) 64-bit index paths: as the reference, bit for bit alike."""
    x = rng.standard_normal((37, K)).astype(np.float32)
    w = rng.standard_normal((45, K)).astype(np.float32)  # (out, in)
    b = rng.standard_normal(45).astype(np.float32)
    want = np.maximum(x.astype(np.float64) @ w.T + b, 0)
    got = {}
    mod.set_gemm_path(path)
    try:
        for wide in (False, True):
            mod.set_force_index64(wide)
            try:
                got[wide] = be.to_numpy(be.linear(be.asarray(x), be.asarray(w), be.asarray(b), activation="relu"))
            finally:
                mod.set_force_index64(False)
            np.testing.assert_allclose(got[wide], want, rtol=1e-4, atol=1e-3)
    finally:
        mod.set_gemm_path(0)
    np.testing.assert_array_equal(got[False], got[True])


def test_copy_fill_gather_index_paths_agree(be, mod, rng):
    x = rng.standard_normal((6, 8, 5)).astype(np.float32)
    idx = np.array([5, 0, 3, 3, 1], np.int64)
    got = {}
    for wide in (False, True):
        mod.set_force_index64(wide)
        try:
            a = be.asarray(x)
            view = a[::-1, 1:7:2, ::2]  # negative and skipping strides
            c = be.to_numpy(be.copy(view))
            z = be.asarray(x)
            be.fill(z[1:5, ::3], 7.5)
            g = be.to_numpy(be.gather_rows(be.asarray(x.reshape(6, 40)), be.asarray(idx)))
            got[wide] = [c, be.to_numpy(z), g]
        finally:
            mod.set_force_index64(False)
        np.testing.assert_array_equal(got[wide][0], x[::-1, 1:7:2, ::2])
        filled = x.copy()
        filled[1:5, ::3] = 7.5
        np.testing.assert_array_equal(got[wide][1], filled)
        np.testing.assert_array_equal(got[wide][2], x.reshape(6, 40)[idx])
    for u, v in zip(got[False], got[True]):
        np.testing.assert_array_equal(u, v)
