"""lamina.cuda: the CUDA backend ("cuda") and its device arrays.

Importing ``lamina`` never imports this; importing ``lamina.cuda`` does not load the extension
``lamina._cuda`` either: that happens on first use (``is_available()``, ``status()``,
``Array``, ``backend()``, ``get_backend("cuda")``, ``model.to("cuda")``).

- ``is_available()``: whether lamina was built with CUDA and a GPU is usable now; ``status()``
  says why not (no toolkit at build time, no driver, no device), never raising.
- ``backend()``: the "cuda" backend (also ``lamina.get_backend("cuda")``); RuntimeError with
  the reason where no GPU is usable.
- ``Array``: a device buffer (float32, float64, int32, int64) with shape, dtype, reshape and
  slicing views, ``from_numpy`` / ``numpy()``, ``__cuda_array_interface__`` and ``__dlpack__``.
- ``allow_tf32``: set True to let large float32 GEMMs use TF32 tensor cores (cuBLAS); default
  False (full float32).
- ``emu_backend()``: the same backend's sources compiled for the CPU against lamina's emulation
  of the CUDA execution model ("cuda_emu", in builds with LAMINA_CUDA_EMU=ON): how every kernel,
  launch and GEMM path is tested without a GPU.
"""
from __future__ import annotations

from . import _extension

allow_tf32 = False


def _require_module():  # (the earlier name)
    return _extension.require()


def built() -> bool:
    """Whether this install has the CUDA extension (lamina._cuda)."""
    return _extension.load() is not None


def status() -> dict:
    """{"built", "available", "reason", "devices", "error", "runtime_version", "driver_version",
    "architectures", "toolkit"}, and once the device is in use "cublas" (loaded from where, or why
    lamina's own SGEMM serves), "stream", "device" and "sync" (LAMINA_CUDA_SYNC=1): never raises.
    ``reason`` is "" when a GPU is usable."""
    mod = _extension.load()
    if mod is None:
        return {"built": False, "available": False, "reason": _extension.error(), "devices": 0}
    st = mod.status()
    out = {"built": True, "available": st["count"] > 0, "reason": st["reason"], "devices": st["count"],
           "error": st["error"], "runtime_version": st["runtime_version"], "driver_version": st["driver_version"],
           "architectures": mod.architectures, "toolkit": mod.toolkit_version}
    from . import _runtime
    rt = _runtime.device_in_use()
    if rt is not None:
        why = mod.cublas_status()  # a handle that failed after loading: lamina's SGEMM serves
        out["cublas"] = why or rt.cublas
        out["stream"] = rt.stream()
        out["device"] = mod.device_id()
        out["sync"] = mod.sync_mode()
    return out


def is_available() -> bool:
    """True when lamina has its CUDA extension and a GPU is usable (no driver, no device: False)."""
    return bool(status()["available"])


def backend():
    """The "cuda" backend on device 0 (RuntimeError giving the reason when no GPU is usable)."""
    from . import _runtime
    return _runtime.device().backend()


def emu_built() -> bool:
    """Whether this install has the CUDA emulator (lamina._cuda_emu, built with LAMINA_CUDA_EMU=ON)."""
    import importlib.util
    return importlib.util.find_spec("lamina._cuda_emu") is not None


def emu_backend():
    """The "cuda_emu" backend: the CUDA backend's kernels, launches, GEMM paths, streams and
    pool, compiled for the CPU against lamina's emulation of the CUDA execution model, which
    checks launch limits, barriers, warp operations and stream ordering as it runs them. The
    same object as ``lamina.get_backend("cuda_emu")``, which registers it on first use;
    RuntimeError where this install has no emulator (build with LAMINA_CUDA_EMU=ON)."""
    from . import _runtime
    return _runtime.emu().backend()


def synchronize():
    """Waits for the work queued on lamina's stream."""
    from . import _runtime
    _runtime.device().synchronize()


def _runtime_of(device):
    from . import _runtime
    if device in ("cuda", "cuda:0"):
        return _runtime.device()
    if device in ("cuda_emu", "cuda_emu:0"):
        return _runtime.emu()
    raise ValueError(f"device must be 'cuda' or 'cuda_emu', got {device!r}")


def memory_info(device="cuda") -> dict:
    """lamina's own memory pool (not the device's default pool, which PyTorch and CuPy share), in
    bytes: {"pool_reserved", "pool_used", "pool_reserved_peak", "pool_used_peak"}. ``device``
    "cuda_emu" reports the CUDA emulator's."""
    return dict(_runtime_of(device).module.pool_info())


def empty_cache(device="cuda") -> int:
    """Gives the memory lamina's pool holds but does not use back to the device (after the work
    queued so far); returns the bytes released."""
    return int(_runtime_of(device).module.empty_cache())


def __getattr__(name):
    if name == "Array":
        from . import _runtime  # (which gives the Array its default runtime, the GPU's)
        return _runtime.Array
    if name == "CudaError":
        return _extension.require().CudaError
    if name == "_module":  # the loaded extension (None where there is none)
        return _extension.load()
    raise AttributeError(f"module 'lamina.cuda' has no attribute {name!r}")
