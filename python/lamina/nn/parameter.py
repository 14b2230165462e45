"""Parameter: a trainable array with its gradient.

``grad`` is an array of ``data``'s shape. ``zero_grad()`` does not write memory: it marks the
gradient as zero, and the first layer backward after it *overwrites* the buffer (GEMMs write
straight into it); a later backward before the next zero_grad accumulates. Reading ``grad``
while it is marked zero materialises the zeros, so the observable semantics are PyTorch's
``grad += dC/dparam``.
"""
from __future__ import annotations

import numpy as np


class Parameter:
    """``data`` (the values), ``grad`` (same shape), ``trainable`` (False freezes it: every
    optimiser skips it and layers do no gradient work for it), ``name``, and ``lr_scale`` (a
    per-parameter multiplier of the optimiser's learning rate, 1.0 by default)."""

    __slots__ = ("data", "_grad", "_zeroed", "trainable", "name", "lr_scale")

    def __init__(self, data, name: str = "", trainable: bool = True, lr_scale: float = 1.0):
        data = np.asarray(data)
        if data.dtype not in (np.float32, np.float64):
            data = data.astype(np.float32)
        self.data = np.ascontiguousarray(data)
        self._grad = np.zeros_like(self.data)
        self._zeroed = False
        self.trainable = bool(trainable)
        self.name = name
        self.lr_scale = float(lr_scale)

    @property
    def grad(self) -> np.ndarray:
        if self._zeroed:
            self._grad.fill(0)
            self._zeroed = False
        return self._grad

    @grad.setter
    def grad(self, value):
        value = np.asarray(value)
        if value.shape != self.data.shape:
            raise ValueError(f"grad of {self.name or 'parameter'} must have shape {self.data.shape}, got {value.shape}")
        self._grad = np.ascontiguousarray(value, dtype=self.data.dtype)
        self._zeroed = False

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def zero_grad(self):
        self._zeroed = True

    def accumulate_grad(self, g):
        """Adds ``g`` to the gradient; adopts ``g`` itself (no copy) right after zero_grad.
        ``g`` must be a fresh array the caller will not write again."""
        if self._zeroed and g.dtype == self.data.dtype and g.shape == self.data.shape and g.flags.c_contiguous:
            self._grad = g
            self._zeroed = False
        else:
            self.grad += g

    def assign(self, values):
        """Copies ``values`` into ``data`` in place (shape must match)."""
        values = np.asarray(values)
        if values.shape != self.data.shape:
            raise ValueError(f"{self.name or 'parameter'} has shape {self.data.shape}, got {values.shape}")
        np.copyto(self.data, values, casting="same_kind")

    def astype(self, dtype):
        dtype = np.dtype(dtype)
        if dtype != self.data.dtype:
            self.data = self.data.astype(dtype)
            self._grad = np.zeros_like(self.data)
            self._zeroed = False
        return self

    def __repr__(self):
        frozen = "" if self.trainable else ", frozen"
        return f"Parameter({self.name or '?'}, shape={self.data.shape}, dtype={self.data.dtype}{frozen})"
