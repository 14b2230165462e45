"""The CUDA backend.

What is about the device rather than the kernels: the build and import behaviour (``import
lamina`` never fails or loads lamina._cuda; is_available() is False with the reason; asking for
"cuda" without a GPU is a clear error), the device arrays (views, dtypes, the interchange
protocols), device memory (exhaustion, the pool) and DLPack capsules, on "cuda_emu" (the CUDA
sources on lamina's emulator of the execution model) and, with a GPU, on "cuda" with PyTorch.
The kernels are checked by the opcheck tables and tests/test_cuda_kernels.py; streams, the
emulator's own checks and the fixes to the backend by tests/test_cuda_emu.py and
tests/test_cuda_fixes.py.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import lamina
from lamina import backend, nn
import lamina.cuda as lcuda

BUILT = lcuda.built()
GPU = lcuda.is_available()
EMU = lcuda.emu_built()
needs_build = pytest.mark.skipif(not BUILT, reason="lamina was built without CUDA (LAMINA_CUDA=OFF or no nvcc)")
gpu = pytest.mark.skipif(not GPU, reason=f"no usable GPU: {lcuda.status()['reason']}")

BACKENDS = ["cuda_emu"] + (["cuda"] if GPU else [])


def _backend(name):
    if name == "cuda_emu" and not EMU:
        pytest.skip("lamina was built without the CUDA emulator (LAMINA_CUDA_EMU=OFF)")
    return backend.get_backend(name)


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


# -- build and import behaviour ---------------------------------------------------------------
def test_import_lamina_loads_no_cuda_code():
    r = _run("import sys, lamina; import lamina.nn, lamina.backend; "
             "print('lamina._cuda' in sys.modules, 'lamina.cuda' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]


def test_lamina_cuda_loads_the_extension_on_first_use_only():
    r = _run("import sys, lamina.cuda as c; a = 'lamina._cuda' in sys.modules; c.is_available(); "
             "print(a, 'lamina._cuda' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", str(BUILT)]


def test_ci_builds_the_cuda_extension():
    if os.environ.get("LAMINA_REQUIRE_CUDA_BUILD") == "1":
        assert BUILT, lcuda.status()["reason"]


def test_status_never_raises_and_backend_info_reports_it():
    st = lcuda.status()
    assert set(st) >= {"built", "available", "reason", "devices"}
    info = lamina.backend_info()
    assert isinstance(info["cuda"], bool) and info["cuda"] == GPU
    assert info["cuda_built"] == BUILT
    if not GPU:
        assert st["reason"] and st["reason"] in info["cuda_status"]
    if BUILT:
        assert st["architectures"] and st["toolkit"]


@pytest.mark.skipif(GPU, reason="a GPU is usable here")
def test_without_a_gpu_asking_for_cuda_is_a_clear_error():
    reason = lcuda.status()["reason"]
    assert not lcuda.is_available()
    if BUILT:  # this machine: no driver (error 35) or no device (100): "no device", not an abort
        assert lcuda.status()["error"] in (35, 100) or "no CUDA device" in reason, reason
    with pytest.raises(RuntimeError, match="CUDA is not available") as e:
        backend.get_backend("cuda")
    assert reason in str(e.value)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        nn.Sequential(nn.Dense(3, 2)).to("cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        lcuda.Array.empty((3,))
    assert "cuda" not in backend.available()
    with pytest.raises(ValueError, match="unknown backend 'cuda9'"):
        backend.get_backend("cuda9")


# -- the arrays ------------------------------------------------------------------------------
@pytest.mark.parametrize("be_name", BACKENDS)
def test_array_views(be_name, rng):
    be = _backend(be_name)
    x = rng.standard_normal((4, 6, 5)).astype(np.float32)
    a = be.asarray(x)
    assert (a.shape, a.dtype, a.ndim, a.size, len(a)) == (x.shape, x.dtype, 3, x.size, 4)
    np.testing.assert_array_equal(a.numpy(), x)
    np.testing.assert_array_equal(a.reshape(24, 5).numpy(), x.reshape(24, 5))
    np.testing.assert_array_equal(a.reshape(-1).numpy(), x.reshape(-1))
    for key in [1, -1, (slice(1, 3),), (slice(None), 2), (Ellipsis, 1), (slice(None, None, -1), slice(1, 5, 2)),
                (2, slice(0, 0)), (None, 1)]:
        np.testing.assert_array_equal(a[key].numpy(), x[key], err_msg=str(key))
        np.testing.assert_array_equal(be.to_numpy(be.copy(a[key])), x[key])
    with pytest.raises(ValueError, match="non-contiguous"):
        a[:, 1:3].reshape(-1)
    with pytest.raises(TypeError, match="basic slicing"):
        a[np.array([0, 1])]
    with pytest.raises(TypeError):
        np.asarray(a)
    with pytest.raises(TypeError):
        a * 2
    with pytest.raises(IndexError):
        a[4]
    assert a.__dlpack_device__() == (2, 0)  # kDLCUDA: the emulator stands for a GPU
    for dt in (np.int32, np.int64, np.float64):
        v = (rng.standard_normal(7) * 100).astype(dt)
        np.testing.assert_array_equal(be.to_numpy(be.asarray(v)), v)
    with pytest.raises(TypeError, match="float32, float64, int32 or int64"):
        be.empty((2,), np.float16)
    z = be.zeros((3, 2), np.int64)
    np.testing.assert_array_equal(z.numpy(), np.zeros((3, 2), np.int64))
    assert backend.backend_of(a) is be


# -- on a GPU only ----------------------------------------------------------------------------
@gpu
def test_gpu_interchange_and_memory():
    be = backend.get_backend("cuda")
    a = be.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    cai = a.__cuda_array_interface__
    assert cai["version"] == 3 and cai["shape"] == (3, 4) and cai["typestr"] == "<f4"
    assert cai["stream"] == lcuda.status()["stream"]
    assert a.__dlpack_device__() == (2, 0)
    torch = pytest.importorskip("torch")
    t = torch.from_dlpack(a)
    assert t.is_cuda and t.shape == (3, 4) and float(t.sum()) == 66.0
    t2 = torch.arange(6, dtype=torch.float32, device="cuda").reshape(2, 3)
    b = be.asarray(t2)  # zero copy through __cuda_array_interface__
    assert b.ptr == t2.data_ptr()
    np.testing.assert_array_equal(be.to_numpy(be.scale(b, 2.0)), np.arange(6).reshape(2, 3) * 2)


@pytest.mark.parametrize("be_name", BACKENDS)
def test_exhausted_device_memory_is_memory_error_and_the_pool_reuses(be_name):
    be = _backend(be_name)
    with pytest.raises(MemoryError):
        be.empty((1 << 50,), np.float32)
    be.zeros((1 << 20,))
    lcuda.synchronize() if be_name == "cuda" else be.rt.synchronize()
    before = be.rt.module.pool_reserved()
    for _ in range(10):
        be.zeros((1 << 20,))
    be.rt.synchronize()
    assert be.rt.module.pool_reserved() <= before + (8 << 20)  # reused, not grown per call


@needs_build
def test_dlpack_capsule_keeps_its_owner_alive_until_released():
    import ctypes
    owner = object()
    before = sys.getrefcount(owner)
    cap = lcuda._module.to_dlpack(owner, 4096, [2, 3], [3, 1], 2, 32)
    is_valid = ctypes.pythonapi.PyCapsule_IsValid
    is_valid.restype, is_valid.argtypes = ctypes.c_int, [ctypes.py_object, ctypes.c_char_p]
    assert is_valid(cap, b"dltensor") == 1
    assert sys.getrefcount(owner) == before + 1
    del cap  # never consumed: the capsule's destructor calls the deleter
    assert sys.getrefcount(owner) == before
