"""Layers: forward, backward and the cache between them, layer by layer (no autograd tape).

Each layer's ``forward(x, training=False)`` stores what its backward needs; ``backward(grad)``
takes dC/d(output), accumulates dC/d(parameter) into each trainable Parameter's ``grad`` and
returns dC/d(input) for the most recent forward. All arithmetic goes through the kernels of
the layer's backend (``lamina.backend``): of the arrays themselves a layer uses only shapes,
``reshape`` views and basic slices, so the same code runs on host NumPy arrays and on a device
backend's arrays alike.

Workspace: a layer reuses its output and gradient buffers from one call to the next (every
kernel that has ``out=`` writes into them), so a training step allocates little. The array a
layer's forward returns is therefore valid until that layer's next forward: copy it to keep it
(``Sequential.forward`` and ``predict`` return fresh arrays).
"""
from __future__ import annotations

import contextlib
import contextvars
import math

import numpy as np

from .. import backend as _backend
from .. import init as _init
from ..reference import conv_output_shape, pair
from .parameter import Parameter

LAYER_TYPES: dict[str, type] = {}


def register_layer(cls):
    """Makes a Layer subclass loadable by ``lamina.load`` (by its class name) and returns it,
    so it serves as a class decorator. A later class of the same name replaces the earlier one.

    Example:

        >>> from lamina import nn
        >>> @nn.register_layer
        ... class Identity(nn.Layer):
        ...     def forward(self, x, training=False):
        ...         return x
        ...     def _backward(self, grad, need_input_grad):
        ...         return grad if need_input_grad else None
        >>> nn.LAYER_TYPES["Identity"] is Identity
        True
        >>> del nn.LAYER_TYPES["Identity"]
    """
    LAYER_TYPES[cls.__name__] = cls
    return cls


def _scalar_or_pair(v):
    return v[0] if v[0] == v[1] else list(v)


