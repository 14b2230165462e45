"""Export a lamina model to ONNX, for ONNX Runtime, TensorRT, a browser or a phone.

    lamina.onnx.export(model, "model.onnx", input_shape=(1, 1, 28, 28))
    lamina export model.safetensors model.onnx --input-shape 1,1,28,28      (the command line)

The graph has one input ``"input"`` of ``input_shape`` whose first (batch) dimension is dynamic
(``"batch"``), and one output ``"output"``: what ``model.predict`` returns, in the model's dtype
(float32, or float64 after ``astype``). Every built-in layer maps to standard ONNX operators:

    Dense            Gemm (2-D input) or MatMul + Add (more axes)
    Conv2D           Conv (stride, padding, dilation)
    MaxPool2D        MaxPool (padding counts as -inf)
    AvgPool2D        AveragePool, count_include_pad=1 (padding counts as zeros in the divisor)
    GlobalAvgPool2D  GlobalAveragePool + Flatten
    Flatten          Flatten(axis=1)
    ReLU, LeakyReLU, Sigmoid, Tanh, Softmax    Relu, LeakyRelu, Sigmoid, Tanh, Softmax(axis)
    Dropout          Identity (inference)
    BatchNorm1D/2D   BatchNormalization with the running statistics (inference); without
                     running statistics (track_running_stats=False) the batch's, from ReduceMean
    RNN, LSTM, GRU   RNN, LSTM, GRU (time-major inside, so Transpose around them; the gates
                     reordered from PyTorch's to ONNX's; GRU with linear_before_reset=1)
    Sequential       its layers, in order (models nest)

A layer of one's own exports through its method ``to_onnx(ctx, x)``, or a function registered
for its class with ``register_converter``: it receives an ``ExportContext`` and the name of its
input tensor and returns the name of its output tensor (see the how-to "Export to ONNX"). A
layer without a mapping is a clear ``NotImplementedError`` naming it. The ``onnx`` package
(``pip install "lamina[onnx]"``) is imported only by ``export``.
"""
from __future__ import annotations

import os

import numpy as np

#: The opset ``export`` writes unless told otherwise: supported by ONNX Runtime >= 1.13,
#: TensorRT 8.6+ and onnx >= 1.12, and enough for every layer lamina has.
DEFAULT_OPSET = 17
#: The oldest opset ``export`` can write (Softmax over one axis and Squeeze's axes as an input
#: arrived in 13).
MIN_OPSET = 13

_CONVERTERS: dict = {}


def register_converter(layer_cls):
    """Decorator: ``fn(layer, ctx, x) -> output name`` becomes the ONNX mapping of ``layer_cls``
    (exactly that class: a subclass, whose forward may differ, needs its own). It takes
    precedence over the built-in mapping and over the layer's ``to_onnx`` method. Returns fn.

    Example:

        >>> import numpy as np
        >>> from lamina import nn, onnx as lonnx
        >>> class Double(nn.Layer):
        ...     def forward(self, x, training=False):
        ...         return self._be().scale(x, 2.0)
        >>> @lonnx.register_converter(Double)
        ... def _double(layer, ctx, x):
        ...     two = ctx.add_initializer("two", np.array(2.0, ctx.dtype))
        ...     return ctx.add_node("Mul", [x, two])
        >>> lonnx.converter_for(Double()) is _double
        True
        >>> lonnx.unregister_converter(Double)
    """
    def decorate(fn):
        _CONVERTERS[layer_cls] = fn
        return fn

    return decorate


def unregister_converter(layer_cls):
    """Removes the mapping registered for ``layer_cls`` (nothing happens when there is none).

    Example:

        >>> from lamina import nn, onnx as lonnx
        >>> lonnx.unregister_converter(nn.Layer)
    """
    _CONVERTERS.pop(layer_cls, None)


