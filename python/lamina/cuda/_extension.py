"""The CUDA extension module (lamina._cuda), loaded once on first use, or why it cannot be."""
from __future__ import annotations

import importlib

_module = None
_error = None


def load():
    """lamina._cuda, or None where this install has none (``error()`` then says why)."""
    global _module, _error
    if _module is None and _error is None:
        try:
            _module = importlib.import_module("lamina._cuda")
        except ImportError as e:
            _error = (f"lamina was built without CUDA (lamina._cuda: {e}); reinstall with a CUDA toolkit "
                      "(nvcc) present, e.g. LAMINA_CUDA=ON pip install .")
    return _module


def error():
    """Why lamina._cuda could not be loaded ("" before trying, or when it was)."""
    return _error or ""


def require():
    """lamina._cuda; RuntimeError saying why where this install has none."""
    mod = load()
    if mod is None:
        raise RuntimeError(f"CUDA is not available: {_error}")
    return mod
