"""Small helpers shared by the training workflows (pretrain, transfer, distill, diagnostics).

Everything here goes through the public model API: layers, ``Sequential``, its ``fit`` /
``forward`` / ``backward``, the optimisers and the losses. Nothing calls a kernel.
"""
from __future__ import annotations

import numpy as np

from . import backend as _backend


def layers_of(model_or_layers) -> list:
    """The layers of a Sequential, of a list/tuple of layers, or ``[layer]`` for one layer."""
    from .nn import Layer, Sequential

    if isinstance(model_or_layers, Sequential):
        return list(model_or_layers.layers)
    if isinstance(model_or_layers, Layer):
        return [model_or_layers]
    layers = list(model_or_layers)
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"item {i} is {type(layer).__name__}, not a lamina.nn layer")
    return layers


def as_sequential(model_or_layers):
    """A Sequential over the same layer objects (the model itself when it is one)."""
    from .nn import Sequential

    if isinstance(model_or_layers, Sequential):
        return model_or_layers
    return Sequential(*layers_of(model_or_layers))


def model_backend(model):
    """The backend a model runs on (its pinned one, else the current default)."""
    be = getattr(model, "backend", None)
    return be if be is not None else _backend.current()


def model_dtype(model):
    dt = getattr(model, "dtype", None)
    return np.dtype(dt) if dt is not None else np.dtype(np.float32)


def make_optimizer(optimizer, params, lr, momentum=0.0):
    """An optimiser from an instance (returned as is), a factory ``params -> Optimizer``, or a
    name: "sgd" (with ``momentum``), "adam", "adamw"."""
    from . import optim

    if isinstance(optimizer, optim.Optimizer):
        return optimizer
    if callable(optimizer):
        return optimizer(params)
    name = str(optimizer).lower()
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum)
    return optim.get(name, params, lr=lr)


def predict(model_or_layers, X, batch_size=512):
    """Inference-mode outputs of a layer stack for all of X, computed in batches."""
    model = as_sequential(model_or_layers)
    if len(model) == 0:
        return np.asarray(X)
    return model.predict(X, batch_size=batch_size)


def clone_layer(layer):
    """An independent copy of a layer (or Sequential): same configuration, parameter values,
    trainable flags, learning-rate scales, state and pinned backend; no shared arrays.

    Example:

        >>> from lamina import nn, transfer
        >>> layer = nn.Dense(3, 2).freeze()
        >>> copy = transfer.clone_layer(layer)
        >>> copy, copy.weight is layer.weight, copy.trainable
        (Dense(in_features=3, out_features=2, bias=True), False, False)
    """
    import copy

    from .nn import LAYER_TYPES, Layer, Sequential

    cls = type(layer)
    if cls is Sequential:
        new = Sequential(*[clone_layer(sub) for sub in layer.layers])
        new.backend = layer.backend
        return new
    if LAYER_TYPES.get(cls.__name__) is cls:
        new = cls.from_config(copy.deepcopy(layer.get_config()))
        new.set_state(copy.deepcopy(layer.get_state()))
    else:  # an unregistered layer: copy everything but the workspace (caches are harmless)
        new = copy.copy(layer)
        new.__dict__ = {k: copy.deepcopy(v) for k, v in layer.__dict__.items() if k not in ("_ws", "backend")}
        Layer.__init__(new)  # (a workspace of its own)
        new.backend = layer.backend
    old_params, new_params = layer.parameters(), new.parameters()
    if len(old_params) != len(new_params):
        raise ValueError(f"cannot clone {cls.__name__}: its copy has a different parameter list")
    for po, pn in zip(old_params, new_params):
        pn.astype(po.dtype)
        pn.assign(po.data)
        pn.trainable = po.trainable
        pn.lr_scale = po.lr_scale
    if layer.backend is not None:
        new.to(layer.backend)
    return new


def clone(model_or_layers):
    """A deep copy of a Sequential or layer (or a list of layers -> a list of copies): the
    same configuration, values, trainable flags and backend, no shared arrays (``clone_layer``).

    Example:

        >>> from lamina import models, transfer
        >>> model = models.mlp(); copy = transfer.clone(model)
        >>> copy.parameters()[0] is model.parameters()[0], (copy.parameters()[0].numpy() == model.parameters()[0].numpy()).all()
        (False, True)
    """
    from .nn import Layer

    if isinstance(model_or_layers, Layer):
        return clone_layer(model_or_layers)
    return [clone_layer(layer) for layer in layers_of(model_or_layers)]


def count_parameters(model_or_layers):
    """(trainable, total) scalar parameter counts of a model, layer or list of layers, each
    Parameter counted once.

    Example:

        >>> from lamina import models, transfer
        >>> model = models.lenet5(); _ = model.layers[0].freeze()
        >>> transfer.count_parameters(model)
        (61550, 61706)
    """
    ps = []
    seen = set()
    for layer in layers_of(model_or_layers):
        for p in layer.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                ps.append(p)
    return sum(p.size for p in ps if p.trainable), sum(p.size for p in ps)