def converter_for(layer):
    """The function ``fn(layer, ctx, x)`` that maps ``layer`` to ONNX, or None: one registered
    for its class, else its own ``to_onnx`` method, else the built-in one for exactly its class.

    Example:

        >>> from lamina import nn, onnx as lonnx
        >>> lonnx.converter_for(nn.Dense(3, 2)).__name__, lonnx.converter_for(nn.Layer())
        ('_dense', None)
    """
    fn = _CONVERTERS.get(type(layer))
    if fn is not None:
        return fn
    own = getattr(type(layer), "to_onnx", None)
    if callable(own):
        return lambda layer, ctx, x: layer.to_onnx(ctx, x)
    return _BUILTIN.get(type(layer))


class ExportContext:
    """The graph being built, as a converter sees it.

    ``opset`` (int) and ``dtype`` (the model's NumPy dtype, float32 unless ``astype``) say what
    to write; ``add_node`` adds an operator, ``add_initializer`` a constant tensor,
    ``shape(name)`` is a tensor's shape without the batch axis (a tuple, as
    ``Layer.output_shape`` gives). Names are made unique within the graph.

    Example:

        >>> import numpy as np
        >>> from lamina import onnx as lonnx
        >>> ctx = lonnx.ExportContext(opset=17, dtype=np.float32)
        >>> w = ctx.add_initializer("w", np.ones((2, 3), np.float32))
        >>> ctx.add_node("MatMul", ["input", w]), ctx.add_node("Relu", ["MatMul_0"], name="act")
        ('MatMul_0', 'act_0')
    """

    def __init__(self, opset=DEFAULT_OPSET, dtype=np.float32):
        self.opset = int(opset)
        self.dtype = np.dtype(dtype)
        self.nodes, self.initializers = [], []
        self._shapes = {}
        self._used = set()
        self.layer_path = ""

    def fresh(self, hint):
        """A tensor or node name starting with ``hint`` that the graph does not use yet.

        Example:

            >>> from lamina import onnx as lonnx
            >>> ctx = lonnx.ExportContext()
            >>> ctx.fresh("x"), ctx.fresh("x")
            ('x_0', 'x_1')
        """
        i = 0
        while f"{hint}_{i}" in self._used:
            i += 1
        name = f"{hint}_{i}"
        self._used.add(name)
        return name

    def add_initializer(self, hint, array):
        """Adds ``array`` (NumPy) as a constant of the graph; returns its name (``hint`` made
        unique, prefixed with the layer's position, e.g. ``"3.weight_0"``).

        Example:

            >>> import numpy as np
            >>> from lamina import onnx as lonnx
            >>> lonnx.ExportContext().add_initializer("bias", np.zeros(4, np.float32))
            'bias_0'
        """
        from onnx import numpy_helper

        name = self.fresh(f"{self.layer_path}{hint}")
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def add_node(self, op_type, inputs, outputs=1, name=None, **attributes):
        """Adds the operator ``op_type`` on the tensors ``inputs`` (names; "" for an omitted
        optional input) with ``attributes``; ``outputs`` is a count or a list of names ("" for
        an unused optional output). Returns the output name (one output) or the list of names.

        Example:

            >>> from lamina import onnx as lonnx
            >>> ctx = lonnx.ExportContext()
            >>> ctx.add_node("LeakyRelu", ["input"], alpha=0.1)
            'LeakyRelu_0'
            >>> ctx.add_node("Split", ["input"], outputs=2, axis=1)
            ['Split_0', 'Split_1']
        """
        from onnx import helper

        if isinstance(outputs, int):
            outs = [self.fresh(f"{self.layer_path}{name or op_type}") for _ in range(outputs)]
        else:
            outs = list(outputs)
        node_name = self.fresh(f"{self.layer_path}{op_type}_node")
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=node_name, **attributes))
        return outs[0] if isinstance(outputs, int) and outputs == 1 else outs

    def add_ints(self, hint, values):
        """An int64 constant (axes, shapes, perms as ONNX wants them as inputs); returns its name.

        Example:

            >>> from lamina import onnx as lonnx
            >>> lonnx.ExportContext().add_ints("axes", [0])
            'axes_0'
        """
        return self.add_initializer(hint, np.asarray(values, np.int64))

    def shape(self, name):
        """The shape of tensor ``name`` without the batch axis (a tuple of ints).

        Example:

            >>> from lamina import onnx as lonnx
            >>> ctx = lonnx.ExportContext(); ctx.set_shape("input", (1, 28, 28)); ctx.shape("input")
            (1, 28, 28)
        """
        return self._shapes[name]

    def set_shape(self, name, shape):
        """Records the shape of tensor ``name`` without the batch axis (the export does this for
        every layer's output from its ``output_shape``).

        Example:

            >>> from lamina import onnx as lonnx
            >>> ctx = lonnx.ExportContext(); ctx.set_shape("y", [10]); ctx.shape("y")
            (10,)
        """
        self._shapes[name] = tuple(int(s) for s in shape)

    def convert(self, layer, x, path=""):
        """Maps ``layer`` (a lamina layer) applied to tensor ``x``; returns its output's name
        (what a container's converter calls for each of its layers). ``path`` names the layer
        in errors and in the names of its tensors ("3." for a model's fourth layer).
        NotImplementedError naming the layer when it has no mapping.

        Example:

            >>> from lamina import nn, onnx as lonnx
            >>> ctx = lonnx.ExportContext(); ctx.set_shape("input", (4,))
            >>> y = ctx.convert(nn.ReLU(), "input", "0."); y, ctx.shape(y)
            ('0.Relu_0', (4,))
        """
        fn = converter_for(layer)
        where = f"layer {path.rstrip('.')} ({type(layer).__name__})" if path else type(layer).__name__
        if fn is None:
            raise NotImplementedError(
                f"lamina.onnx.export: {where} has no ONNX mapping; give {type(layer).__name__} a method "
                f"to_onnx(ctx, x) or register one with lamina.onnx.register_converter({type(layer).__name__})")
        outer = self.layer_path
        self.layer_path = path
        try:
            y = fn(layer, self, x)
        finally:
            self.layer_path = outer
        if not isinstance(y, str):
            raise TypeError(f"lamina.onnx.export: the ONNX mapping of {where} returned {type(y).__name__}, "
                            "not the name of its output tensor")
        if y not in self._shapes:
            self.set_shape(y, layer.output_shape(self.shape(x)))
        return y