class Layer:
    """Base class: the layer contract. Subclasses set ``_param_names`` (attribute names of
    their Parameters) and implement ``forward(x, training=False)``, ``_backward(grad,
    need_input_grad)`` (the hook ``backward`` calls: containers call it as well),
    ``get_config()`` (with ``from_config``, the saved form: ``lamina.io`` writes it for every
    layer, a custom registered one included) and ``output_shape``. A layer with state that is
    not trained (running statistics) also sets ``_buffer_names`` (attribute names of its
    ``Buffer`` objects, None where absent): they are listed by ``named_buffers()``, saved and
    loaded beside the parameters, moved by ``to()`` and converted by ``astype()``; other state
    that must survive a save goes through ``get_state`` / ``set_state``. Optionally a layer
    implements a part of the fusion protocol (``lamina.nn.fusion``) to run fused with its
    neighbours in a Sequential; without it, it runs as it is.

    Example (a layer of one's own: y = 2x; the how-to "A custom layer" has a fuller one):

        >>> import numpy as np
        >>> from lamina import nn
        >>> class Double(nn.Layer):
        ...     def forward(self, x, training=False):
        ...         be = self._be()
        ...         return be.scale(x, 2.0)
        ...     def _backward(self, grad, need_input_grad):
        ...         return self._be().scale(grad, 2.0) if need_input_grad else None
        >>> layer = Double()
        >>> layer.forward(np.ones(3, np.float32)), layer.backward(np.ones(3, np.float32))
        (array([2., 2., 2.], dtype=float32), array([2., 2., 2.], dtype=float32))
    """

    _param_names: tuple = ()
    _buffer_names: tuple = ()
    is_container = False  # True for a layer made of layers (Sequential): its layers are saved in its entry

    def __init__(self):
        self.backend = None  # None: follow lamina.backend.current()
        self._ws = {}

    # -- the backend and the workspace ------------------------------------------------------
    def _be(self):
        return self.backend if self.backend is not None else _backend.current()

    @property
    def be(self):
        """The backend whose kernels this layer runs on: ``backend`` when the layer was pinned
        with ``to()``, else the current default (``lamina.backend.current()``).

        Example:

            >>> from lamina import nn
            >>> nn.Dense(3, 2).to("numpy").be.name
            'numpy'
        """
        return self.backend if self.backend is not None else _backend.current()

    def _buffer(self, name, shape, dtype, be=None):
        """A reused workspace array of the layer's backend (contents undefined)."""
        be = self._be() if be is None else be
        key = (name, shape, dtype, be.name)
        buf = self._ws.get(key)
        if buf is None:
            if len(self._ws) > 32:  # many batch sizes seen: start over rather than grow
                self._ws.clear()
            buf = self._ws[key] = be.empty(shape, dtype)
        return buf

    def _ones(self, n, dtype, be):
        """A reused (1, n) row of ones (bias gradients as a GEMM: dC/db = 1^T g)."""
        ones = self._ws.get(("ones", (1, n), dtype, be.name))
        if ones is None:
            ones = self._buffer("ones", (1, n), dtype, be)
            be.fill(ones, 1.0)
        return ones

    # -- the layer contract -----------------------------------------------------------------
    def forward(self, x, training=False):
        """The layer's output for a batch ``x`` (an array of the layer's backend, or host NumPy
        on the CPU backends); ``training`` turns on training behaviour (dropout). Keeps what the
        backward needs; the returned array is valid until the layer's next forward.
        Subclasses state their shapes and raise ValueError (shape) or TypeError (dtype).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Tanh().forward(np.zeros((2, 3), np.float32)).shape
            (2, 3)
        """
        raise NotImplementedError

    def __call__(self, x, training=False):
        return self.forward(x, training)

    def backward(self, grad, need_input_grad=True):
        """dC/d(output) -> dC/d(input) for the most recent ``forward``.

        ``grad`` has the shape and dtype of that forward's output; the result has the input's
        shape and dtype and is valid until the layer's next backward. Every trainable
        Parameter's ``grad`` accumulates dC/d(parameter) (``zero_grad`` between steps); frozen
        ones are left alone. Call it after a ``forward`` (the cache it reads).
        ``need_input_grad=False``: the parameter gradients only, and None is returned (a
        network's first layer). Subclasses implement ``_backward(grad, need_input_grad)``.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> layer = nn.Dense(3, 2)
            >>> y = layer.forward(np.ones((4, 3), np.float32), training=True)
            >>> layer.backward(np.ones((4, 2), np.float32)).shape
            (4, 3)
            >>> layer.bias.grad
            array([4., 4.], dtype=float32)
        """
        return self._backward(grad, need_input_grad)

    def _backward(self, grad, need_input_grad):
        raise NotImplementedError

    def named_parameters(self):
        """[(attribute name, Parameter)] in ``_param_names`` order, absent ones (``bias=False``)
        left out; frozen parameters are included.

        Example:

            >>> from lamina import nn
            >>> [(n, p.shape) for n, p in nn.Dense(3, 2).named_parameters()]
            [('weight', (2, 3)), ('bias', (2,))]
        """
        out = []
        for n in self._param_names:
            p = getattr(self, n)
            if p is not None:
                out.append((n, p))
        return out

    def parameters(self):
        """The layer's Parameters, as ``named_parameters()`` without the names (what an
        optimiser takes).

        Example:

            >>> from lamina import nn
            >>> [p.shape for p in nn.Conv2D(1, 6, 5).parameters()]
            [(6, 1, 5, 5), (6,)]
        """
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        """[(name, Buffer)] of the layer's untrained state, in ``_buffer_names`` order; empty
        for layers without such state.

        Example:

            >>> from lamina import nn
            >>> [n for n, _ in nn.BatchNorm1D(4).named_buffers()]
            ['running_mean', 'running_var', 'num_batches_tracked']
            >>> nn.Dense(3, 2).named_buffers()
            []
        """
        out = []
        for n in self._buffer_names:
            b = getattr(self, n)
            if b is not None:
                out.append((n, b))
        return out

    def buffers(self):
        """The layer's Buffers, as ``named_buffers()`` without the names.

        Example:

            >>> from lamina import nn
            >>> [b.shape for b in nn.BatchNorm2D(3).buffers()]
            [(3,), (3,), ()]
        """
        return [b for _, b in self.named_buffers()]

    def zero_grad(self):
        """Marks every parameter's gradient zero (``Parameter.zero_grad``: nothing is written
        until the next backward overwrites it).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> layer = nn.Dense(2, 1)
            >>> _ = layer.forward(np.ones((1, 2), np.float32)); _ = layer.backward(np.ones((1, 1), np.float32))
            >>> layer.zero_grad(); layer.bias.grad
            array([0.], dtype=float32)
        """
        for p in self.parameters():
            p.zero_grad()

    @property
    def trainable(self) -> bool:
        """Whether any of the layer's parameters is trained (False for a layer without any);
        setting it sets every parameter's ``trainable``.

        Example:

            >>> from lamina import nn
            >>> layer = nn.Dense(3, 2); layer.trainable = False
            >>> [p.trainable for p in layer.parameters()], nn.ReLU().trainable
            ([False, False], False)
        """
        ps = self.parameters()
        return any(p.trainable for p in ps) if ps else False

    @trainable.setter
    def trainable(self, value):
        for p in self.parameters():
            p.trainable = bool(value)

    def freeze(self):
        """Stops training this layer's parameters (``trainable = False``); returns the layer.
        Optimisers skip frozen parameters and backward computes no gradient for them.

        Example:

            >>> from lamina import nn
            >>> nn.Dense(3, 2).freeze().trainable
            False
        """
        self.trainable = False
        return self

    def unfreeze(self):
        """Trains this layer's parameters again (``trainable = True``); returns the layer.

        Example:

            >>> from lamina import nn
            >>> nn.Dense(3, 2).freeze().unfreeze().trainable
            True
        """
        self.trainable = True
        return self

    def output_shape(self, input_shape):
        """Output shape for an input of ``input_shape``, both without the batch dimension (a
        tuple of ints); the base class returns the input shape (element-wise layers).

        Example:

            >>> from lamina import nn
            >>> nn.ReLU().output_shape((6, 28, 28))
            (6, 28, 28)
        """
        return tuple(input_shape)

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this layer (JSON-able; saved by
        ``lamina.save``, read by ``from_config``); empty for layers without arguments.

        Example:

            >>> from lamina import nn
            >>> nn.ReLU().get_config()
            {}
        """
        return {}

    @classmethod
    def from_config(cls, config):
        """A new layer of this class built from ``get_config()``'s dict (fresh weights: the
        parameters are loaded separately). TypeError for an argument the class does not take.

        Example:

            >>> from lamina import nn
            >>> nn.Dense.from_config(nn.Dense(3, 2).get_config())
            Dense(in_features=3, out_features=2, bias=True)
        """
        return cls(**config)

    # Non-parameter state that must survive save/load for exact resumption (JSON-able).
    def get_state(self) -> dict:
        """State that is neither a parameter nor a buffer but must survive save/load for an
        exact resumption (a JSON-able dict; Dropout's call count); empty by default.

        Example:

            >>> from lamina import nn
            >>> nn.Dense(3, 2).get_state()
            {}
        """
        return {}

    def set_state(self, state):
        """Restores what ``get_state`` returned (called by ``lamina.load``); a no-op by default.

        Example:

            >>> from lamina import nn
            >>> nn.Dense(3, 2).set_state({})
        """
        pass

    def to(self, backend):
        """Moves this layer's parameters onto a backend (a name or a backend object) and pins
        the layer to it; None returns them to host NumPy arrays and follows the default.
        Returns the layer; ValueError for an unknown backend name.

        Example:

            >>> from lamina import nn
            >>> nn.Dense(3, 2).to("numpy").weight.backend.name
            'numpy'
        """
        self.backend = None if backend is None else _backend.get_backend(backend)
        for p in self.parameters():
            p.to(self.backend)
        for b in self.buffers():
            b.to(self.backend)
        self._ws.clear()
        return self

    def astype(self, dtype):
        """Converts the parameters and float buffers to ``dtype`` (float32, or float64 on a
        backend that has it: "numpy"); returns the layer. Inputs must then have that dtype
        (the kernels raise TypeError otherwise).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Dense(3, 2).astype(np.float64).dtype
            dtype('float64')
        """
        for p in self.parameters():
            p.astype(dtype)
        for b in self.buffers():
            b.astype(dtype)
        self._ws.clear()
        return self

    @property
    def dtype(self):
        """The dtype of the layer's first parameter (float32 unless converted by
        ``astype``); None for a layer without parameters.

        Example:

            >>> from lamina import nn
            >>> nn.Dense(3, 2).dtype, nn.ReLU().dtype
            (dtype('float32'), None)
        """
        ps = self.parameters()
        return ps[0].dtype if ps else None

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# Set while a model whose weights come from a file is built (in its own context: other threads
# are unaffected): [number of parameter elements the layers may still ask for].
_FROM_FILE: contextvars.ContextVar = contextvars.ContextVar("lamina_from_file", default=None)


@contextlib.contextmanager
def weights_from_file(values):
    """Within the block, ``init_weight`` hands out zeros (the weights come from a file, loaded
    afterwards), draws no random numbers, and raises ValueError once the layers built ask for
    more than ``values`` parameter elements in all: an architecture that lies about its sizes
    fails before anything large is allocated (``lamina.io`` passes the file's own count plus a
    little slack, so that small mismatches reach its per-tensor messages).

    Example:

        >>> from lamina import nn
        >>> with nn.layers.weights_from_file(10):
        ...     bool(nn.Dense(3, 2).weight.numpy().any())
        False
    """
    token = _FROM_FILE.set([int(values)])
    try:
        yield
    finally:
        _FROM_FILE.reset(token)


def init_weight(init, shape, dtype=np.float32):
    """A new host array of ``shape`` from the initialiser ``init`` (a name of ``lamina.init`` or
    a callable (shape, rng)), drawn from ``lamina.init``'s generator; zeros inside
    ``weights_from_file``. What a layer's constructor calls for each parameter.

    Example:

        >>> from lamina import nn
        >>> nn.layers.init_weight("zeros", (2, 3)).shape
        (2, 3)
    """
    budget = _FROM_FILE.get()
    if budget is not None:
        shape = tuple(int(s) for s in shape)
        if min(shape, default=1) < 0:
            raise ValueError(f"the architecture asks for a parameter of shape {shape}")
        n = math.prod(shape)
        if n > budget[0]:
            raise ValueError(f"the architecture asks for a parameter of shape {shape} ({n:,} values), more than "
                             "the file's tensors hold")
        budget[0] -= n
        return np.zeros(shape, dtype=dtype)
    fn = _init.get(init)
    w = np.asarray(fn(shape, _init.get_rng()), dtype=dtype)
    if w.shape != tuple(shape):
        raise ValueError(f"initialiser returned shape {w.shape}, expected {tuple(shape)}")
    return w


def grad_matmul(be, p, a, b, trans_a=False, trans_b=False, shape=None):
    """p.grad (+)= op(a) op(b) on backend ``be``: written straight into the gradient buffer
    after zero_grad (``Parameter.grad_for_overwrite``), added to it otherwise. ``shape``: the
    shape the product is viewed as in the buffer (a bias's (1, n) row).

    Example:

        >>> import numpy as np
        >>> from lamina import backend, nn
        >>> p = nn.Parameter(np.zeros((2, 2), np.float32)); p.zero_grad()
        >>> nn.layers.grad_matmul(backend.get_backend("native"), p, np.eye(2, dtype=np.float32),
        ...                       np.ones((2, 2), np.float32))
        >>> p.grad
        array([[1., 1.],
               [1., 1.]], dtype=float32)
    """
    out = p.grad_for_overwrite()
    if out is not None:
        be.matmul(a, b, trans_a=trans_a, trans_b=trans_b, out=out if shape is None else out.reshape(shape))
    else:
        g = be.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
        p.accumulate_grad(g if shape is None else g.reshape(p.shape))


_init_weight, _grad_matmul = init_weight, grad_matmul  # (the earlier names)


@register_layer
class Dense(Layer):
    """y = x W^T + b; W (out_features, in_features), b (out_features,). x (N, in) or (..., in).

    ``init`` / ``bias_init``: an initialiser name of lamina.init or a callable (shape, rng);
    He normal weights and zero biases by default; the talk's "typical" start is
    ``init="normal", bias_init="normal"`` (every weight and bias N(0, 1)). Both sizes are given
    (no shape inference); a wrong input width is a ValueError naming both. Activations are
    layers of their own: a ReLU after a Dense inside a Sequential is fused into its kernel.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> layer = nn.Dense(784, 100)
        >>> layer.weight.shape, layer.forward(np.zeros((32, 784), np.float32)).shape
        ((100, 784), (32, 100))
    """

    _param_names = ("weight", "bias")

    def __init__(self, in_features, out_features, bias=True, init="he", bias_init="zeros"):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError(f"Dense sizes must be >= 1, got ({in_features}, {out_features})")
        self.init = init if isinstance(init, str) else None
        self.weight = Parameter(init_weight(init, (self.out_features, self.in_features)), "weight")
        self.bias = Parameter(init_weight(bias_init, (self.out_features,)), "bias") if bias else None
        self._x = None

    def forward(self, x, training=False):
        """x (N, in_features) or (..., in_features) -> x W^T + b, (N, out_features) or
        (..., out_features), in the parameters' dtype (float32 by default; TypeError for
        another). ValueError when the last axis is not ``in_features``. Keeps x for backward.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Dense(784, 100).forward(np.zeros((32, 784), np.float32)).shape
            (32, 100)
        """
        return self.forward_fused(x, training, None)

    # -- the fusion protocol (lamina.nn.fusion) --
    fusable_activations = ("relu",)

    def forward_fused(self, x, training, activation):
        """``forward`` with ``activation`` ("relu", or None for none) applied in the same
        kernel call (the GEMM's write-back): what a Sequential runs for a Dense and the ReLU
        after it.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> y = nn.Dense(2, 3).forward_fused(-np.ones((4, 2), np.float32), False, "relu")
            >>> y.shape, bool(y.min() >= 0)
            ((4, 3), True)
        """
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Dense expects {self.in_features} input features, got input of shape {x.shape}")
        x2 = x if x.ndim == 2 else x.reshape(-1, self.in_features)
        self._x, self._xshape = x2, x.shape
        w = self.weight.data
        be = self._be()
        y = self._buffer("y", (x2.shape[0], self.out_features), w.dtype, be)
        b = None if self.bias is None else self.bias.data
        y = be.linear(x2, w, b, activation=activation, out=y)
        return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (self.out_features,))

    def _backward(self, grad, need_input_grad):
        be = self._be()
        x = self._x
        g = grad if grad.ndim == 2 else grad.reshape(-1, self.out_features)
        w = self.weight
        if w.trainable:  # dC/dW (out, in) = g^T (out, N) x (N, in)
            grad_matmul(be, w, g, x, trans_a=True)
        if self.bias is not None and self.bias.trainable:  # dC/db = 1^T g: column sums as a GEMM
            grad_matmul(be, self.bias, self._ones(g.shape[0], g.dtype, be), g, shape=(1, self.out_features))
        if not need_input_grad:
            return None
        dx = self._buffer("dx", x.shape, w.dtype, be)  # dC/dx (N, in) = g (N, out) W (out, in)
        be.matmul(g, w.data, out=dx)
        return dx if len(self._xshape) == 2 else dx.reshape(self._xshape)

    _forward = forward_fused  # (the earlier name)

    def output_shape(self, input_shape):
        """``input_shape`` (without the batch axis) with its last axis replaced by
        ``out_features``.

        Example:

            >>> from lamina import nn
            >>> nn.Dense(400, 120).output_shape((400,))
            (120,)
        """
        if not input_shape or input_shape[-1] != self.in_features:
            raise ValueError(f"Dense({self.in_features}, {self.out_features}) takes inputs whose last axis is "
                             f"{self.in_features}, got shape {tuple(input_shape)}")
        return tuple(input_shape[:-1]) + (self.out_features,)

    def get_config(self):
        """``in_features``, ``out_features`` and ``bias`` (the initialisers are not kept: a
        loaded layer gets its weights from the file).

        Example:

            >>> from lamina import nn
            >>> nn.Dense(3, 2, bias=False).get_config()
            {'in_features': 3, 'out_features': 2, 'bias': False}
        """
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None}


@register_layer
class Conv2D(Layer):
    """Cross-correlation, NCHW: x (N, C, H, W), weight (O, C, kH, kW), bias (O,); ``init`` and
    ``bias_init`` as for Dense. ``kernel_size``, ``stride``, ``padding``, ``dilation``: an int or
    a pair. Output (N, O, OH, OW) with OH = (H + 2 pad - dilation (kH - 1) - 1) // stride + 1.
    ValueError for sizes < 1 or an input whose channels or size do not fit.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> conv = nn.Conv2D(1, 6, 5, padding=2)
        >>> conv.weight.shape, conv.forward(np.zeros((8, 1, 28, 28), np.float32)).shape
        ((6, 1, 5, 5), (8, 6, 28, 28))
    """

    _param_names = ("weight", "bias")

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, init="he", bias_init="zeros"):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding")
        self.dilation = pair(dilation, "dilation")
        if min(self.in_channels, self.out_channels, *self.kernel_size, *self.stride, *self.dilation) < 1 \
                or min(self.padding) < 0:
            raise ValueError("Conv2D: channels, kernel_size, stride and dilation must be >= 1 and padding >= 0")
        self.init = init if isinstance(init, str) else None
        self.weight = Parameter(init_weight(init, (self.out_channels, self.in_channels) + self.kernel_size), "weight")
        self.bias = Parameter(init_weight(bias_init, (self.out_channels,)), "bias") if bias else None
        self._x = None

    def forward(self, x, training=False):
        """x (N, C, H, W) -> (N, O, OH, OW) (see the class), in the parameters' dtype (TypeError
        for another). ValueError for an input that is not 4-D with ``in_channels`` channels, or
        smaller than the dilated kernel after padding. Keeps x for backward.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Conv2D(1, 6, 5, padding=2).forward(np.zeros((8, 1, 28, 28), np.float32)).shape
            (8, 6, 28, 28)
        """
        return self.forward_fused(x, training, None)

    # -- the fusion protocol (lamina.nn.fusion) --
    fusable_activations = ("relu",)

    def forward_fused(self, x, training, activation):
        """``forward`` with ``activation`` ("relu", or None for none) applied in the same
        kernel call: what a Sequential runs for a Conv2D and the ReLU after it.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> y = nn.Conv2D(1, 2, 3).forward_fused(np.ones((1, 1, 5, 5), np.float32), False, "relu")
            >>> y.shape, bool(y.min() >= 0)
            ((1, 2, 3, 3), True)
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2D expects input (N, {self.in_channels}, H, W), got shape {x.shape}")
        self._x = x
        b = None if self.bias is None else self.bias.data
        be = self._be()
        y = self._buffer("y", (x.shape[0],) + self.output_shape(x.shape[1:]), x.dtype, be)
        return be.conv2d(x, self.weight.data, b, stride=self.stride, padding=self.padding,
                         dilation=self.dilation, activation=activation, out=y)

    def _backward(self, grad, need_input_grad):
        # The first layer of a model needs no dC/dx (compute_grad_x=False skips it).
        gx, gw, gb = self._be().conv2d_backward(self._x, self.weight.data, grad, stride=self.stride,
                                                padding=self.padding, dilation=self.dilation,
                                                compute_grad_x=need_input_grad)
        self._accumulate(gw, gb)
        return gx

    def _accumulate(self, gw, gb):
        if self.weight.trainable:
            self.weight.accumulate_grad(gw)
        if self.bias is not None and self.bias.trainable:
            self.bias.accumulate_grad(gb)

    def accepts_pooled_gradient(self, pool):
        """Whether ``backward_from_pool`` can run after ``pool``: this layer's backend has the
        optional kernel ``conv2d_backward_pooled`` and ``pool`` runs on the same backend.

        Example:

            >>> from lamina import nn
            >>> nn.Conv2D(1, 2, 3).to("native").accepts_pooled_gradient(nn.MaxPool2D(2).to("native"))
            True
        """
        be = self._be()
        return getattr(be, "conv2d_backward_pooled", None) is not None and be is pool.be

    def backward_from_pool(self, grad_pooled, pool):
        """This layer's weight and bias gradients when its output went (through a ReLU, already
        applied to ``grad_pooled``) into ``pool``, a MaxPool2D: from the pooled gradient and the
        pool's ``indices``, without the unpooled gradient (backend.OPTIONAL_KERNELS). No dC/dx.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> conv, pool = nn.Conv2D(1, 2, 3), nn.MaxPool2D(2)
            >>> y = pool.forward(conv.forward(np.ones((1, 1, 6, 6), np.float32), True))
            >>> conv.zero_grad(); conv.backward_from_pool(np.ones_like(y), pool); conv.bias.grad
            array([4., 4.], dtype=float32)
        """
        gw, gb = self._be().conv2d_backward_pooled(self._x, self.weight.data, grad_pooled, pool.indices,
                                                   stride=self.stride, padding=self.padding,
                                                   dilation=self.dilation)
        self._accumulate(gw, gb)

    _forward, _backward_pooled = forward_fused, backward_from_pool  # (the earlier names)

    def output_shape(self, input_shape):
        """(C, H, W) -> (O, OH, OW), the class's formula; ValueError when the dilated kernel
        does not fit the padded input.

        Example:

            >>> from lamina import nn
            >>> nn.Conv2D(6, 16, 5).output_shape((6, 14, 14))
            (16, 10, 10)
        """
        C, H, W = input_shape
        if C != self.in_channels:
            raise ValueError(f"Conv2D expects {self.in_channels} input channels, got shape {tuple(input_shape)}")
        return (self.out_channels,) + conv_output_shape((H, W), self.kernel_size, self.stride, self.padding,
                                                        self.dilation)

    def get_config(self):
        """The constructor's sizes; a size given as a pair of equal ints is saved as one int.

        Example:

            >>> from lamina import nn
            >>> nn.Conv2D(1, 6, 5, padding=2).get_config()["padding"]
            2
        """
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": _scalar_or_pair(self.kernel_size), "stride": _scalar_or_pair(self.stride),
                "padding": _scalar_or_pair(self.padding), "dilation": _scalar_or_pair(self.dilation),
                "bias": self.bias is not None}


