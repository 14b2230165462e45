"""Losses: ``loss_fn(output, target) -> (loss, dC/d(output))``, one fused kernel each.

- ``CrossEntropy``: softmax + negative log-likelihood on logits (N, K) with integer labels (N,),
  averaged over the batch; the gradient (softmax - onehot) / N comes from the same pass.
- ``MSE``: the talk's C = 1/(2n) sum_x ||y(x) - a(x)||^2, n = batch size.
- ``BinaryCrossEntropy``: on probabilities (e.g. after Sigmoid), averaged over all elements,
  clamped so probabilities of exactly 0 or 1 stay finite.
"""
from __future__ import annotations

import numpy as np

from . import backend as _backend


class NonFiniteLossError(FloatingPointError):
    """Training hit a NaN or infinite loss: raised by ``fit`` and ``train_step`` after the
    parameters are put back as they were before the offending step. ``epoch`` and ``batch``
    (1-based; None from ``train_step``) say where, ``loss`` is the value. A FloatingPointError
    (also ``lamina.nn.NonFiniteLossError``).

    Example:

        >>> from lamina import nn
        >>> e = nn.NonFiniteLossError("non-finite loss (nan)", 2, 17, float("nan"))
        >>> (e.epoch, e.batch), isinstance(e, FloatingPointError)
        ((2, 17), True)
    """

    def __init__(self, message, epoch, batch, loss):
        super().__init__(message)
        self.epoch, self.batch, self.loss = epoch, batch, loss


class Loss:
    """``loss(output, target) -> (loss as a float, dC/d(output) as an array of the output's
    backend)``. It runs on ``backend`` when given (to the call or the constructor), else on the
    backend of ``output``; host NumPy targets are moved there by the loss itself. A subclass
    names its backend kernel in ``kernel`` (a function ``(output, target) -> (loss, grad)`` of
    the backend contract).

    Example:

        >>> import numpy as np
        >>> from lamina import losses
        >>> loss, grad = losses.MSE(backend="numpy")(np.ones((2, 3)), np.zeros((2, 3)))
        >>> loss, grad.dtype
        (1.5, dtype('float64'))
    """

    kernel = ""

    def __init__(self, backend=None):
        self.backend = None if backend is None else _backend.get_backend(backend)

    def _backend_for(self, output, backend):
        if backend is not None:
            return _backend.get_backend(backend)
        return self.backend if self.backend is not None else _backend.backend_of(output)

    def __call__(self, output, target, backend=None):
        be = self._backend_for(output, backend)
        if type(target) is not np.ndarray or not target.ndim or not target.flags.c_contiguous \
                or be.asarray is not _HOST_ASARRAY:
            target = _backend.move(target, be)  # (a C-contiguous host array is already one of a host backend)
        loss, grad = getattr(be, self.kernel)(output, target)
        return (loss if type(loss) is float else float(loss)), grad

    def prepare_target(self, y, dtype):
        """The target array as the kernel wants it, a C-contiguous host array of ``dtype``
        (the model's float dtype here; CrossEntropy makes int64 labels): ``fit`` converts the
        targets once, not per batch.

        Example:

            >>> import numpy as np
            >>> from lamina import losses
            >>> losses.MSE().prepare_target([[0, 1]], np.float32).dtype
            dtype('float32')
        """
        return np.ascontiguousarray(y, dtype=dtype)

    def count_correct(self, output, target):
        """(number correct, number judged) for the accuracy metric, or None when accuracy
        means nothing for this loss (the base class).

        Example:

            >>> import numpy as np
            >>> from lamina import losses
            >>> print(losses.Loss().count_correct(np.zeros((2, 3), np.float32), np.zeros(2)))
            None
        """
        return None

    def get_config(self):
        """The constructor's arguments to save (none: a loss is saved by its class name).

        Example:

            >>> from lamina import losses
            >>> losses.CrossEntropy().get_config()
            {}
        """
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


_HOST_ASARRAY = _backend.Backend.asarray  # the host backends' asarray: no-op on C-contiguous arrays


def _host(a):
    """A host NumPy view of ``a`` (an explicit device-to-host copy for a backend array)."""
    return a if isinstance(a, np.ndarray) else _backend.backend_of(a).to_numpy(a)


def _predicted_class(output):
    """argmax over the classes, computed on the output's backend, as host integers."""
    be = _backend.backend_of(output)
    return be.to_numpy(be.argmax(output, axis=1))