# -- the built-in mappings ---------------------------------------------------------------------

def _param(ctx, p, hint):
    return ctx.add_initializer(hint, p.numpy().astype(ctx.dtype))


def _dense(layer, ctx, x):
    w = layer.weight.numpy().astype(ctx.dtype)  # (out, in)
    if len(ctx.shape(x)) == 1:  # x (N, in): one Gemm, y = x W^T + b
        inputs = [x, ctx.add_initializer("weight", w)]
        if layer.bias is not None:
            inputs.append(_param(ctx, layer.bias, "bias"))
        return ctx.add_node("Gemm", inputs, transB=1)
    y = ctx.add_node("MatMul", [x, ctx.add_initializer("weight_t", np.ascontiguousarray(w.T))])  # (..., in) @ (in, out)
    if layer.bias is not None:
        y = ctx.add_node("Add", [y, _param(ctx, layer.bias, "bias")])
    return y


def _conv2d(layer, ctx, x):
    inputs = [x, _param(ctx, layer.weight, "weight")]
    if layer.bias is not None:
        inputs.append(_param(ctx, layer.bias, "bias"))
    ph, pw = layer.padding
    return ctx.add_node("Conv", inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                        pads=[ph, pw, ph, pw], dilations=list(layer.dilation), group=1)


def _pool_attributes(layer):
    ph, pw = layer.padding
    return {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride), "pads": [ph, pw, ph, pw]}


def _max_pool2d(layer, ctx, x):
    return ctx.add_node("MaxPool", [x], **_pool_attributes(layer))


def _avg_pool2d(layer, ctx, x):
    return ctx.add_node("AveragePool", [x], count_include_pad=1, **_pool_attributes(layer))


def _global_avg_pool2d(layer, ctx, x):
    return ctx.add_node("Flatten", [ctx.add_node("GlobalAveragePool", [x])], axis=1)  # (N,C,1,1) -> (N,C)


