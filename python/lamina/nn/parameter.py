"""Parameter: a trainable array with its gradient, on one backend.

``data`` and ``grad`` are arrays of the parameter's backend (host NumPy arrays until a layer is
moved with ``.to()``), of one shape. ``zero_grad()`` does not write memory: it marks the
gradient as zero, and the first layer backward after it *overwrites* the buffer (GEMMs write
straight into it, see ``grad_for_overwrite``); a later backward before the next zero_grad
accumulates. Reading ``grad`` while it is marked zero materialises the zeros, so the observable
semantics are PyTorch's ``grad += dC/dparam``. Every operation on the arrays is a kernel of the
backend (``fill``, ``add``, ``copy``).
"""
from __future__ import annotations

import numpy as np

from .. import backend as _backend


class Parameter:
    """``data`` (the values), ``grad`` (same shape), ``trainable`` (False freezes it: every
    optimiser skips it and layers do no gradient work for it), ``name``, ``lr_scale`` (a
    per-parameter multiplier of the optimiser's learning rate, 1.0 by default) and ``backend``
    (the backend holding the arrays; None: host NumPy arrays). Host data other than float32
    or float64 is converted to float32. ``grad_is_zero`` is True while the gradient is marked
    zero and its buffer not yet written (``zero_grad``; setting it True is the same): a reader
    that will only read it takes ``grad`` (which writes the zeros first), a backward writes
    through ``grad_for_overwrite`` / ``accumulate_grad``.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> p = nn.Parameter(np.zeros((2, 3)), "w", lr_scale=0.1)
        >>> p
        Parameter(w, shape=(2, 3), dtype=float64)
        >>> nn.Parameter([1, 2]).dtype
        dtype('float32')
    """

    __slots__ = ("data", "_grad", "grad_is_zero", "trainable", "name", "lr_scale", "backend")

    def __init__(self, data, name: str = "", trainable: bool = True, lr_scale: float = 1.0, backend=None):
        self.backend = None if backend is None else _backend.get_backend(backend)
        if self.backend is None:
            data = np.asarray(data)
            if data.dtype not in (np.float32, np.float64):
                data = data.astype(np.float32)
            data = np.ascontiguousarray(data)
        else:
            data = _backend.move(data, self.backend)
        self.data = data
        self._grad = self.be.zeros(data.shape, data.dtype)
        self.grad_is_zero = False
        self.trainable = bool(trainable)
        self.name = name
        self.lr_scale = float(lr_scale)

    @property
    def be(self):
        """The backend whose kernels work on this parameter's arrays: ``backend`` when the
        parameter was moved, else the one that owns ``data`` (host arrays: "numpy" or
        "native").

        Example:

            >>> from lamina import nn
            >>> nn.Dense(3, 2).weight.to("numpy").be.name
            'numpy'
        """
        return self.backend if self.backend is not None else _backend.backend_of(self.data)

    @property
    def grad(self):
        """dC/d(data): an array of ``data``'s shape, dtype and backend, accumulated by every
        backward since the last ``zero_grad``. Setting it copies the value onto the backend;
        ValueError for a value of another shape.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> p = nn.Parameter(np.zeros(3, np.float32), "b")
            >>> p.grad = np.ones(3, np.float32); p.grad
            array([1., 1., 1.], dtype=float32)
        """
        if self.grad_is_zero:
            self.be.fill(self._grad, 0.0)
            self.grad_is_zero = False
        return self._grad

    @grad.setter
    def grad(self, value):
        if tuple(value.shape) != tuple(self.data.shape):
            raise ValueError(f"grad of {self.name or 'parameter'} must have shape {self.data.shape}, got {value.shape}")
        self._grad = self.be.copy(_backend.move(value, self.be))
        self.grad_is_zero = False

    @property
    def shape(self):
        """The shape of ``data`` (and of ``grad``), a tuple.

        Example:

            >>> from lamina import nn
            >>> nn.Conv2D(1, 6, 5).weight.shape
            (6, 1, 5, 5)
        """
        return self.data.shape

    @property
    def dtype(self):
        """The dtype of ``data``: float32, or float64 after ``astype``.

        Example:

            >>> from lamina import nn
            >>> nn.Dense(3, 2).weight.dtype
            dtype('float32')
        """
        return self.data.dtype

    @property
    def size(self) -> int:
        """The number of values (the product of ``shape``).

        Example:

            >>> from lamina import nn
            >>> nn.Dense(3, 2).weight.size
            6
        """
        return self.data.size

    def zero_grad(self):
        """Marks the gradient zero (no memory is written: the next backward overwrites it;
        reading ``grad`` before that gives zeros).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> p = nn.Parameter(np.zeros(2, np.float32))
            >>> p.grad = np.ones(2, np.float32); p.zero_grad(); p.grad
            array([0., 0.], dtype=float32)
        """
        self.grad_is_zero = True

    def grad_for_overwrite(self):
        """The gradient buffer, when it is marked zero, for a caller that will overwrite all of
        it now (a GEMM writing dC/dW straight into it); None when the caller must accumulate
        (``accumulate_grad``) instead. Used by layers' backward passes.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> p = nn.Parameter(np.zeros(2, np.float32)); p.zero_grad()
            >>> p.grad_for_overwrite().shape, p.grad_for_overwrite()
            ((2,), None)
        """
        if not self.grad_is_zero:
            return None
        self.grad_is_zero = False
        return self._grad

    def accumulate_grad(self, g):
        """Adds ``g`` (an array of this parameter's backend, its shape) to the gradient; adopts
        ``g`` itself (no copy) right after zero_grad, so ``g`` must be a fresh C-contiguous array
        (a kernel's result) the caller will not write again. Used by layers' backward passes.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> p = nn.Parameter(np.zeros(2, np.float32)); p.zero_grad()
            >>> p.accumulate_grad(np.ones(2, np.float32)); p.accumulate_grad(np.ones(2, np.float32)); p.grad
            array([2., 2.], dtype=float32)
        """
        if self.grad_is_zero and g.dtype == self.data.dtype and tuple(g.shape) == tuple(self.data.shape):
            self._grad = g
            self.grad_is_zero = False
        else:
            be = self.be
            be.add(self.grad, g, out=self._grad)

    def assign(self, values):
        """Copies ``values`` (host data or an array of any backend, converted to ``dtype``)
        into ``data`` in place, so optimisers and layers holding ``data`` see the new values.
        ValueError for another shape.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> p = nn.Parameter(np.zeros(3, np.float32))
            >>> p.assign([1, 2, 3]); p.numpy()
            array([1., 2., 3.], dtype=float32)
        """
        be = self.be
        values = _backend.move(values, be, self.data.dtype)
        if tuple(values.shape) != tuple(self.data.shape):
            raise ValueError(f"{self.name or 'parameter'} has shape {self.data.shape}, got {values.shape}")
        be.copy(values, out=self.data)

    def numpy(self):
        """The values as a new host NumPy array (a copy, of ``shape`` and ``dtype``, from any
        backend).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Parameter(np.arange(3)).numpy()
            array([0., 1., 2.], dtype=float32)
        """
        return np.array(self.be.to_numpy(self.data), copy=True)

    def to(self, backend):
        """Moves ``data`` (and a fresh zero gradient) onto ``backend`` (a name or a backend
        object; None: host NumPy); returns the parameter. ValueError for an unknown backend
        name.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> p = nn.Parameter(np.ones(2, np.float32)).to("numpy")
            >>> p.backend.name, p.numpy()
            ('numpy', array([1., 1.], dtype=float32))
        """
        target = None if backend is None else _backend.get_backend(backend)
        host = self.be.to_numpy(self.data) if target is None or not _same_arrays(self.be, target) else None
        if target is None:
            self.data = np.ascontiguousarray(host)
        elif host is not None:
            self.data = target.asarray(host)
        self.backend = target
        self._grad = self.be.zeros(self.data.shape, self.data.dtype)
        self.grad_is_zero = False
        return self

    def astype(self, dtype):
        """Converts ``data`` to ``dtype`` (float32 or float64), with a fresh zero gradient;
        returns the parameter. Only backends listing the dtype in ``dtypes`` compute with it.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Parameter(np.ones(2, np.float32)).astype(np.float64).dtype
            dtype('float64')
        """
        dtype = np.dtype(dtype)
        if dtype != self.data.dtype:
            be = self.be
            host = be.to_numpy(self.data).astype(dtype)
            self.data = np.ascontiguousarray(host) if self.backend is None else be.asarray(host)
            self._grad = self.be.zeros(self.data.shape, dtype)
            self.grad_is_zero = False
        return self

    def __repr__(self):
        frozen = "" if self.trainable else ", frozen"
        where = "" if self.backend is None else f", backend={self.backend.name}"
        return f"Parameter({self.name or '?'}, shape={self.data.shape}, dtype={self.data.dtype}{where}{frozen})"


