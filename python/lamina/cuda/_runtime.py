"""Where lamina.cuda arrays live and kernels run: the GPU (lamina._cuda) or, for tests without
a GPU, the CUDA emulator (lamina._cuda_emu: the same sources compiled for the CPU against an
emulation of the execution model). A runtime gives alloc / h2d / d2h / d2d, the kernel module,
the stream and the device name; the Array and the backend are written once over it."""
from __future__ import annotations

import glob
import importlib
import os
import sys
import threading

from . import _array, _extension
from ._array import Array, EmuArray


_lock = threading.Lock()
_device = None
_emu = None


class DeviceRuntime:
    device = "cuda:0"

    @property
    def array_type(self):
        return Array

    def __init__(self, mod):
        self.module = mod
        self.k = mod  # the kernels
        mod.init()
        mod.bind_runtime(self, Array, self.device)  # the kernels that validate their arrays take ours
        self.alloc = mod.Buffer
        self.d2d = mod.d2d
        self.stream_wait = mod.stream_wait
        self._stream = mod.stream()
        self.cublas = _load_cublas(mod)
        self._backend = None

    def stream(self):
        return self._stream

    def h2d(self, dst, a):
        self.module.h2d(dst, a)

    def d2h(self, out, src):
        self.module.d2h(out, src)

    def synchronize(self):
        self.module.synchronize()

    def backend(self):
        if self._backend is None:
            from ._backend import CudaBackend
            self._backend = CudaBackend(self, "cuda")
        return self._backend


class EmuRuntime(DeviceRuntime):
    """The CUDA emulator (lamina._cuda_emu): the CUDA backend's own sources compiled for the CPU
    against an emulation of the execution model (csrc/cuda/emu), with a stand-in cuBLAS."""
    device = "cuda_emu:0"

    @property
    def array_type(self):
        return EmuArray

    def backend(self):
        if self._backend is None:
            from ._backend import CudaBackend
            self._backend = CudaBackend(self, "cuda_emu")
        return self._backend


def _cublas_candidates(mod):
    env = os.environ.get("LAMINA_CUBLAS")
    if env:
        yield env
    if getattr(mod, "emulated", False):  # the emulator's stand-in, installed beside the module
        yield os.path.join(os.path.dirname(mod.__file__), "liblamina_cublas_emu.so")
        return
    yield ""  # libcublas.so.13 through the loader's search path
    libdir = getattr(mod, "toolkit_library_dir", "")
    if libdir:
        yield os.path.join(libdir, "libcublas.so.13")
    for base in sys.path:  # the nvidia-cublas wheel (the `cuda` extra; PyTorch brings it too)
        for sub in ("nvidia/cu13/lib", "nvidia/cublas/lib"):
            for p in glob.glob(os.path.join(base, sub, "libcublas.so.13*")):
                yield p


def _load_cublas(mod):
    """'loaded from <path>' or why not (lamina then runs its own SGEMM everywhere)."""
    if os.environ.get("LAMINA_CUBLAS", "").lower() in ("0", "off", "none"):
        return "not loaded (LAMINA_CUBLAS=off)"
    errors = []
    for path in _cublas_candidates(mod):
        if path and not os.path.exists(path):
            continue
        err = mod.cublas_load(path)
        if not err:
            return f"loaded from {path or 'libcublas.so.13'}"
        errors.append(err)
    return "not found (" + "; ".join(errors[:3]) + "); lamina's own SGEMM is used"


def device():
    """The GPU runtime (RuntimeError with the reason when no GPU is usable)."""
    global _device
    if _device is None:
        with _lock:
            if _device is None:
                mod = _extension.require()
                st = mod.status()
                if not st["count"] > 0:
                    raise RuntimeError(f"CUDA is not available: {st['reason']}")
                _device = DeviceRuntime(mod)
    return _device


def device_in_use():
    """The GPU runtime once ``device()`` made it, else None (nothing is loaded or started)."""
    return _device


_array.set_default_runtime(device)  # Arrays made without a runtime are the GPU's


def emu():
    """The CUDA emulator's runtime (RuntimeError when this install has no lamina._cuda_emu)."""
    global _emu
    if _emu is None:
        with _lock:
            if _emu is None:
                try:
                    mod = importlib.import_module("lamina._cuda_emu")
                except ImportError as e:
                    raise RuntimeError("the CUDA emulator is not built into this install (lamina._cuda_emu: "
                                       f"{e}); reinstall with LAMINA_CUDA_EMU=ON pip install .") from None
                _emu = EmuRuntime(mod)
    return _emu