def _flatten(layer, ctx, x):
    return ctx.add_node("Flatten", [x], axis=1)


def _elementwise(op, **attrs):
    def convert(layer, ctx, x):
        return ctx.add_node(op, [x], **{k: v(layer) for k, v in attrs.items()})

    convert.__name__ = f"_{op.lower()}"
    return convert


def _dropout(layer, ctx, x):
    return ctx.add_node("Identity", [x])  # inference: dropout does nothing


def _reduce_mean(ctx, x, axes):
    if ctx.opset >= 18:  # the axes became an input in opset 18
        return ctx.add_node("ReduceMean", [x, ctx.add_ints("axes", axes)], keepdims=1)
    return ctx.add_node("ReduceMean", [x], axes=list(axes), keepdims=1)


def _batch_norm(layer, ctx, x):
    C = layer.num_features
    scale = layer.weight.numpy() if layer.weight is not None else np.ones(C)
    bias = layer.bias.numpy() if layer.bias is not None else np.zeros(C)
    if layer.track_running_stats:  # inference: y = (x - running_mean) / sqrt(running_var + eps) * w + b
        return ctx.add_node("BatchNormalization",
                            [x, ctx.add_initializer("weight", scale.astype(ctx.dtype)),
                             ctx.add_initializer("bias", bias.astype(ctx.dtype)),
                             ctx.add_initializer("running_mean", layer.running_mean.numpy().astype(ctx.dtype)),
                             ctx.add_initializer("running_var", layer.running_var.numpy().astype(ctx.dtype))],
                            epsilon=layer.eps)
    # No running statistics: the batch's, over N and every position, as the layer computes them
    # at inference too (the biased variance).
    rank = len(ctx.shape(x)) + 1
    axes = [0] + list(range(2, rank))
    stat_shape = (1, C) + (1,) * (rank - 2)  # broadcast over (N, C, ...)
    centred = ctx.add_node("Sub", [x, _reduce_mean(ctx, x, axes)])
    var = _reduce_mean(ctx, ctx.add_node("Mul", [centred, centred]), axes)
    eps = ctx.add_initializer("eps", np.array(layer.eps, ctx.dtype))
    y = ctx.add_node("Div", [centred, ctx.add_node("Sqrt", [ctx.add_node("Add", [var, eps])])])
    y = ctx.add_node("Mul", [y, ctx.add_initializer("weight", scale.astype(ctx.dtype).reshape(stat_shape))])
    return ctx.add_node("Add", [y, ctx.add_initializer("bias", bias.astype(ctx.dtype).reshape(stat_shape))])


def _recurrent(op, layer, ctx, x, W, R, B, **attrs):
    """x (N, T, F) batch first -> the ONNX op on (T, N, F) -> the layer's output: h_T (N, H), or
    every h_t (N, T, H) with return_sequences. W (1, G H, F), R (1, G H, H), B (1, 2 G H) or None."""
    H = layer.hidden_size
    xt = ctx.add_node("Transpose", [x], perm=[1, 0, 2])
    inputs = [xt, ctx.add_initializer("W", W.astype(ctx.dtype)), ctx.add_initializer("R", R.astype(ctx.dtype))]
    if B is not None:
        inputs.append(ctx.add_initializer("B", B.astype(ctx.dtype)))
    n_out = 3 if op == "LSTM" else 2
    outs = ctx.add_node(op, inputs, outputs=n_out, hidden_size=H, **attrs)  # Y (T, 1, N, H), Y_h (1, N, H)
    if layer.return_sequences:
        y = ctx.add_node("Squeeze", [outs[0], ctx.add_ints("axes", [1])])  # (T, N, H)
        return ctx.add_node("Transpose", [y], perm=[1, 0, 2])
    return ctx.add_node("Squeeze", [outs[1], ctx.add_ints("axes", [0])])  # (N, H)