class _Pool2D(Layer):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding")
        if min(*self.kernel_size, *self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"{type(self).__name__}: kernel_size and stride must be >= 1 and padding >= 0")

    def output_shape(self, input_shape):
        C, H, W = input_shape
        return (C,) + conv_output_shape((H, W), self.kernel_size, self.stride, self.padding)

    def get_config(self):
        return {"kernel_size": _scalar_or_pair(self.kernel_size), "stride": _scalar_or_pair(self.stride),
                "padding": _scalar_or_pair(self.padding)}


@register_layer
class MaxPool2D(_Pool2D):
    """Max over kH x kW windows (stride defaults to the kernel size); padding counts as -inf.

    ``kernel_size``, ``stride``, ``padding``: an int or a pair; ValueError for a kernel or
    stride < 1 or a negative padding. Input (N, C, H, W) float32, output (N, C, OH, OW) with
    OH = (H + 2 pad - kH) // stride + 1. Backward routes each gradient to its window's argmax.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> nn.MaxPool2D(2).forward(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
        array([[[[ 5.,  7.],
                 [13., 15.]]]], dtype=float32)
    """

    def forward(self, x, training=False):
        """x (N, C, H, W) -> (N, C, OH, OW), the window maxima; keeps their indices for
        backward. ValueError for an input that is not 4-D or smaller than the window after
        padding; TypeError for a dtype the backend lacks.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.MaxPool2D(2).forward(np.zeros((8, 6, 28, 28), np.float32)).shape
            (8, 6, 14, 14)
        """
        y, self._idx = self._be().max_pool2d(x, self.kernel_size, self.stride, self.padding)
        self._xshape, self._y = x.shape, y
        return y

    def _backward(self, grad, need_input_grad):
        if not need_input_grad:
            return None
        return self._be().max_pool2d_backward(grad, self._idx, self._xshape)

    @property
    def indices(self):
        """The flat index, within its input plane, of each window's maximum in the latest
        forward: int64 of the output's shape (N, C, OH, OW); None before any forward.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> pool = nn.MaxPool2D(2); _ = pool.forward(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
            >>> pool.indices
            array([[[[ 5,  7],
                     [13, 15]]]])
        """
        return getattr(self, "_idx", None)

    # -- the fusion protocol (lamina.nn.fusion) --
    commutes_with_activations = ("relu",)

    def backward_through_activation(self, grad, activation_layer):
        """Backward through ``activation_layer`` (the ReLU feeding this pool) and this pool: y =
        max over the window of relu(x) = relu(x at the argmax), so the ReLU mask of the unpooled
        gradient is [y > 0] at the pooled resolution. The ReLU's own backward is skipped.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> relu, pool = nn.ReLU(), nn.MaxPool2D(2)
            >>> y = pool.forward(relu.forward(np.array([[[[-1, -2], [-3, -4]]]], np.float32)))
            >>> pool.backward_through_activation(np.ones_like(y), relu)
            array([[[[0., 0.],
                     [0., 0.]]]], dtype=float32)
        """
        return self._be().max_pool2d_backward(self.masked_by_activation(grad, activation_layer), self._idx,
                                              self._xshape)

    def masked_by_activation(self, grad, activation_layer=None):
        """grad (at this pool's output) times the mask of the ReLU feeding this pool: [y > 0].

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> pool = nn.MaxPool2D(1); _ = pool.forward(np.array([[[[-1.0, 2.0]]]], np.float32))
            >>> pool.masked_by_activation(np.ones((1, 1, 1, 2), np.float32))
            array([[[[0., 1.]]]], dtype=float32)
        """
        be = self._be()
        return be.relu_backward(grad, self._y, out=self._buffer("dy", grad.shape, grad.dtype, be))

    _backward_relu_first, _relu_masked = backward_through_activation, masked_by_activation  # (the earlier names)


