"""Batch normalisation layers (Ioffe & Szegedy, 2015) with PyTorch's semantics.

    training:    y = (x - mean_B) / sqrt(var_B + eps) * weight + bias,  mean_B and the biased
                 var_B over the batch (and the spatial positions) of each channel;
                 running_mean <- (1 - momentum) running_mean + momentum mean_B
                 running_var  <- (1 - momentum) running_var  + momentum var_B n / (n - 1)
                 num_batches_tracked += 1  (momentum=None: a cumulative average, 1 / count)
    evaluation:  the running statistics instead of the batch's (with track_running_stats=False
                 the batch's, always).

Parameters ``weight`` (ones) and ``bias`` (zeros) when ``affine``; buffers ``running_mean``,
``running_var`` and ``num_batches_tracked`` (an int64 counter) when ``track_running_stats``:
``lamina.save`` writes them under those names, so a saved model's tensors are the keys of the
same network's PyTorch ``state_dict`` (``"1.running_mean"``, ...). Forward and backward are the
kernels ``batch_norm`` / ``batch_norm_backward`` (optional kernels of the backend contract:
on a backend without them the layer raises NotImplementedError naming the kernel).
"""
from __future__ import annotations

import numpy as np

from .. import backend as _backend
from .layers import Layer, init_weight, register_layer
from .parameter import Buffer, Parameter


class _BatchNorm(Layer):
    _param_names = ("weight", "bias")
    _buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    _input_ndims: tuple = ()
    _input_text = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        if isinstance(num_features, bool) or int(num_features) != num_features or int(num_features) < 1:
            raise ValueError(f"{type(self).__name__}: num_features must be an int >= 1, got {num_features!r}")
        self.num_features = C = int(num_features)
        self.eps = float(eps)
        if not 0.0 <= self.eps < float("inf"):
            raise ValueError(f"{type(self).__name__}: eps must be finite and >= 0, got {eps!r}")
        if momentum is not None:
            momentum = float(momentum)
            if not 0.0 <= momentum <= 1.0:
                raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.momentum = momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.weight = Parameter(init_weight("ones", (C,)), "weight") if self.affine else None
        self.bias = Parameter(init_weight("zeros", (C,)), "bias") if self.affine else None
        if self.track_running_stats:
            self.running_mean = Buffer(init_weight("zeros", (C,)), "running_mean")
            self.running_var = Buffer(init_weight("ones", (C,)), "running_var")
            self.num_batches_tracked = Buffer(np.zeros((), np.int64), "num_batches_tracked")
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self._cache = None

    @property
    def dtype(self):
        if self.weight is not None:
            return self.weight.dtype
        return self.running_mean.dtype if self.running_mean is not None else None

    def _check_input(self, x):
        if x.ndim not in self._input_ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) expects input {self._input_text} with "
                             f"C = {self.num_features}, got shape {tuple(x.shape)}")

    def forward(self, x, training=False):
        self._check_input(x)
        be = self._be()
        kernel = _backend.require_kernel(be, "batch_norm", type(self).__name__)
        use_batch = bool(training) or not self.track_running_stats
        factor = 0.0
        rm = rv = None
        if self.track_running_stats:
            rm, rv = self.running_mean.data, self.running_var.data
            if training:
                self.num_batches_tracked.data[...] += 1
                factor = 1.0 / float(self.num_batches_tracked.data) if self.momentum is None else self.momentum
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        y = self._buffer("y", tuple(x.shape), x.dtype, be)
        y, mean, invstd = kernel(x, rm, rv, w, b, training=use_batch, momentum=factor, eps=self.eps, out=y)
        self._cache = (x, mean, invstd, use_batch)
        return y

    def _backward(self, grad, need_input_grad):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        x, mean, invstd, use_batch = self._cache
        be = self._be()
        kernel = _backend.require_kernel(be, "batch_norm_backward", type(self).__name__)
        if tuple(grad.shape) != tuple(x.shape):
            raise ValueError(f"grad has shape {tuple(grad.shape)}, expected {tuple(x.shape)}")
        w = None if self.weight is None else self.weight.data
        gx, gw, gb = kernel(grad, x, w, mean, invstd, training=use_batch)
        if self.weight is not None and self.weight.trainable:
            self.weight.accumulate_grad(gw)
        if self.bias is not None and self.bias.trainable:
            self.bias.accumulate_grad(gb)
        return gx if need_input_grad else None

    def get_config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats}


@register_layer
class BatchNorm1D(_BatchNorm):
    """Batch normalisation of (N, C) features (or (N, C, L) sequences: over N and L), as
    ``torch.nn.BatchNorm1d``; see the module docstring.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> bn = nn.BatchNorm1D(3)
        >>> x = np.random.default_rng(0).normal(5.0, 2.0, (64, 3)).astype(np.float32)
        >>> y = bn.forward(x, training=True)   # batch statistics; the running ones move 10% of the way
        >>> np.round(y.std(axis=0), 2), bool(np.allclose(y.mean(axis=0), 0, atol=1e-5))
        (array([1., 1., 1.], dtype=float32), True)
        >>> model = nn.Sequential(nn.Dense(784, 100), nn.BatchNorm1D(100), nn.ReLU(), nn.Dense(100, 10))
    """

    _input_ndims = (2, 3)
    _input_text = "(N, C) or (N, C, L)"


@register_layer
class BatchNorm2D(_BatchNorm):
    """Batch normalisation of (N, C, H, W) feature maps, per channel over N, H and W, as
    ``torch.nn.BatchNorm2d``; see the module docstring.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> model = nn.Sequential(nn.Conv2D(3, 16, 3, padding=1), nn.BatchNorm2D(16), nn.ReLU())
        >>> model.predict(np.zeros((2, 3, 8, 8), np.float32)).shape   # inference: the running statistics
        (2, 16, 8, 8)
    """

    _input_ndims = (4,)
    _input_text = "(N, C, H, W)"