def _rnn(layer, ctx, x):
    H = layer.hidden_size
    B = None
    if layer.bias is not None:  # ONNX adds Wb and Rb: the whole bias in Wb
        B = np.concatenate([layer.bias.numpy(), np.zeros(H, layer.bias.dtype)])[None]
    return _recurrent("RNN", layer, ctx, x, layer.weight_ih.numpy()[None], layer.weight_hh.numpy()[None], B,
                      activations=["Relu" if layer.nonlinearity == "relu" else "Tanh"])


def _gated(layer, order):
    """(W, R, B) of a gated layer with PyTorch's gate blocks put in ONNX's ``order``."""
    G, H = len(order), layer.hidden_size

    def blocks(a):  # (G H, ...) -> the same with the gate blocks reordered
        return a.reshape((G, H) + a.shape[1:])[order].reshape(a.shape)

    W = blocks(layer.weight_ih.numpy())[None]
    R = blocks(layer.weight_hh.numpy())[None]
    B = None
    if layer.bias_ih is not None:
        B = np.concatenate([blocks(layer.bias_ih.numpy()), blocks(layer.bias_hh.numpy())])[None]
    return W, R, B


def _lstm(layer, ctx, x):
    # PyTorch's gates (i, f, g, o) -> ONNX's (i, o, f, c)
    return _recurrent("LSTM", layer, ctx, x, *_gated(layer, [0, 3, 1, 2]))


def _gru(layer, ctx, x):
    # PyTorch's gates (r, z, n) -> ONNX's (z, r, h); r applied to (W_hn h + b_hn): linear_before_reset
    return _recurrent("GRU", layer, ctx, x, *_gated(layer, [1, 0, 2]), linear_before_reset=1)


def _sequential(model, ctx, x):
    prefix = ctx.layer_path
    for i, layer in enumerate(model):
        x = ctx.convert(layer, x, f"{prefix}{i}.")
    return x


def _builtin_converters():
    from . import nn

    table = {
        nn.Dense: _dense, nn.Conv2D: _conv2d, nn.MaxPool2D: _max_pool2d, nn.AvgPool2D: _avg_pool2d,
        nn.GlobalAvgPool2D: _global_avg_pool2d, nn.Flatten: _flatten, nn.Dropout: _dropout,
        nn.ReLU: _elementwise("Relu"), nn.LeakyReLU: _elementwise("LeakyRelu", alpha=lambda l: l.slope),
        nn.Sigmoid: _elementwise("Sigmoid"), nn.Tanh: _elementwise("Tanh"),
        nn.Softmax: _elementwise("Softmax", axis=lambda l: l.axis),
        nn.BatchNorm1D: _batch_norm, nn.BatchNorm2D: _batch_norm,
        nn.RNN: _rnn, nn.LSTM: _lstm, nn.GRU: _gru, nn.Sequential: _sequential,
    }
    return table


class _Builtin(dict):
    """The built-in table, built on first use (lamina.nn is imported only then)."""

    def get(self, key, default=None):
        if not self:
            self.update(_builtin_converters())
        return super().get(key, default)


_BUILTIN = _Builtin()


# -- the export --------------------------------------------------------------------------------

