"""Minibatches: the one loop over a data set that fit, evaluate, predict, the diagnostics and
the experiments share.

``Batches(X, y, batch_size, backend)`` holds a data set where it lives: host NumPy arrays (the
usual case: each minibatch is gathered on the host into a reused buffer and moved with one
``asarray``, which is no copy at all on the host backends) or arrays already on ``backend``
(a data set that fits on the device: rows are gathered there with the ``gather_rows`` kernel).
Iterating yields ``(xb, yb)``: ``xb`` an array of the backend, ``yb`` the targets' minibatch
where the targets live (host targets stay on the host; the losses move what they need), or
None without targets. The arrays yielded are valid until the next step.
"""
from __future__ import annotations

import numpy as np

from .. import backend as _backend


def _on_host(a) -> bool:
    return isinstance(a, np.ndarray) or _backend.array_owner(a) is None


class Batches:
    """Minibatches of (X, y) on ``backend`` (a name or backend object; None: the default).

    ``X``: host data (converted once to ``dtype`` when given, C-contiguous) or an array of the
    backend. ``y``: None, host data (kept as given: prepare it with the loss first) or an array
    of the backend. ``iterate(order)`` visits the samples in the order of ``order`` (a
    permutation of range(n), some of its indices (a rank's shard in distributed training), or
    None for the stored order); ``len()`` is the number of steps over all n samples.
    ValueError for batch_size < 1, X and y of different lengths, or a backend array of
    another dtype than ``dtype``.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> batches = nn.Batches(np.zeros((10, 3), np.float32), np.arange(10), batch_size=4)
        >>> len(batches), [xb.shape for xb, _ in batches]
        (3, [(4, 3), (4, 3), (2, 3)])
    """

    def __init__(self, X, y=None, batch_size=32, backend=None, dtype=None):
        self.backend = be = _backend.get_backend(backend)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x_host = _on_host(X)
        if self.x_host:
            X = np.ascontiguousarray(X, dtype=dtype)
        elif dtype is not None and np.dtype(dtype) != X.dtype:
            raise ValueError(f"X is a {X.dtype} array of backend {be.name!r}; the model computes in {np.dtype(dtype)}")
        self.X = X
        self.n = n = len(X)
        self.y_host = y is None or _on_host(y)
        if y is not None:
            if self.y_host:
                y = np.asarray(y)
            if len(y) != n:
                raise ValueError(f"X has {n} samples but y has {len(y)}")
        self.y = y
        self._bufs = {}

    def __len__(self):
        return -(-self.n // self.batch_size)

    def __iter__(self):
        return self.iterate()

    def _buffer(self, key, a, rows, host):
        shape = (rows,) + tuple(a.shape[1:])
        buf = self._bufs.get(key)
        if buf is None or tuple(buf.shape) != shape:
            buf = self._bufs[key] = np.empty(shape, a.dtype) if host else self.backend.empty(shape, a.dtype)
        return buf

    def _rows(self, key, a, host, idx):
        """Rows ``idx`` of ``a`` (host or backend) into a reused buffer of the same kind."""
        be = self.backend
        full = self._buffer(key, a, min(self.batch_size, self.n), host)
        out = full[: len(idx)]
        if host:
            return a.take(idx, axis=0, out=out, mode="clip")  # (np.take's method, without the wrapper)
        return be.gather_rows(a, be.asarray(idx), out=out)

    def iterate(self, order=None):
        """Yields (xb, yb) for every step; ``order`` as in the class docstring. ``xb`` (B, ...)
        is an array of the backend (the last batch may be smaller), ``yb`` the targets' rows or
        None; both are valid until the next step. ValueError for an ``order`` that is not 1-D or
        longer than the data.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> batches = nn.Batches(np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5), batch_size=2)
            >>> [yb.tolist() for _, yb in batches.iterate(order=[4, 3, 2, 1, 0])]
            [[4, 3], [2, 1], [0]]
        """
        be, bs, n, X, y = self.backend, self.batch_size, self.n, self.X, self.y
        if order is not None:
            order = np.asarray(order, dtype=np.int64)
            if order.ndim != 1 or len(order) > n:
                raise ValueError(f"order must be a 1-D array of at most {n} indices, got shape {order.shape}")
            n = len(order)
        for lo in range(0, n, bs):
            hi = min(lo + bs, n)
            if order is None:
                xb, yb = X[lo:hi], None if y is None else y[lo:hi]
            else:
                idx = order[lo:hi]
                xb = self._rows("x", X, self.x_host, idx)
                yb = None if y is None else self._rows("y", y, self.y_host, idx)
            yield (be.asarray(xb) if self.x_host else xb), yb
