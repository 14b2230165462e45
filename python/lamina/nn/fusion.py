"""Fusion: how a Sequential runs neighbouring layers as one, an optional part of the layer contract.

A layer that implements none of what follows is run as it is (its ``forward`` and its
``_backward``), so every layer works unfused; a layer, built in or custom, that implements a
part of it is fused by any ``Sequential`` it sits in. The plan is made per Sequential from
its own layer list, so ``model[:k]`` (which shares the layers) never fuses across its end.

The protocol (every name optional; the built-in layers that implement each part in brackets):

``activation_name`` (a class attribute: "relu") [ReLU]
    This layer is the element-wise activation of that name. Together with
    ``forward_after_fusion(y, training=False)``: called instead of ``forward`` when the layer
    before it already applied the activation; ``y`` is this layer's output, to be kept for its
    backward and returned. The backward is then the layer's own (for ReLU: the mask
    relu'(z) = [y > 0] reads y as well as z, so results are identical).

``fusable_activations`` (a tuple of activation names) and ``forward_fused(x, training, activation)`` [Dense, Conv2D]
    This layer can apply one of those activations in its own kernel (the GEMM's write-back).
    A layer that has it followed by an activation layer of one of those names is run as
    ``forward_fused(x, training, name)``, then the activation's ``forward_after_fusion``.

``commutes_with_activations`` (a tuple) and ``backward_through_activation(grad, activation_layer)`` [MaxPool2D]
    The backward through the activation layer just before this one and through this layer,
    in the other order: for a max pool after a ReLU, the pooled value is the ReLU output at
    the window's argmax, so the ReLU's mask is applied to the pooled gradient (k*k times
    smaller) before unpooling, with identical results. The activation layer's backward is
    skipped. With it: ``masked_by_activation(grad, activation_layer)`` (the pooled gradient
    times that mask) and ``indices`` (the argmax of each window of the latest forward).

``accepts_pooled_gradient(pool)`` and ``backward_from_pool(grad_pooled, pool)`` [Conv2D]
    When this layer (its activation fused) feeds ``pool`` through the activation, and it is
    the first layer the backward reaches (no input gradient wanted: a network's first layer),
    its weight and bias gradients come from the pooled gradient, already masked, and the
    pool's ``indices`` (the backend's optional ``conv2d_backward_pooled``), without the
    unpooled gradient: equal up to float rounding (sums in another order).
    ``accepts_pooled_gradient`` says whether it can (the backend has the kernel).

``forward_workspace(x, training)`` [Sequential]
    A container's forward without the copy ``forward`` makes of its result (that may be its
    last layer's workspace): a Sequential inside another is run through it.

A subclass that overrides ``forward`` (or ``backward`` / ``_backward``) below the class
that defines one of these methods is not fused by it: fusing it would bypass the override.
"""
from __future__ import annotations

PLAIN, FUSE_ACTIVATION, FUSED_ACTIVATION, NESTED = 0, 1, 2, 3  # how the plan runs a layer forward

_FORWARD = ("forward",)
_BACKWARD = ("forward", "backward", "_backward")
_DEFINED_BELOW: dict = {}  # (class, name, guards) -> whether implements() holds


