"""Transfer learning and fine-tuning (Oquab et al. 2014, "Learning and transferring mid-level
image representations").

The recipe: train a network on a source task; copy its first ``n`` layers into a new network,
freeze them (``Parameter.trainable = False``: every optimiser skips them and ``Sequential``
does no backward work below the first trainable layer), append new adaptation layers (e.g.
Dense-ReLU-Dense, the paper's FCa/FCb) and train only those on the target task. Optionally
``fine_tune`` afterwards: unfreeze the transferred layers with a smaller learning rate of their
own (``Parameter.lr_scale``, which every lamina optimiser multiplies into its rate).

    source = ...trained Sequential...
    model = transfer(source, keep=6, head=[Dense(256, 64), ReLU(), Dense(64, 5)])
    model.fit(X_few, y_few, optimizer=SGD(model.parameters(), lr=0.05))      # head only
    fine_tune(model, lr_scale=0.1)                                           # all, 0.1x below
    model.fit(X_few, y_few, optimizer=SGD(model.parameters(), lr=0.05))
"""
from __future__ import annotations

from ._workflows import clone, clone_layer, count_parameters, layers_of  # noqa: F401  (re-exported)


def _select(model_or_layers, upto):
    layers = layers_of(model_or_layers)
    if upto is None:
        return layers
    upto = int(upto)
    if upto < 0:
        upto += len(layers)
    if not 0 <= upto <= len(layers):
        raise ValueError(f"upto={upto} is out of range for {len(layers)} layers")
    return layers[:upto]


def freeze(model_or_layers, upto=None):
    """Marks every parameter of the first ``upto`` layers (all layers when None; a negative
    ``upto`` counts from the end, like a slice) as not trainable. Accepts a Sequential, a list
    of layers or one layer; returns it.

    Example:

        >>> from lamina import models, transfer
        >>> model = transfer.freeze(models.lenet5(), upto=3)   # the first conv block
        >>> transfer.count_parameters(model)
        (61550, 61706)
    """
    for layer in _select(model_or_layers, upto):
        for p in layer.parameters():
            p.trainable = False
    return model_or_layers


def unfreeze(model_or_layers, upto=None, lr_scale=None):
    """Makes the parameters of the first ``upto`` layers (all when None) trainable again, and
    sets their learning-rate scale when ``lr_scale`` is given. Returns the argument.

    Example:

        >>> from lamina import models, transfer
        >>> model = transfer.unfreeze(transfer.freeze(models.mlp()), upto=2, lr_scale=0.5)
        >>> transfer.count_parameters(model), model.layers[1].weight.lr_scale
        ((78500, 79510), 0.5)
    """
    for layer in _select(model_or_layers, upto):
        for p in layer.parameters():
            p.trainable = True
            if lr_scale is not None:
                p.lr_scale = float(lr_scale)
    return model_or_layers


def transfer(source_model, keep, head=(), freeze=True, copy=True):
    """A new Sequential: the first ``keep`` layers of ``source_model`` (copied, so training the
    new model never changes the source, unless ``copy=False``), frozen when ``freeze``, followed
    by the ``head`` layers. The returned model remembers ``transferred = keep`` for
    ``fine_tune``.

    Example (LeNet-5's convolutional part under a new two-class head):

        >>> from lamina import models, nn, transfer
        >>> model = transfer.transfer(models.lenet5(), keep=6, head=[nn.Flatten(), nn.Dense(400, 2)])
        >>> len(model), model.transferred, transfer.count_parameters(model)
        (8, 6, (802, 3374))
    """
    from .nn import Sequential

    layers = layers_of(source_model)
    keep = int(keep)
    if not 0 <= keep <= len(layers):
        raise ValueError(f"keep={keep} is out of range: the source model has {len(layers)} layers")
    kept = [clone_layer(layer) if copy else layer for layer in layers[:keep]]
    if freeze:
        for layer in kept:
            for p in layer.parameters():
                p.trainable = False
    model = Sequential(*kept, *layers_of(list(head)))
    model.transferred = keep
    return model


def fine_tune(model, lr_scale=0.1, layers=None):
    """Unfreezes layers of a transferred model and gives their parameters the learning-rate
    scale ``lr_scale`` (their rate becomes ``lr * lr_scale`` in every optimiser; the other
    layers keep theirs). ``layers``: None for the transferred ones (``model.transferred`` set by
    ``transfer``; otherwise every layer with a frozen parameter), an int n for the first n
    layers, or an iterable of layer indices or layer objects. Returns the model.

    Example:

        >>> from lamina import models, nn, transfer
        >>> model = transfer.transfer(models.lenet5(), keep=6, head=[nn.Flatten(), nn.Dense(400, 2)])
        >>> model = transfer.fine_tune(model, lr_scale=0.1)
        >>> transfer.count_parameters(model), model.layers[0].weight.lr_scale
        ((3374, 3374), 0.1)
    """
    all_layers = layers_of(model)
    if layers is None:
        n = getattr(model, "transferred", None)
        if n is not None:
            chosen = all_layers[: int(n)]
        else:
            chosen = [layer for layer in all_layers if any(not p.trainable for p in layer.parameters())]
    elif isinstance(layers, int):
        chosen = _select(all_layers, layers)
    else:
        chosen = []
        for item in layers:
            if isinstance(item, int):
                chosen.append(all_layers[item])
            elif any(item is layer for layer in all_layers):
                chosen.append(item)
            else:
                raise ValueError(f"{item!r} is not a layer of this model")
    for layer in chosen:
        for p in layer.parameters():
            p.trainable = True
            p.lr_scale = float(lr_scale)
    return model


__all__ = ["freeze", "unfreeze", "transfer", "fine_tune", "clone", "clone_layer", "count_parameters"]