@register_layer
class AvgPool2D(_Pool2D):
    """Mean over kH x kW windows; padding counts as zeros in the divisor (PyTorch's default).

    Arguments, shapes and errors as for MaxPool2D; backward spreads each gradient evenly over
    its window.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> nn.AvgPool2D(2).forward(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
        array([[[[ 2.5,  4.5],
                 [10.5, 12.5]]]], dtype=float32)
    """

    def forward(self, x, training=False):
        """x (N, C, H, W) -> (N, C, OH, OW), the window means. ValueError for an input that is
        not 4-D or smaller than the window after padding; TypeError for a dtype the backend
        lacks.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.AvgPool2D(2, stride=1).forward(np.ones((2, 3, 5, 5), np.float32)).shape
            (2, 3, 4, 4)
        """
        self._xshape = x.shape
        return self._be().avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def _backward(self, grad, need_input_grad):
        if not need_input_grad:
            return None
        return self._be().avg_pool2d_backward(grad, self._xshape, self.kernel_size, self.stride, self.padding)


@register_layer
class GlobalAvgPool2D(Layer):
    """The mean of each channel over all positions: (N, C, H, W) -> (N, C), as
    ``torch.nn.AdaptiveAvgPool2d(1)`` followed by a flatten (an avg_pool2d whose window is the
    whole map, so every backend has it). ValueError for an input that is not 4-D.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> model = nn.Sequential(nn.Conv2D(3, 16, 3), nn.ReLU(), nn.GlobalAvgPool2D(), nn.Dense(16, 10))
        >>> model.predict(np.zeros((2, 3, 32, 32), np.float32)).shape
        (2, 10)
    """

    def forward(self, x, training=False):
        """x (N, C, H, W) -> (N, C), the mean of each map, in x's dtype. ValueError for an
        input that is not 4-D or has an empty map.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.GlobalAvgPool2D().forward(np.ones((2, 16, 7, 7), np.float32)).shape
            (2, 16)
        """
        if x.ndim != 4 or x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f"GlobalAvgPool2D expects input (N, C, H, W) with H, W >= 1, got shape {tuple(x.shape)}")
        self._xshape = tuple(x.shape)
        N, C, H, W = self._xshape
        return self._be().avg_pool2d(x, (H, W)).reshape(N, C)

    def _backward(self, grad, need_input_grad):
        if not need_input_grad:
            return None
        N, C, H, W = self._xshape
        return self._be().avg_pool2d_backward(grad.reshape(N, C, 1, 1), self._xshape, (H, W))

    def output_shape(self, input_shape):
        """(C, H, W) -> (C,).

        Example:

            >>> from lamina import nn
            >>> nn.GlobalAvgPool2D().output_shape((16, 7, 7))
            (16,)
        """
        return (input_shape[0],)