def _owner(cls, name):
    """The class of cls's MRO whose own namespace defines ``name`` (None: none does)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    return None


def implements(layer, name, guards=_FORWARD) -> bool:
    """Whether ``layer``'s class defines the protocol member ``name`` (not None) no higher in its
    MRO than each method in ``guards`` (an override of those below it would be bypassed).
    Cached per class.

    Example:

        >>> from lamina import nn
        >>> from lamina.nn import fusion
        >>> class MyReLU(nn.ReLU):
        ...     def forward(self, x, training=False):
        ...         return super().forward(x, training)
        >>> fusion.implements(nn.ReLU(), "activation_name"), fusion.implements(MyReLU(), "activation_name")
        (True, False)
    """
    cls = type(layer)
    key = (cls, name, guards)
    known = _DEFINED_BELOW.get(key)
    if known is None:
        owner = _owner(cls, name)
        known = owner is not None and getattr(cls, name) is not None
        if known:
            mro = cls.__mro__
            for guard in guards:
                g = _owner(cls, guard)
                if g is not None and mro.index(g) < mro.index(owner):
                    known = False
        _DEFINED_BELOW[key] = known
    return known


def _activation(layer):
    """The activation ``layer`` is, where it implements that part of the protocol, else None."""
    if implements(layer, "activation_name", _BACKWARD) and implements(layer, "forward_after_fusion", _BACKWARD):
        return layer.activation_name
    return None


def _fuses(layer, activation):
    return (activation is not None and implements(layer, "forward_fused")
            and activation in getattr(layer, "fusable_activations", ()))


class Plan:
    """How one Sequential runs its layers: ``steps`` [(layer, mode, activation)] for the
    forward (mode PLAIN, FUSE_ACTIVATION, FUSED_ACTIVATION or NESTED; the activation name
    for FUSE_ACTIVATION), ``through_activation`` the indices i of layers whose backward also
    covers the activation layer i - 1 (``backward_through_activation``).

    Example:

        >>> from lamina import models
        >>> from lamina.nn import fusion
        >>> plan = fusion.Plan(models.lenet5().layers)
        >>> [mode for _, mode, _ in plan.steps][:3], sorted(plan.through_activation)
        ([1, 2, 0], [2, 5])
    """

    def __init__(self, layers):
        self.layers = list(layers)
        self.steps, n = [], len(self.layers)
        acts = [_activation(layer) for layer in self.layers]
        for i, layer in enumerate(self.layers):
            nxt = acts[i + 1] if i + 1 < n else None
            if implements(layer, "forward_workspace"):
                self.steps.append((layer, NESTED, None))
            elif _fuses(layer, nxt):
                self.steps.append((layer, FUSE_ACTIVATION, nxt))
            elif acts[i] is not None and i > 0 and self.steps[i - 1][1] == FUSE_ACTIVATION:
                self.steps.append((layer, FUSED_ACTIVATION, None))
            else:
                self.steps.append((layer, PLAIN, None))
        self.through_activation = frozenset(
            i for i in range(1, n) if acts[i - 1] is not None and implements(self.layers[i], "backward_through_activation", _BACKWARD)
            and acts[i - 1] in getattr(self.layers[i], "commutes_with_activations", ()))

    def forward(self, x, training):
        """Every layer's forward in order, fused where the plan says; returns the last layer's
        output (its workspace).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> from lamina.nn import fusion
            >>> fusion.Plan([nn.Dense(3, 2), nn.ReLU()]).forward(np.ones((4, 3), np.float32), False).shape
            (4, 2)
        """
        for layer, mode, act in self.steps:
            if mode == PLAIN:
                x = layer.forward(x, training)
            elif mode == FUSE_ACTIVATION:
                x = layer.forward_fused(x, training, act)
            elif mode == FUSED_ACTIVATION:
                x = layer.forward_after_fusion(x, training)
            else:
                x = layer.forward_workspace(x, training)
        return x

    def from_pool(self, i, first):
        """Whether layers i - 2 .. i (a layer with its activation fused, the activation, a layer
        that commutes with it), the first of them ``first``, take the first one's parameter
        gradients from the pooled gradient (``backward_from_pool``).

        Example:

            >>> from lamina import models
            >>> from lamina.nn import fusion
            >>> plan = fusion.Plan(models.lenet5().layers)
            >>> plan.from_pool(2, 0), plan.from_pool(5, 3)
            (True, True)
        """
        if i - 2 != first or i not in self.through_activation or self.steps[first][1] != FUSE_ACTIVATION:
            return False
        layer = self.layers[first]
        return implements(layer, "backward_from_pool", _BACKWARD) and layer.accepts_pooled_gradient(self.layers[i])

    def backward(self, grad, need_input_grad, first):
        """dC/d(output) through the layers i >= ``first`` in reverse (those before it need no
        backward); returns dC/d(input), or None when ``need_input_grad`` is False.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> from lamina.nn import fusion
            >>> plan = fusion.Plan([nn.Dense(3, 2), nn.ReLU()])
            >>> y = plan.forward(np.ones((4, 3), np.float32), True)
            >>> plan.backward(np.ones_like(y), True, 0).shape
            (4, 3)
        """
        layers, through = self.layers, self.through_activation
        i = len(layers) - 1
        while i >= first:
            if not need_input_grad and i - 2 == first and self.from_pool(i, first):
                layers[first].backward_from_pool(layers[i].masked_by_activation(grad, layers[i - 1]), layers[i])
                i -= 3
            elif i in through and i - 1 >= first:
                grad = layers[i].backward_through_activation(grad, layers[i - 1])
                i -= 2
            else:
                grad = layers[i]._backward(grad, need_input_grad or i > first)
                i -= 1
        return grad if need_input_grad else None