def _check_input_shape(input_shape):
    try:
        shape = tuple(int(s) for s in input_shape)
        ok = len(shape) >= 2 and all(s >= 1 and s == t for s, t in zip(shape, input_shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"input_shape must be the input's shape with the batch axis first, (N, ...) with at "
                         f"least two positive ints, e.g. (1, 1, 28, 28); got {input_shape!r}")
    return shape


def to_model_proto(model, input_shape, opset=None):
    """The ONNX ``ModelProto`` of ``model`` (a Sequential or any layer) for inputs of
    ``input_shape`` (see ``export``), without writing it: checked by ``onnx.checker``.

    Example:

        >>> from lamina import models, onnx as lonnx
        >>> proto = lonnx.to_model_proto(models.mlp(), (1, 784))
        >>> [n.op_type for n in proto.graph.node]
        ['Flatten', 'Gemm', 'Relu', 'Gemm']
    """
    import onnx
    from onnx import TensorProto, helper

    from . import __version__
    from .nn import Layer, Sequential

    if not isinstance(model, Layer):
        raise TypeError(f"lamina.onnx.export: model must be a lamina.nn layer or Sequential, got "
                        f"{type(model).__name__}")
    shape = _check_input_shape(input_shape)
    newest = onnx.defs.onnx_opset_version()
    opset = DEFAULT_OPSET if opset is None else opset
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an int from {MIN_OPSET} to {newest} (the newest this onnx knows), "
                         f"got {opset!r}")
    seq = model if isinstance(model, Sequential) else Sequential(model)
    dtype = np.dtype(seq.dtype or np.float32)
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}.get(dtype)
    if elem is None:
        raise ValueError(f"lamina.onnx.export: the model's dtype {dtype} has no ONNX mapping (float32, float64)")
    # Two samples through lamina itself (two: batch statistics need more than one): an input
    # the model cannot take fails here with the layer's own message, and the output shape is
    # known for certain.
    try:
        expected = seq.predict(np.zeros((2,) + shape[1:], dtype)).shape[1:]
    except (ValueError, TypeError) as e:
        raise ValueError(f"lamina.onnx.export: the model does not take inputs of shape {shape} (a probe batch of "
                         f"2 such inputs fails in lamina: {e})") from None
    ctx = ExportContext(opset=int(opset), dtype=dtype)
    ctx._used.update(("input", "output"))
    ctx.set_shape("input", shape[1:])
    y = ctx.convert(model, "input") if not isinstance(model, Sequential) else _sequential(model, ctx, "input")
    if tuple(ctx.shape(y)) != tuple(expected):
        raise ValueError(f"lamina.onnx.export: the layers' output_shape gives {ctx.shape(y)}, lamina's forward "
                         f"{tuple(expected)}: a layer's output_shape disagrees with its forward")
    last = ctx.nodes[-1] if ctx.nodes else None
    if last is not None and y in last.output and not any(y in n.input for n in ctx.nodes):
        last.output[list(last.output).index(y)] = "output"  # the last operator writes the graph's output
    else:
        ctx.add_node("Identity", [y], outputs=["output"])
    graph = helper.make_graph(
        ctx.nodes, "lamina",
        [helper.make_tensor_value_info("input", elem, ["batch", *shape[1:]])],
        [helper.make_tensor_value_info("output", elem, ["batch", *expected])],
        initializer=ctx.initializers)
    opsets = [helper.make_opsetid("", int(opset))]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="lamina", producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model, path, input_shape, opset=None):
    """Writes ``model`` (a Sequential or any layer) as an ONNX file at ``path`` (atomically:
    a file of another name is written and renamed over ``path``); returns ``path``.

    ``input_shape``: the input's shape with the batch axis first, e.g. (1, 1, 28, 28); the
    batch axis is dynamic in the file ("batch"), the others are fixed. ``opset``: the ONNX
    opset, ``DEFAULT_OPSET`` (17) when None, from 13 to the newest the installed onnx knows.
    The file passes ``onnx.checker.check_model(full_check=True)``; its output is
    ``model.predict``'s. Needs the ``onnx`` package (``lamina[onnx]``): ImportError saying so.
    ValueError for a bad ``input_shape`` or ``opset`` or an input the model cannot take;
    NotImplementedError naming a layer without an ONNX mapping.

    Example:

        >>> import os, tempfile
        >>> from lamina import models, onnx as lonnx
        >>> path = lonnx.export(models.lenet5(), os.path.join(tempfile.mkdtemp(), "lenet5.onnx"), (1, 1, 28, 28))
        >>> os.path.getsize(path) > 61706 * 4
        True
    """
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise ImportError(f"lamina.onnx.export needs the onnx package: pip install \"lamina[onnx]\" ({e})") from None
    data = to_model_proto(model, input_shape, opset).SerializeToString()
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


__all__ = ["export", "to_model_proto", "register_converter", "unregister_converter", "converter_for",
           "ExportContext", "DEFAULT_OPSET", "MIN_OPSET"]