def _same_arrays(a, b) -> bool:
    """Whether backends ``a`` and ``b`` share one array type (native and numpy: host arrays)."""
    return a is b or type(a.empty((0,), np.float32)) is type(b.empty((0,), np.float32))


class Buffer:
    """A layer's state that is not trained (BatchNorm's ``running_mean``, ``running_var`` and
    ``num_batches_tracked``), PyTorch's "buffer": saved and loaded under its name beside the
    parameters (``lamina.save`` writes it, PyTorch's ``load_state_dict`` reads it), moved by
    ``to()`` and converted by ``astype()`` with its layer, never given to an optimiser, without
    a gradient. A float buffer lives on its layer's backend and is updated by kernels; an
    integer buffer (a counter) stays a 0-d or small host NumPy array that Python updates (no
    kernel reads it). ``data``, ``name``, ``backend`` (None: host NumPy arrays). TypeError for
    data that are not numbers.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> nn.Buffer(np.zeros(3, np.float32), "running_mean"), nn.Buffer(np.int64(0), "num_batches_tracked")
        (Buffer(running_mean, shape=(3,), dtype=float32), Buffer(num_batches_tracked, shape=(), dtype=int64))
    """

    __slots__ = ("data", "name", "backend")

    def __init__(self, data, name: str = "", backend=None):
        data = np.array(data, copy=True, order="C")  # (not ascontiguousarray: it makes 0-d arrays 1-d)
        if data.dtype.kind not in "fiu":
            raise TypeError(f"buffer {name!r} must hold numbers, got dtype {data.dtype}")
        if data.dtype.kind == "f" and data.dtype not in (np.float32, np.float64):
            data = data.astype(np.float32)
        self.data, self.name, self.backend = data, name, None
        if backend is not None:
            self.to(backend)

    @property
    def is_float(self) -> bool:
        """Whether the buffer holds floats: float buffers follow the backend and dtype of their
        layer; integer ones (counters) stay on the host.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Buffer(np.zeros(3), "running_mean").is_float, nn.Buffer(np.int64(0), "n").is_float
            (True, False)
        """
        return self.data.dtype.kind == "f"

    @property
    def be(self):
        """The backend whose kernels work on this buffer's array: its layer's for a float
        buffer, "numpy" for an integer one.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Buffer(np.int64(0), "n").be.name
            'numpy'
        """
        if self.backend is not None and self.is_float:
            return self.backend
        return _backend.backend_of(self.data) if self.is_float else _backend.get_backend("numpy")

    @property
    def shape(self):
        """The shape of ``data``, a tuple (``()`` for a counter).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Buffer(np.int64(0), "num_batches_tracked").shape
            ()
        """
        return self.data.shape

    @property
    def dtype(self):
        """The dtype of ``data``: float32 or float64 (as given, or after ``astype``; other
        floats become float32), or an integer dtype for a counter.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Buffer(np.zeros(3, np.float16), "running_var").dtype
            dtype('float32')
        """
        return self.data.dtype

    @property
    def size(self) -> int:
        """The number of values.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Buffer(np.zeros(3), "running_var").size
            3
        """
        return self.data.size

    def numpy(self):
        """The values as a new host NumPy array (a copy, from any backend).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Buffer(np.array([1.0, 2.0], np.float32), "running_mean").numpy()
            array([1., 2.], dtype=float32)
        """
        if not self.is_float:
            return np.array(self.data, copy=True)
        return np.array(self.be.to_numpy(self.data), copy=True)

    def assign(self, values):
        """Copies ``values`` (host data or an array of any backend) into the buffer in place.
        ValueError for another shape, or for non-integers into an integer buffer.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> b = nn.Buffer(np.zeros(2, np.float32), "running_mean"); b.assign([3, 4]); b.numpy()
            array([3., 4.], dtype=float32)
        """
        if not self.is_float:
            values = np.asarray(values)
            if values.shape != self.data.shape or values.dtype.kind not in "iu":
                raise ValueError(f"{self.name or 'buffer'} takes integers of shape {self.data.shape}, got "
                                 f"{values.dtype} {values.shape}")
            self.data[...] = values
            return
        be = self.be
        values = _backend.move(values, be, self.data.dtype)
        if tuple(values.shape) != tuple(self.data.shape):
            raise ValueError(f"{self.name or 'buffer'} has shape {self.data.shape}, got {values.shape}")
        be.copy(values, out=self.data)

    def to(self, backend):
        """Moves a float buffer onto ``backend`` (a name or backend object; None: host NumPy);
        integer buffers stay on the host. Returns the buffer; ValueError for an unknown name.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Buffer(np.zeros(2), "running_mean").to("numpy").backend.name
            'numpy'
        """
        target = None if backend is None else _backend.get_backend(backend)
        if self.is_float:
            if target is None:
                self.data = np.ascontiguousarray(self.be.to_numpy(self.data))
            elif not _same_arrays(self.be, target):
                self.data = target.asarray(self.be.to_numpy(self.data))
        self.backend = target
        return self

    def astype(self, dtype):
        """Converts a float buffer to ``dtype`` (float32 or float64); integer buffers stay.
        Returns the buffer.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Buffer(np.zeros(2), "running_mean").astype(np.float64).dtype
            dtype('float64')
        """
        dtype = np.dtype(dtype)
        if self.is_float and dtype != self.data.dtype:
            host = self.be.to_numpy(self.data).astype(dtype)
            self.data = np.ascontiguousarray(host) if self.backend is None else self.be.asarray(host)
        return self

    def __repr__(self):
        where = "" if self.backend is None else f", backend={self.backend.name}"
        return f"Buffer({self.name or '?'}, shape={self.data.shape}, dtype={self.data.dtype}{where})"