class CrossEntropy(Loss):
    """Softmax + negative log-likelihood on logits (N, K) with integer labels (N,) in [0, K),
    averaged over the batch; the gradient (softmax - onehot) / N comes from the same kernel.
    The labels may be whole-number floats; one-hot rows are a ValueError (use ``y.argmax(1)``).
    Keras's ``sparse_categorical_crossentropy(from_logits=True)``; PyTorch's CrossEntropyLoss.

    Example:

        >>> import numpy as np
        >>> from lamina import losses
        >>> loss, grad = losses.CrossEntropy()(np.zeros((2, 4), np.float32), np.array([0, 3]))
        >>> round(loss, 4), grad.shape   # log(4): uniform logits
        (1.3863, (2, 4))
    """

    kernel = "softmax_cross_entropy"

    def prepare_target(self, y, dtype):
        """Labels (N,) as int64 (``dtype`` is ignored); whole-number floats are accepted.
        ValueError for another shape or for fractional values, with a hint for one-hot rows.

        Example:

            >>> import numpy as np
            >>> from lamina import losses
            >>> losses.CrossEntropy().prepare_target([1.0, 2.0], np.float32)
            array([1, 2])
        """
        y = np.asarray(y)
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0
                               or np.array_equal(y, np.round(y))):
            hint = " (one-hot rows? pass y.argmax(axis=1))" if y.ndim == 2 else ""
            raise ValueError(f"CrossEntropy needs integer class labels of shape (N,), got {y.dtype} {y.shape}{hint}")
        return np.ascontiguousarray(y, dtype=np.int64)

    def count_correct(self, output, target):
        """(rows whose argmax over the K logits equals the label, N) for logits (N, K) and
        labels (N,); the argmax is computed on the output's backend.

        Example:

            >>> import numpy as np
            >>> from lamina import losses
            >>> logits = np.array([[2.0, 0.0], [0.0, 1.0]], np.float32)
            >>> losses.CrossEntropy().count_correct(logits, np.array([0, 0]))
            (1, 2)
        """
        target = _host(target)
        return int(np.count_nonzero(_predicted_class(output) == target)), len(target)


class MSE(Loss):
    """The talk's quadratic cost C = 1/(2n) sum_x ||y(x) - a(x)||^2, n = the batch size: summed
    over the outputs, halved, averaged over the batch (Keras's and PyTorch's mean squared error
    average over every element and do not halve). Output and target have one shape.

    Example:

        >>> import numpy as np
        >>> from lamina import losses
        >>> loss, grad = losses.MSE()(np.array([[1.0, 2.0]], np.float32), np.zeros((1, 2), np.float32))
        >>> loss, grad   # (1 + 4) / 2; the gradient (a - y) / n
        (2.5, array([[1., 2.]], dtype=float32))
    """

    kernel = "mse"

    def count_correct(self, output, target):
        """For (N, K) outputs and targets of that shape with K > 1 (one-hot rows): (rows whose
        argmaxes agree, N); None otherwise (regression: no accuracy).

        Example:

            >>> import numpy as np
            >>> from lamina import losses
            >>> out = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
            >>> losses.MSE().count_correct(out, np.eye(2, dtype=np.float32))
            (2, 2)
        """
        # One-hot targets: accuracy is meaningful as argmax agreement.
        if output.ndim == 2 and tuple(output.shape) == tuple(target.shape) and output.shape[1] > 1:
            t = target.argmax(axis=1) if isinstance(target, np.ndarray) else _predicted_class(target)
            return int(np.count_nonzero(_predicted_class(output) == t)), len(target)
        return None


class BinaryCrossEntropy(Loss):
    """-[t log p + (1 - t) log(1 - p)] on probabilities p (e.g. after a Sigmoid layer), averaged
    over every element; p is clamped to [1e-7, 1 - 1e-7] so 0 and 1 stay finite. Targets in
    [0, 1], the output's shape.

    Example:

        >>> import numpy as np
        >>> from lamina import losses
        >>> loss, grad = losses.BinaryCrossEntropy()(np.full(4, 0.5, np.float32), np.array([0, 1, 1, 0], np.float32))
        >>> round(loss, 4)   # log(2)
        0.6931
    """

    kernel = "binary_cross_entropy"

    def count_correct(self, output, target):
        """(elements where output > 0.5 agrees with target > 0.5, number of elements).

        Example:

            >>> import numpy as np
            >>> from lamina import losses
            >>> p = np.array([0.9, 0.2, 0.6], np.float32)
            >>> losses.BinaryCrossEntropy().count_correct(p, np.array([1.0, 0.0, 0.0], np.float32))
            (2, 3)
        """
        out, t = _host(output), _host(target)
        return int(np.count_nonzero((out > 0.5) == (t > 0.5))), t.size


LOSSES = {"cross_entropy": CrossEntropy, "crossentropy": CrossEntropy, "ce": CrossEntropy,
          "mse": MSE, "binary_cross_entropy": BinaryCrossEntropy, "bce": BinaryCrossEntropy,
          # Keras's names. Unlike Keras's defaults, CrossEntropy takes logits (from_logits=True)
          # and MSE is 1/(2n) sum ||y - a||^2 (the talk's), not the mean over every element.
          "sparse_categorical_crossentropy": CrossEntropy, "mean_squared_error": MSE,
          "binary_crossentropy": BinaryCrossEntropy}


def get(loss):
    """A loss from an instance (returned as is), a Loss class, a callable
    ``f(output, target) -> (loss, grad)`` (returned as is) or a name of ``LOSSES`` (case-insensitive).
    ValueError, listing the names, for an unknown one.

    Example:

        >>> from lamina import losses
        >>> losses.get("mse"), losses.get("sparse_categorical_crossentropy"), losses.get(losses.BinaryCrossEntropy)
        (MSE(), CrossEntropy(), BinaryCrossEntropy())
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if callable(loss):
        return loss
    try:
        return LOSSES[str(loss).lower()]()
    except KeyError:
        raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)} or a Loss") from None