@register_layer
class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...): a view when the input is contiguous. Any dtype;
    no parameters. Backward reshapes the gradient back to the input's shape.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> nn.Flatten().forward(np.zeros((8, 16, 5, 5), np.float32)).shape
        (8, 400)
    """

    def forward(self, x, training=False):
        """x (N, ...) -> (N, prod(...)), a reshaped view of x (no copy when x is contiguous).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Flatten().forward(np.ones((2, 3, 4))).shape
            (2, 12)
        """
        self._xshape = x.shape
        return x.reshape(x.shape[0], -1)

    def _backward(self, grad, need_input_grad):
        return grad.reshape(self._xshape) if need_input_grad else None

    def output_shape(self, input_shape):
        """(d1, d2, ...) -> (d1*d2*...,).

        Example:

            >>> from lamina import nn
            >>> nn.Flatten().output_shape((16, 5, 5))
            (400,)
        """
        return (math.prod(input_shape),)


@register_layer
class ReLU(Layer):
    """max(x, 0). After a Dense or Conv2D inside a Sequential the ReLU is fused into that
    layer's kernel; this layer then only keeps y for its backward (relu'(z) = [y > 0]).

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> nn.ReLU().forward(np.array([[-2.0, 3.0]], np.float32))
        array([[0., 3.]], dtype=float32)
    """

    def forward(self, x, training=False):
        """max(x, 0) element-wise: any shape, the same shape and dtype out (float32, or float64
        on the "numpy" backend; TypeError for another dtype).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.ReLU().forward(np.array([-1.0, 0.5], np.float32))
            array([0. , 0.5], dtype=float32)
        """
        self._x = x
        be = self._be()
        return be.relu(x, out=self._buffer("y", x.shape, x.dtype, be))

    # -- the fusion protocol (lamina.nn.fusion) --
    activation_name = "relu"

    def forward_after_fusion(self, y, training=False):
        """The forward when the layer before already applied max(., 0) in its kernel: ``y`` is
        this layer's output; kept for the backward (relu'(z) = [z > 0] = [y > 0]).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> relu = nn.ReLU(); y = relu.forward_after_fusion(np.array([0.0, 2.0], np.float32))
            >>> relu.backward(np.ones(2, np.float32))
            array([0., 1.], dtype=float32)
        """
        self._x = y
        return y

    _forward_fused = forward_after_fusion  # (the earlier name)

    def _backward(self, grad, need_input_grad):
        if not need_input_grad:
            return None
        be = self._be()
        return be.relu_backward(grad, self._x, out=self._buffer("dx", grad.shape, grad.dtype, be))


@register_layer
class LeakyReLU(Layer):
    """x for x > 0, slope * x otherwise (``slope`` 0.01 by default), element-wise, any shape.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> nn.LeakyReLU(0.1).forward(np.array([-2.0, 3.0], np.float32))
        array([-0.2,  3. ], dtype=float32)
    """

    def __init__(self, slope=0.01):
        super().__init__()
        self.slope = float(slope)

    def forward(self, x, training=False):
        """x if x > 0 else slope * x, element-wise: any shape, the same shape and dtype out
        (TypeError for a dtype the backend lacks). Keeps x for backward.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.LeakyReLU().forward(np.zeros((2, 3), np.float32)).shape
            (2, 3)
        """
        self._x = x
        be = self._be()
        return be.leaky_relu(x, self.slope, out=self._buffer("y", x.shape, x.dtype, be))

    def _backward(self, grad, need_input_grad):
        if not need_input_grad:
            return None
        be = self._be()
        return be.leaky_relu_backward(grad, self._x, self.slope,
                                      out=self._buffer("dx", grad.shape, grad.dtype, be))

    def get_config(self):
        """``{"slope": slope}``.

        Example:

            >>> from lamina import nn
            >>> nn.LeakyReLU(0.2).get_config()
            {'slope': 0.2}
        """
        return {"slope": self.slope}


@register_layer
class Sigmoid(Layer):
    """1 / (1 + exp(-x)), element-wise, any shape; its backward uses the stored output
    (sigma' = y (1 - y)).

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> nn.Sigmoid().forward(np.array([-100.0, 0.0, 100.0], np.float32))
        array([0. , 0.5, 1. ], dtype=float32)
    """

    def forward(self, x, training=False):
        """1 / (1 + exp(-x)) element-wise: any shape, the same shape and dtype out (TypeError
        for a dtype the backend lacks). Keeps the output for backward.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Sigmoid().forward(np.array([0.0], np.float32))
            array([0.5], dtype=float32)
        """
        be = self._be()
        self._y = be.sigmoid(x, out=self._buffer("y", x.shape, x.dtype, be))
        return self._y

    def _backward(self, grad, need_input_grad):
        if not need_input_grad:
            return None
        be = self._be()
        return be.sigmoid_backward(grad, self._y, out=self._buffer("dx", grad.shape, grad.dtype, be))


@register_layer
class Tanh(Layer):
    """tanh(x), element-wise, any shape; its backward uses the stored output (1 - y^2).

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> nn.Tanh().forward(np.array([-100.0, 0.0, 100.0], np.float32))
        array([-1.,  0.,  1.], dtype=float32)
    """

    def forward(self, x, training=False):
        """tanh(x) element-wise: any shape, the same shape and dtype out (TypeError for a dtype
        the backend lacks). Keeps the output for backward.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Tanh().forward(np.array([0.0], np.float32))
            array([0.], dtype=float32)
        """
        be = self._be()
        self._y = be.tanh(x, out=self._buffer("y", x.shape, x.dtype, be))
        return self._y

    def _backward(self, grad, need_input_grad):
        if not need_input_grad:
            return None
        be = self._be()
        return be.tanh_backward(grad, self._y, out=self._buffer("dx", grad.shape, grad.dtype, be))


@register_layer
class Softmax(Layer):
    """softmax along ``axis``. For classification feed logits to losses.CrossEntropy instead
    (fused and stable); this layer is for models that need probabilities.

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> nn.Softmax().forward(np.array([[0.0, np.log(3.0)]], np.float32))
        array([[0.25, 0.75]], dtype=float32)
    """

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = int(axis)

    def forward(self, x, training=False):
        """exp(x) / sum(exp(x)) along ``axis`` (shifted by the maximum, so large logits do not
        overflow): any shape, the same shape and dtype out; each slice along ``axis`` sums to 1.
        TypeError for a dtype the backend lacks.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> nn.Softmax().forward(np.zeros((1, 4), np.float32))
            array([[0.25, 0.25, 0.25, 0.25]], dtype=float32)
        """
        be = self._be()
        self._y = be.softmax(x, axis=self.axis, out=self._buffer("y", x.shape, x.dtype, be))
        return self._y

    def _backward(self, grad, need_input_grad):
        if not need_input_grad:
            return None
        be = self._be()  # dx = y * (g - sum(g * y, axis))
        return be.softmax_backward(grad, self._y, axis=self.axis, out=self._buffer("dx", grad.shape, grad.dtype, be))

    def get_config(self):
        """``{"axis": axis}``.

        Example:

            >>> from lamina import nn
            >>> nn.Softmax(axis=1).get_config()
            {'axis': 1}
        """
        return {"axis": self.axis}


def _splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


@register_layer
class Dropout(Layer):
    """Inverted dropout: in training each unit is zeroed with probability p and the kept ones
    are scaled by 1/(1-p); identity at inference. Each training forward draws a new mask from
    the counter-based kernel with seed = mix(seed, call count), so runs are reproducible.
    ValueError for p outside [0, 1).

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> a = nn.Dropout(0.5, seed=3).forward(np.ones(8, np.float32), training=True)
        >>> b = nn.Dropout(0.5, seed=3).forward(np.ones(8, np.float32), training=True)
        >>> bool((a == b).all()), sorted(set(a.tolist())) == [0.0, 2.0]
        (True, True)
    """

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        self.p = float(p)
        if not 0.0 <= self.p < 1.0:
            raise ValueError(f"Dropout p must be in [0, 1), got {p!r}")
        self.seed = int(_init.get_rng().integers(0, 2**62)) if seed is None else int(seed)
        self.calls = 0
        self._mask = None

    def forward(self, x, training=False):
        """Training: x with each element zeroed with probability p and the rest scaled by
        1/(1-p) (same shape and dtype; a fresh mask per call, kept for backward). Otherwise x
        itself, unchanged.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> x = np.ones((2, 1000), np.float32)
            >>> nn.Dropout(0.5).forward(x) is x
            True
            >>> sorted(set(nn.Dropout(0.5, seed=1).forward(x, training=True).ravel().tolist()))
            [0.0, 2.0]
        """
        if not training or self.p == 0.0:
            self._mask = None
            return x
        s = _splitmix64(self.seed + self.calls)
        self.calls += 1
        y, self._mask = self._be().dropout(x, self.p, s)
        return y

    def _backward(self, grad, need_input_grad):
        if not need_input_grad:
            return None
        if self._mask is None:
            return grad
        return self._be().dropout_backward(grad, self._mask, self.p)

    def get_config(self):
        """``p`` and ``seed`` (the seed drawn from lamina's generator when none was given).

        Example:

            >>> from lamina import nn
            >>> nn.Dropout(0.25, seed=7).get_config()
            {'p': 0.25, 'seed': 7}
        """
        return {"p": self.p, "seed": self.seed}

    def get_state(self):
        """``{"calls": n}``, the number of training forwards so far: with the seed it fixes the
        next mask, so a loaded model continues the same sequence of masks.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> d = nn.Dropout(0.5, seed=0); _ = d.forward(np.ones(4, np.float32), training=True)
            >>> d.get_state()
            {'calls': 1}
        """
        return {"calls": self.calls}

    def set_state(self, state):
        """Restores ``get_state()``'s call count (0 when the dict has none).

        Example:

            >>> from lamina import nn
            >>> d = nn.Dropout(0.5, seed=0); d.set_state({"calls": 3}); d.calls
            3
        """
        self.calls = int(state.get("calls", 0))
