"""Sequential: a stack of layers with the training loop.

Forward runs the layers in order; backward runs them in reverse, each taking dC/d(output) and
returning dC/d(input). A Dense or Conv2D followed by a ReLU is fused into one kernel call
(ReLU in the GEMM's write-back): the ReLU then only keeps y = relu(z), from which its backward
reads the mask (z > 0 exactly where y > 0), so results are identical to the unfused chain.
A ReLU followed by a MaxPool2D is differentiated in the other order: the ReLU mask is applied
to the pooled gradient (the pooled value is the ReLU output at the window's argmax, so the
mask is the same) before unpooling, on a k*k times smaller array, with identical results.
When such a ReLU's Dense-or-Conv2D is a Conv2D, and the first layer the backward reaches
(no dC/d(input) wanted: a network's first layer), its weight and bias gradients come from the
pooled gradient and the pool's indices (backend.OPTIONAL_KERNELS: conv2d_backward_pooled),
without the unpooled gradient: equal up to float rounding (sums in another order).
These rewrites are decided per Sequential, so ``model[:k]`` (which shares the layers) never
applies them across its end.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import operator
import sys
import time

import numpy as np

from .. import backend as _backend
from ..losses import Loss as _Loss
from .batches import Batches
from .layers import LAYER_TYPES, Conv2D, Dense, Layer, MaxPool2D, ReLU, register_layer
from .parameter import Parameter

_PLAIN, _FUSE_RELU, _FUSED_RELU, _NESTED = 0, 1, 2, 3

METRICS = ("accuracy", "acc")  # the names compile(metrics=...) accepts


class NonFiniteLossError(FloatingPointError):
    """Training hit a NaN or infinite loss: raised by ``fit`` and ``train_step`` after the
    parameters are put back as they were before the offending step. ``epoch`` and ``batch``
    (1-based; None from ``train_step``) say where, ``loss`` is the value. A FloatingPointError.

    Example:

        >>> from lamina import nn
        >>> e = nn.NonFiniteLossError("non-finite loss (nan)", 2, 17, float("nan"))
        >>> (e.epoch, e.batch), isinstance(e, FloatingPointError)
        ((2, 17), True)
    """

    def __init__(self, message, epoch, batch, loss):
        super().__init__(message)
        self.epoch, self.batch, self.loss = epoch, batch, loss


class History(dict):
    """Per-epoch metrics of ``fit``: lists under "loss", "accuracy", "time", "images_per_s",
    "lr" and, with validation data, "val_loss", "val_accuracy"; ``epochs`` holds their numbers.
    A dict of lists; ``history`` returns itself (Keras's ``h.history["loss"]``).

    Example:

        >>> import numpy as np
        >>> from lamina import nn
        >>> model = nn.Sequential(nn.Dense(4, 2))
        >>> h = model.fit(np.ones((8, 4), np.float32), np.zeros(8, np.int64), epochs=3, verbose=0)
        >>> len(h["loss"]), h.history is h
        (3, True)
    """

    @property
    def history(self):  # Keras spelling
        """The History itself, so Keras's ``h.history["loss"]`` works as ``h["loss"]``.

        Example:

            >>> from lamina import nn
            >>> h = nn.History(loss=[0.5, 0.3])
            >>> h.history["loss"]
            [0.5, 0.3]
        """
        return self

    def _append(self, logs):
        for k, v in logs.items():
            self.setdefault(k, []).append(v)


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@register_layer
class Sequential(Layer):
    """A stack of layers run in order, with Keras's training API: ``compile``, ``fit``,
    ``evaluate``, ``predict``, ``summary``, plus ``train_step``, ``forward`` and ``backward``.

    ``Sequential(l1, l2, ...)`` or ``Sequential([l1, l2, ...])``; a non-layer item is a TypeError.
    It is itself a Layer (it nests), a sequence (``len``, iteration, ``model[i]``; ``model[:k]``
    is a Sequential sharing the same layer objects) and is saved and loaded by ``lamina.save`` /
    ``lamina.load``. Inputs are batches: (N, features), images NCHW (N, C, H, W), sequences
    (N, T, features), in the model's dtype (float32 unless ``astype``).

    Example (random data standing in for MNIST):

        >>> import numpy as np
        >>> from lamina import nn
        >>> X = np.random.default_rng(0).random((256, 784), dtype=np.float32); y = np.arange(256) % 10
        >>> model = nn.Sequential(nn.Dense(784, 100), nn.ReLU(), nn.Dense(100, 10))
        >>> model.compile(optimizer="adam", loss="cross_entropy")
        Sequential(...)
        >>> history = model.fit(X, y, epochs=2, batch_size=64, verbose=0)
        >>> sorted(history)[:2], len(history["loss"])
        (['accuracy', 'images_per_s'], 2)
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: item {i} is {type(layer).__name__}, not a lamina.nn layer")
        self.layers = list(layers)
        self._plan, self._plan_key = None, None
        self._pcache = None
        self._input_shape = None
        self.stop_training = False
        self.loss = None
        self.optimizer = None

    # -- container protocol -----------------------------------------------------------------
    def add(self, layer):
        """Appends a layer (Keras's spelling); returns the model. TypeError for an object that
        is not a ``lamina.nn`` layer.

        Example:

            >>> from lamina import nn
            >>> model = nn.Sequential().add(nn.Dense(4, 3)).add(nn.ReLU())
            >>> len(model)
            2
        """
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: {type(layer).__name__} is not a lamina.nn layer")
        self.layers.append(layer)
        return self

    def __getitem__(self, index):
        if isinstance(index, slice):
            sub = Sequential(*self.layers[index])  # the same layer objects, shared
            sub.backend = self.backend
            return sub
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    def named_parameters(self):
        """[("<layer index>.<name>", Parameter)] over the layers in order, each Parameter once
        (a layer shared twice is listed at its first place): PyTorch's ``state_dict`` names.

        Example:

            >>> from lamina import nn
            >>> [n for n, _ in nn.Sequential(nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2)).named_parameters()]
            ['0.weight', '0.bias', '2.weight', '2.bias']
        """
        out, seen = [], set()
        for i, layer in enumerate(self.layers):
            for name, p in layer.named_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append((f"{i}.{name}", p))
        return out

    def named_buffers(self):
        """[("<layer index>.<name>", Buffer)] of every layer (BatchNorm's running statistics);
        empty for a model without such layers.

        Example:

            >>> from lamina import nn
            >>> [n for n, _ in nn.Sequential(nn.Dense(4, 3), nn.BatchNorm1D(3)).named_buffers()]
            ['1.running_mean', '1.running_var', '1.num_batches_tracked']
        """
        return [(f"{i}.{n}", b) for i, layer in enumerate(self.layers) for n, b in layer.named_buffers()]

    # -- the parameters, cached between steps ---------------------------------------------------
    def _param_lists(self, key=None):
        """(flat parameters as ``parameters()`` lists them, per-layer parameter lists) or None
        when some layer lists its parameters its own way (then nothing is cached). The cache is
        checked on every call: the same layer objects in the same order, and each layer the
        same ``_param_names`` holding the same Parameter objects (a replaced or removed
        parameter, a changed layer list rebuild it)."""
        if type(self).named_parameters is not Sequential.named_parameters:
            return None
        layers = self.layers
        if key is None:
            key = tuple(map(id, layers))
        c = getattr(self, "_pcache", None)
        if c is not None and c[0] == key:
            is_ = operator.is_
            for layer, names, getter, expected in c[3]:
                if layer._param_names is not names or not all(map(is_, getter(layer), expected)):
                    break
            else:
                return c[1], c[2]
        checks, per_layer, flat, seen = [], [], [], set()
        for layer in layers:
            if type(layer).named_parameters is not Layer.named_parameters:
                self._pcache = None
                return None
            names = layer._param_names
            if names:
                getter = operator.attrgetter(*names) if len(names) > 1 else (lambda o, n=names[0]: (getattr(o, n),))
                got = tuple(getter(layer))
                checks.append((layer, names, getter, got))
                ps = [p for p in got if p is not None]
            else:
                ps = []
            per_layer.append(ps)
            for p in ps:
                if id(p) not in seen:
                    seen.add(id(p))
                    flat.append(p)
        self._pcache = (key, flat, per_layer, checks, tuple(layers))  # (the layers kept alive: ids stay theirs)
        return flat, per_layer

    def parameters(self):
        """Every layer's Parameters in order, each once (what an optimiser takes); frozen ones
        included (optimisers skip them).

        Example:

            >>> from lamina import models
            >>> sum(p.size for p in models.lenet5().parameters())
            61706
        """
        lists = self._param_lists()
        return [p for _, p in self.named_parameters()] if lists is None else list(lists[0])

    def zero_grad(self):
        """Marks every parameter's gradient zero (no memory is written: the next backward
        overwrites the buffers). ``fit`` and ``train_step`` call it before each backward.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> model = nn.Sequential(nn.Dense(2, 1))
            >>> _ = model.forward(np.ones((1, 2), np.float32)); _ = model.backward(np.ones((1, 1), np.float32))
            >>> model.zero_grad(); model.parameters()[1].grad
            array([0.], dtype=float32)
        """
        lists = self._param_lists()
        if lists is None:
            return super().zero_grad()
        for p in lists[0]:
            if type(p) is Parameter:
                p._zeroed = True
            else:
                p.zero_grad()

    def to(self, backend):
        """Moves every layer's parameters onto ``backend`` (a name such as "native", "numpy",
        "cuda", or a backend object) and pins the model there; returns the model. A compiled
        optimiser keeps working: it follows its parameters. ValueError for an unknown name (the
        message lists the registered ones).

        Example:

            >>> from lamina import models
            >>> model = models.mlp().to("numpy")
            >>> model.backend.name, model.parameters()[0].backend.name
            ('numpy', 'numpy')
        """
        super().to(backend)
        for layer in self.layers:
            layer.to(backend)
        return self

    def astype(self, dtype):
        """Converts every parameter to ``dtype`` (float32 or float64; the native backend computes
        in float32 only, the numpy backend in both); returns the model. Inputs must then have
        that dtype (the kernels raise TypeError otherwise; ``fit`` and ``predict`` convert
        host data themselves).

        Example:

            >>> import numpy as np
            >>> from lamina import models
            >>> model = models.mlp().astype(np.float64).to("numpy")
            >>> model.predict(np.zeros((1, 784))).dtype
            dtype('float64')
        """
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def get_config(self):
        """``{"layers": [{"type": class name, "config": the layer's get_config()}, ...]}``
        (JSON-able; nested Sequentials nest): the architecture ``lamina.save`` writes.

        Example:

            >>> from lamina import nn
            >>> nn.Sequential(nn.Dense(4, 3), nn.ReLU()).get_config()["layers"][1]
            {'type': 'ReLU', 'config': {}}
        """
        return {"layers": [_layer_entry(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config):
        """A new model (fresh weights) from ``get_config()``'s dict; each layer type must be
        registered (``nn.register_layer``), else ValueError naming it.

        Example:

            >>> from lamina import nn
            >>> model = nn.Sequential(nn.Dense(4, 3), nn.ReLU())
            >>> nn.Sequential.from_config(model.get_config()).layers
            [Dense(in_features=4, out_features=3, bias=True), ReLU()]
        """
        return cls(*[_layer_from_entry(e) for e in config["layers"]])

    def get_state(self):
        """Empty: a model's state is its layers' (``lamina.save`` stores each layer's
        ``get_state()`` itself).

        Example:

            >>> from lamina import nn
            >>> nn.Sequential(nn.Dropout(0.5)).get_state()
            {}
        """
        return {}

    # -- forward / backward -----------------------------------------------------------------
    def _get_plan(self, key=None):
        if key is None:
            key = tuple(map(id, self.layers))
        if key != self._plan_key:
            plan, n = [], len(self.layers)
            for i, layer in enumerate(self.layers):
                if isinstance(layer, Sequential):
                    mode = _NESTED
                elif type(layer) in (Dense, Conv2D) and i + 1 < n and type(self.layers[i + 1]) is ReLU:
                    mode = _FUSE_RELU
                elif type(layer) is ReLU and i > 0 and plan[i - 1][1] == _FUSE_RELU:
                    mode = _FUSED_RELU
                else:
                    mode = _PLAIN
                plan.append((layer, mode))
            # ReLU at i feeding a MaxPool2D at i + 1: backward as (relu mask, unpool) at i + 1.
            self._relu_pool = frozenset(i + 1 for i in range(n - 1)
                                        if type(self.layers[i]) is ReLU and type(self.layers[i + 1]) is MaxPool2D)
            self._plan, self._plan_key = plan, key
        return self._plan

    def _forward(self, x, training=False):
        """The forward pass without the final copy (the result is the last layer's workspace)."""
        self._input_shape = x.shape[1:]
        for layer, mode in self._get_plan():
            if mode == _PLAIN:
                x = layer.forward(x, training)
            elif mode == _FUSE_RELU:
                x = layer._forward(x, training, "relu")
            elif mode == _FUSED_RELU:
                x = layer._forward_fused(x)
            else:
                x = layer._forward(x, training)
        return x

    def forward(self, x, training=False):
        """Runs every layer on x (the first layer's input shape with the batch axis first,
        float32 by default: (N, C, H, W) images, (N, features) vectors) and returns a new array
        of the last layer's output (the caller may keep it); ``training`` turns on dropout and
        batch statistics. A layer's ValueError or TypeError (wrong shape or dtype) passes
        through.

        Example:

            >>> import numpy as np
            >>> from lamina import models
            >>> models.lenet5().forward(np.zeros((2, 1, 28, 28), np.float32)).shape
            (2, 10)
        """
        return self._be().copy(self._forward(x, training))

    def _first_trainable(self, key=None):
        lists = self._param_lists(key)
        if lists is None:
            return next((i for i, layer in enumerate(self.layers) if layer.trainable), len(self.layers))
        per_layer = lists[1]
        for i, layer in enumerate(self.layers):
            if type(layer).trainable is _LAYER_TRAINABLE and type(layer).parameters is _LAYER_PARAMETERS:
                for p in per_layer[i]:  # Layer.trainable: any parameter trainable
                    if p.trainable:
                        return i
            elif layer.trainable:
                return i
        return len(self.layers)

    def _backward(self, grad, need_input_grad, first=None):
        layers = self.layers
        # Layers before the first one with a trainable parameter need no backward at all when
        # the input gradient is not wanted (frozen feature extractors cost nothing).
        key = tuple(map(id, layers))
        if need_input_grad:
            first = 0
        elif first is None:
            first = self._first_trainable(key)
        self._get_plan(key)
        relu_pool = self._relu_pool
        i = len(layers) - 1
        while i >= first:
            if not need_input_grad and self._conv_from_pool(i, first):
                # The first conv layer (+ ReLU) feeding a max pool: its grad_w / grad_b from the
                # pooled gradient and the pool's indices, never the unpooled gradient.
                layers[i - 2]._backward_pooled(layers[i]._relu_masked(grad), layers[i])
                i -= 3
                continue
            if i in relu_pool and i - 1 >= first:
                grad = layers[i]._backward_relu_first(grad, layers[i - 1])
                i -= 2
            else:
                grad = layers[i]._backward(grad, need_input_grad or i > first)
                i -= 1
        return grad if need_input_grad else None

    def _conv_from_pool(self, i, first):
        """Whether layers i - 2 .. i (a Conv2D with its ReLU fused, then a MaxPool2D), the first
        of them the first layer the backward reaches, take the conv's gradients from the pool's
        (their backend has conv2d_backward_pooled). After _get_plan."""
        if i not in self._relu_pool or i - 2 != first or self._plan[i - 2][1] != _FUSE_RELU:
            return False
        conv, pool = self.layers[i - 2], self.layers[i]
        if type(conv) is not Conv2D:
            return False
        be = conv._be()
        return getattr(be, "conv2d_backward_pooled", None) is not None and be is pool._be()

    def backward(self, grad):
        """dC/d(output) -> dC/d(input) through every layer in reverse, for the most recent
        ``forward``; ``grad`` has the output's shape and dtype. Accumulates every trainable
        parameter's gradient (``zero_grad`` first for a fresh one).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> model = nn.Sequential(nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2))
            >>> y = model.forward(np.ones((5, 4), np.float32), training=True)
            >>> model.backward(np.ones_like(y)).shape
            (5, 4)
        """
        return self._backward(grad, True)

    # -- training -----------------------------------------------------------------------------
    def compile(self, optimizer=None, loss=None, metrics=None):
        """Sets the optimiser and the loss that ``fit``, ``train_step`` and ``evaluate`` use from
        now on (Keras's spelling); they keep them until given others.

        optimizer: an Optimizer over this model's parameters (or any object with its ``step``,
            e.g. a DistributedOptimizer) or a name from ``lamina.optim.OPTIMIZERS`` ("sgd",
            "adam", "adamw", "saddlefreenewton"), built with its default hyper-parameters;
            default ``SGD(lr=0.01)``. An optimiser object is kept as it is: its state (momentum,
            Adam moments, step counts) carries over from one ``fit`` to the next.
        loss: a Loss, a callable ``f(output, target) -> (loss, dC/d(output))`` or a name of
            ``lamina.losses.LOSSES`` ("cross_entropy", "mse", "bce", and Keras's names such as
            "sparse_categorical_crossentropy"); default CrossEntropy (on logits, integer labels).
        metrics: None or a list of metric names; only ``"accuracy"`` (alias ``"acc"``) exists, and
            it is always reported where the loss defines it (cross-entropy, binary cross-entropy,
            MSE against one-hot targets), so the list only checks the names.

        Raises ValueError for an unknown name (the message lists the known ones). Returns self.

        Example:

            >>> from lamina import models, optim
            >>> model = models.mlp()
            >>> model = model.compile(optimizer=optim.Adam(model.parameters(), lr=1e-3), loss="mse")
            >>> type(model.optimizer).__name__, type(model.loss).__name__
            ('Adam', 'MSE')
        """
        for m in ([] if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)):
            if m not in METRICS:
                raise ValueError(f"unknown metric {m!r}; expected one of {sorted(METRICS)}")
        self._set_training(optimizer, loss)
        return self

    def _set_training(self, optimizer, loss):
        """The optimiser and the loss, with the defaults for those that are None."""
        from .. import losses as _losses
        from .. import optim as _optim

        self.loss = _losses.get("cross_entropy" if loss is None else loss)
        params = self.parameters()
        if optimizer is None:
            optimizer = _optim.SGD(params, lr=0.01)
        elif not isinstance(optimizer, _optim.Optimizer) and not callable(getattr(optimizer, "step", None)):
            optimizer = _optim.get(optimizer, params)
        self.optimizer = optimizer

    def _ensure_training(self, optimizer=None, loss=None):
        """fit's and train_step's rule: given ones replace the compiled ones; with none compiled
        and none given, the defaults are compiled (once: later calls keep them)."""
        if optimizer is not None or loss is not None or self.optimizer is None or self.loss is None:
            self._set_training(self.optimizer if optimizer is None else optimizer,
                               self.loss if loss is None else loss)

    def train_step(self, xb, yb, keep_previous=False, before_update=None):
        """One optimisation step on one minibatch: forward in training mode, the loss, backward,
        the optimiser's step. ``xb`` is an array of the model's backend (or host data), ``yb``
        the targets (host or backend). Returns (loss, output); the output is valid until the
        next forward. A non-finite loss raises NonFiniteLossError before anything changes.
        ``keep_previous`` is passed to the optimiser's step (``optimizer.undo()`` then restores
        the weights and its state); ``before_update()``, when given, runs just before the step.
        With a DistributedOptimizer the gradients and the loss are averaged over all ranks after
        the backward pass, and the averaged loss is the one checked (all ranks stop together).
        An optimiser with ``requires_closure`` gets ``step(closure)`` instead (``_closure_step``).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> model = nn.Sequential(nn.Dense(4, 3)).compile(optimizer="sgd", loss="cross_entropy")
            >>> loss, out = model.train_step(np.ones((8, 4), np.float32), np.zeros(8, np.int64))
            >>> out.shape, loss > 0
            ((8, 3), True)
        """
        self._ensure_training()
        if getattr(self.optimizer, "requires_closure", False):
            return self._closure_step(xb, yb, keep_previous, before_update)
        be = self._be()
        out = self._forward(_backend.move(xb, be), True)
        lval, grad = _apply_loss(self.loss, out, yb, be)
        synchronize = getattr(self.optimizer, "synchronize", None)
        if synchronize is None and not math.isfinite(lval):
            raise NonFiniteLossError(f"non-finite loss ({lval})", None, None, lval)
        self.zero_grad()  # marks the gradients zero: the first backward write overwrites them
        self._backward(grad, False)
        if synchronize is not None:
            total = synchronize(lval, len(xb))
            if not math.isfinite(total):
                raise NonFiniteLossError(f"non-finite loss ({total})", None, None, total)
        if before_update is not None:
            before_update()
        if keep_previous:
            self.optimizer.step(keep_previous=True)
        else:
            self.optimizer.step()
        return lval, out

    def _closure_step(self, xb, yb, keep_previous, before_update):
        """train_step for an optimiser whose step takes a closure (``requires_closure``, e.g.
        SaddleFreeNewton): the closure re-runs zero_grad, forward (training mode), the loss and
        backward on this minibatch and returns the loss. Its first call is at the current
        weights: a non-finite loss there raises NonFiniteLossError before the optimiser has
        changed anything, and ``before_update()`` runs after it. Returns (that first loss, a
        copy of that first output), as train_step does for the other optimisers."""
        be = self._be()
        xb = _backend.move(xb, be)
        first = []

        def closure():
            self.zero_grad()
            out = self._forward(xb, True)
            lval, grad = _apply_loss(self.loss, out, yb, be)
            if not first:
                if not math.isfinite(lval):
                    raise NonFiniteLossError(f"non-finite loss ({lval})", None, None, lval)
                first.append((lval, be.copy(out)))
                if before_update is not None:
                    before_update()
            if math.isfinite(lval):  # (a line search may try points where it is not)
                self._backward(grad, False)
            return lval

        if keep_previous:
            self.optimizer.step(closure, keep_previous=True)
        else:
            self.optimizer.step(closure)
        if not first:
            raise RuntimeError(f"{type(self.optimizer).__name__}.step(closure) never called the closure")
        return first[0]

    def fit(self, X, y, *, epochs=1, batch_size=32, optimizer=None, loss=None, validation_data=None,
            validation_split=0.0, shuffle=True, seed=None, callbacks=(), verbose=1, initial_epoch=0,
            distributed=False):
        """Mini-batch training. Returns a History: per-epoch lists under Keras's keys "loss",
        "accuracy", "val_loss", "val_accuracy" (and "time", "images_per_s", "lr").

        X, y: host NumPy arrays (each minibatch is gathered on the host and moved to the
            model's backend once) or arrays already on the model's backend. X is converted to
            the model's dtype (float32 unless ``astype``); images are NCHW (N, C, H, W); for
            cross-entropy y holds integer class labels (N,), not one-hot rows.
        Every argument after ``y`` is keyword-only (Keras's third positional argument is
        ``batch_size``: naming them leaves nothing to guess).
        optimizer, loss: as in ``compile``. Given, they replace the compiled ones (and are the
            compiled ones afterwards); not given, the compiled ones are used; with none compiled,
            the defaults (SGD(lr=0.01), cross-entropy) are compiled by the first call. A second
            ``fit`` continues the same optimiser: its momentum, moments and step counts carry on.
        validation_data: (X_val, y_val), evaluated with the compiled loss after every epoch.
        validation_split: a fraction in [0, 1): the last ``ceil(split * N)`` samples of X, y (taken
            before any shuffling, as in Keras) are held out as the validation data.
        shuffle/seed: each epoch visits the samples in the order of a generator seeded with
            (seed, epoch), so a run resumed at ``initial_epoch`` sees the same batches.
        callbacks: objects with any of on_train_begin(logs), on_epoch_begin(epoch, logs),
            on_batch_end(batch, logs), on_epoch_end(epoch, logs), on_train_end(logs) (schedulers
            qualify), or plain callables f(epoch, logs) called after each epoch. Setting
            ``model.stop_training = True`` ends training after the current epoch.
        verbose: 0 silent; 1 (or Keras's "auto") a progress bar (when stderr is a terminal) or one
            line per epoch; 2 one line per epoch.
        initial_epoch: the number of epochs already done (resuming a checkpoint: training runs
            epochs initial_epoch .. epochs - 1).
        distributed: data-parallel over the ranks of ``mpiexec`` (lamina.distributed; needs the
            "mpi" extra). ``batch_size`` is then the global batch: each epoch's order (the same
            seed on every rank) is cut into global batches and each rank takes its 1/world part;
            the optimiser is wrapped in a DistributedOptimizer (gradients averaged with one
            Allreduce per step); the logs are averaged over the ranks; only rank 0 prints and
            runs the callbacks marked ``rank_zero_only`` (those that write files), every rank
            runs the others (schedulers). Any rank setting ``stop_training`` stops them all; an
            exception on one rank aborts the job (MPI_Abort). Same weights as one process with
            the same batch_size, up to float32 summation order, whatever the number of ranks.
        An optimiser whose step takes a closure (``requires_closure``: SaddleFreeNewton) gets
        one over each minibatch, which it may evaluate many times: use large or full batches
        (batch_size=len(X)). The loss and accuracy logged are those at the weights before each step.
        A NaN or infinite loss stops training with NonFiniteLossError naming the epoch and batch;
        the model keeps the last good weights and the optimiser its last good state (velocities,
        moments, step counts), from before the update that led to it.

        Raises ValueError for no samples, a bad ``validation_split``, both validation arguments,
        labels the loss cannot take, or a dtype the backend lacks.

        Example (the bundled MNIST test images, a few of them):

            >>> from lamina import datasets, models
            >>> X, y = datasets.load_mnist()
            >>> model = models.lenet5().compile(optimizer="adam", loss="cross_entropy")
            >>> history = model.fit(X[:640], y[:640], epochs=2, batch_size=64, validation_split=0.2, verbose=0)
            >>> len(history["val_accuracy"]), history["loss"][1] < history["loss"][0]
            (2, True)
        """
        if verbose == "auto":  # Keras's default
            verbose = 1
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
        self._ensure_training(optimizer, loss)
        split = float(validation_split)
        if not 0.0 <= split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if split:
            if validation_data is not None:
                raise ValueError("give validation_data or validation_split, not both")
            if len(X) != len(y):
                raise ValueError(f"X has {len(X)} samples and y {len(y)}")
            at = int(math.ceil(len(X) * (1.0 - split)))
            X, y, validation_data = X[:at], y[:at], (X[at:], y[at:])
        be = self._be()
        dtype = self.dtype or np.dtype(np.float32)
        if not _backend.supports(be, dtype):
            raise ValueError(f"the model's parameters are {dtype}, which backend {be.name!r} does not support")
        base_seed = np.random.SeedSequence().entropy if seed is None else int(seed)
        shard = None
        if distributed:
            from .. import distributed as _dist

            rank, world = _dist.init()
            if not isinstance(self.optimizer, _dist.DistributedOptimizer):
                self.optimizer = _dist.DistributedOptimizer(self.optimizer)  # rank 0's weights everywhere
            base_seed = _dist.shared_seed(base_seed)
            shard = _dist.Shard(len(X), int(batch_size), rank, world)
            batch_size, verbose = shard.local_batch, verbose if rank == 0 else 0
            callbacks = [cb for cb in callbacks if rank == 0 or not getattr(cb, "rank_zero_only", False)]
        data = Batches(X, _prepare_target(self.loss, y, dtype), batch_size, be, dtype)
        if data.n == 0:
            raise ValueError("fit needs at least one sample")
        cbs = list(callbacks)
        for cb in cbs:
            if hasattr(cb, "set_model"):
                cb.set_model(self)
        use_bar = verbose == 1 and _isatty(sys.stderr)
        lines = verbose == 2 or (verbose == 1 and not use_bar)
        good = _LastGoodWeights(self.parameters(), self.optimizer)
        history = History()
        history.epochs = []
        self.stop_training = False
        with _dist.abort_on_error() if shard is not None else contextlib.nullcontext():
            self._call(cbs, "on_train_begin", {})
            try:
                self._fit_epochs(data, int(initial_epoch), int(epochs), shuffle, base_seed, cbs, good, history,
                                 validation_data, int(batch_size), use_bar, lines, shard)
            finally:
                good.close()  # the parameters are back in their own arrays, whatever happened
            self._call(cbs, "on_train_end", {})
        return history

    def _fit_epochs(self, data, initial_epoch, epochs, shuffle, base_seed, cbs, good, history, validation_data,
                    batch_size, use_bar, lines, shard=None):
        if shard is not None:
            from .. import distributed as _dist
        for epoch in range(initial_epoch, epochs):
            self._call(cbs, "on_epoch_begin", epoch, {})
            order = np.random.default_rng([base_seed, epoch]).permutation(data.n) if shuffle else None
            good.follow_trainable()  # (callbacks may freeze or unfreeze parameters between epochs)
            good.final = shard is None and epoch == epochs - 1
            bar = None
            if use_bar:
                from tqdm import tqdm
                bar = tqdm(total=len(data) if shard is None else shard.steps, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                           leave=True, file=sys.stderr, dynamic_ncols=True)
            try:
                logs = self._fit_epoch(data, order, epoch, good, bar, [cb for cb in cbs if hasattr(cb, "on_batch_end")],
                                       shard)
                if validation_data is not None:
                    evaluate = self.evaluate if shard is None else functools.partial(_dist.evaluate, self)
                    vl, va = evaluate(*validation_data, loss=self.loss, batch_size=max(batch_size, 256))
                    logs["val_loss"], logs["val_accuracy"] = vl, va
            except BaseException:
                if bar is not None:
                    bar.close()
                raise
            history._append(logs)
            history.epochs.append(epoch + 1)
            if bar is not None:
                bar.set_postfix(_postfix(logs), refresh=True)
                bar.close()
            elif lines:
                print(f"epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k} {v}" for k, v in _postfix(logs).items()),
                      flush=True)
            self._call(cbs, "on_epoch_end", epoch, logs)
            if shard is not None:
                self.stop_training = _dist.any_rank(self.stop_training)
            if self.stop_training:
                break

    def _fit_epoch(self, data, order, epoch, good, bar, batch_cbs, shard=None):
        """One epoch of ``fit``: every minibatch through ``train_step``; returns the epoch's logs.
        Distributed (``shard``): this rank's part of every global batch; the logs, the batch
        callbacks and the bar see the loss and the sample counts of all ranks."""
        if shard is not None:
            from .. import distributed as _dist
        count_correct = getattr(self.loss, "count_correct", lambda out, t: None)
        steps = len(data) if shard is None else shard.steps
        batches = data.iterate(order) if shard is None else shard.batches(data, order)
        t0 = last_post = time.perf_counter()
        loss_sum, correct, judged, seen = 0.0, 0, 0, 0
        bar_sum, bar_seen = 0.0, 0
        # fit's very last update is never undone: the optimiser may end it in the own arrays
        settle_at = steps - 1 if good.settles and getattr(good, "final", False) else -1
        for b, (xb, yb) in enumerate(batches):
            keep, before = good.undoable, None if good.undoable else good.keep
            if b == settle_at:
                self.optimizer._settle = True
            try:
                if xb is None:  # distributed: this rank holds no sample of the (last) step
                    lval, out = _dist.step_without_samples(self, keep, before), None
                else:
                    lval, out = self.train_step(xb, yb, keep, before)
            except NonFiniteLossError as e:
                good.restore()
                raise NonFiniteLossError(
                    f"non-finite loss ({e.loss}) at epoch {epoch + 1}, batch {b + 1} of {steps}: "
                    "training stopped; the model and its optimiser keep their last good state (from before "
                    "the update that led to this loss). Try a lower learning rate.", epoch + 1, b + 1, e.loss) from None
            m = 0 if xb is None else len(xb)
            if m:
                seen += m
                loss_sum += lval * m
                cc = count_correct(out, yb)
                if cc is not None:
                    correct += cc[0]
                    judged += cc[1]
            if shard is not None:  # the step's loss over every rank's samples
                lval, m = self.optimizer.last_loss, self.optimizer.last_count
            bar_sum, bar_seen = bar_sum + lval * m, bar_seen + m
            for cb in batch_cbs:
                cb.on_batch_end(b, {"loss": lval, "size": m})
            if bar is not None:
                bar.update(1)
                now = time.perf_counter()
                if now - last_post > 0.25:
                    last_post = now
                    bar.set_postfix(loss=f"{bar_sum / bar_seen:.4f}", img_s=f"{bar_seen / (now - t0):.0f}",
                                    refresh=False)
        dt = time.perf_counter() - t0
        logs = {"loss": loss_sum / data.n, "accuracy": correct / judged if judged else None, "time": dt,
                "images_per_s": data.n / dt if dt > 0 else float("inf"), "lr": self.optimizer.lr}
        if shard is not None:
            _dist.average_epoch_logs(logs, data.n, loss_sum, correct, judged)
        return logs

    @staticmethod
    def _call(cbs, hook, *args):
        for cb in cbs:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(*args)
            elif hook == "on_epoch_end" and callable(cb) and not hasattr(cb, "on_epoch_begin"):
                cb(*args)

    def evaluate(self, X, y, batch_size=256, loss=None):
        """(mean loss, accuracy) over X, y in inference mode (no dropout), with the compiled loss
        (cross-entropy when none is compiled) or ``loss`` given for this call only. The accuracy
        is Keras's ``metrics=["accuracy"]``: the fraction of argmax predictions equal to the
        integer labels (cross-entropy; MSE with one-hot targets) or of outputs on the right side
        of 0.5 (binary cross-entropy); it is None when the loss has no such notion.

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> model = nn.Sequential(nn.Dense(4, 3))
            >>> test_loss, test_accuracy = model.evaluate(np.zeros((10, 4), np.float32), np.zeros(10, np.int64))
            >>> round(test_loss, 4), test_accuracy   # zero inputs, zero biases: uniform logits, argmax 0
            (1.0986, 1.0)
        """
        from .. import losses as _losses

        loss_fn = _losses.get(loss if loss is not None else (self.loss or "cross_entropy"))
        be = self._be()
        dtype = self.dtype or np.dtype(np.float32)
        data = Batches(X, _prepare_target(loss_fn, y, dtype), batch_size, be, dtype)
        count_correct = getattr(loss_fn, "count_correct", lambda out, t: None)
        loss_sum, correct, judged = 0.0, 0, 0
        for xb, yb in data:
            out = self._forward(xb, False)
            lval, _ = _apply_loss(loss_fn, out, yb, be)
            loss_sum += lval * len(xb)
            cc = count_correct(out, yb)
            if cc is not None:
                correct += cc[0]
                judged += cc[1]
        n = data.n
        return (loss_sum / n if n else float("nan")), (correct / judged if judged else None)

    def predict(self, X, batch_size=256):
        """The model's outputs for X (inference mode), as one new host NumPy array of shape
        (N, ...) in the model's dtype. These are the last layer's outputs: for a classifier
        ending in Dense, logits, not probabilities (add a Softmax layer, or take
        ``predict(X).argmax(axis=1)`` for the classes). ValueError for an empty X.

        Example:

            >>> import numpy as np
            >>> from lamina import models
            >>> logits = models.lenet5().predict(np.zeros((5, 1, 28, 28), np.float32))
            >>> logits.shape, logits.dtype, logits.argmax(axis=1).shape
            ((5, 10), dtype('float32'), (5,))
        """
        be = self._be()
        data = Batches(X, None, batch_size, be, self.dtype or np.dtype(np.float32))
        result, lo = None, 0
        for xb, _ in data:
            out = be.to_numpy(self._forward(xb, False))
            if result is None:
                result = np.empty((data.n,) + out.shape[1:], dtype=out.dtype)
            result[lo: lo + len(out)] = out
            lo += len(out)
        if result is None:
            raise ValueError("predict needs at least one sample")
        return result

    # -- summary --------------------------------------------------------------------------------
    def output_shape(self, input_shape):
        """The output shape for one input of ``input_shape``, both without the batch dimension
        (each layer's ``output_shape`` in turn; ValueError where a layer's input does not fit).

        Example:

            >>> from lamina import models
            >>> models.lenet5().output_shape((1, 28, 28))
            (10,)
        """
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def summary(self, input_shape=None, print_fn=print):
        """Per-layer output shape, activation count and parameter count, with totals (like the
        talk's VGG table). ``input_shape`` excludes the batch dimension; by default the shape of
        the last forward's input, or the first layer's when it determines it. The table is
        passed to ``print_fn`` as one string and returned.

        Example:

            >>> from lamina import models
            >>> rows = models.lenet5().summary((1, 28, 28), print_fn=lambda table: None).splitlines()
            >>> rows[3], rows[-4]
            (' 0  Conv2D        (6, 28, 28)         4,704      156', 'Total params: 61,706')
        """
        shape = input_shape if input_shape is not None else self._input_shape
        if shape is None and self.layers:
            first = self.layers[0]
            if isinstance(first, Dense):
                shape = (first.in_features,)
        rows = [("", "input", _fmt_shape(shape) if shape is not None else "?",
                 f"{math.prod(shape):,}" if shape is not None else "?", "0")]
        for i, layer in enumerate(self.layers):
            if shape is not None:
                try:
                    shape = tuple(layer.output_shape(tuple(shape)))
                except Exception:  # a layer that cannot tell without data
                    shape = None
            n_params = sum(p.size for p in layer.parameters())
            rows.append((str(i), type(layer).__name__, _fmt_shape(shape) if shape is not None else "?",
                         f"{math.prod(shape):,}" if shape is not None else "?", f"{n_params:,}"))
        ps = self.parameters()
        total = sum(p.size for p in ps)
        train = sum(p.size for p in ps if p.trainable)
        head = ("#", "Layer (type)", "Output shape", "Activations", "Param #")
        widths = [max(len(r[c]) for r in rows + [head]) for c in range(5)]

        def fmt(r):
            return "  ".join([r[0].rjust(widths[0]), r[1].ljust(widths[1]), r[2].ljust(widths[2]),
                              r[3].rjust(widths[3]), r[4].rjust(widths[4])])

        rule = "-" * len(fmt(head))
        lines = [fmt(head), rule] + [fmt(r) for r in rows] + [
            rule, f"Total params: {total:,}", f"Trainable params: {train:,}",
            f"Non-trainable params: {total - train:,}"]
        if ps:
            lines.append(f"Parameter memory: {sum(p.size * p.dtype.itemsize for p in ps) / 1024:,.1f} KiB ({ps[0].dtype})")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text


_UNDOABLE_STEPS: dict = {}  # an optimiser class's step function -> whether it takes keep_previous


def _step_keeps_previous(step):
    func = getattr(step, "__func__", None)
    if func is not None:
        known = _UNDOABLE_STEPS.get(func)
        if known is None:
            known = _UNDOABLE_STEPS[func] = "keep_previous" in inspect.signature(step).parameters
        return known
    return "keep_previous" in inspect.signature(step).parameters


class _LastGoodWeights:
    """What fit restores after a non-finite loss: the weights and the optimiser state from
    before the latest update. With lamina's optimisers the step keeps its previous arrays (no
    copies, see Optimizer.step(keep_previous=True)); an optimiser whose step cannot keep them
    gets a copy of the trainable parameters before every update (the weights only)."""

    def __init__(self, params, optimizer):
        from .. import optim as _optim

        self.params, self.optimizer, self.trainable, self.copies = params, optimizer, [], []
        self.undoable = callable(getattr(optimizer, "undo", None)) and _step_keeps_previous(optimizer.step)
        # lamina's own optimisers can take fit's last update so that it ends in the parameters'
        # own arrays (Optimizer._settling): drop_previous then copies nothing.
        self.settles = self.undoable and isinstance(optimizer, _optim.Optimizer)

    def follow_trainable(self):
        if self.undoable:
            return
        now = [p for p in self.params if p.trainable]
        if list(map(id, now)) != list(map(id, self.trainable)):
            self.trainable = now
            self.copies = [p.be.copy(p.data) for p in now]

    def keep(self):
        for c, p in zip(self.copies, self.trainable):
            p.be.copy(p.data, out=c)

    def restore(self):
        if self.undoable:
            self.optimizer.undo()
        for c, p in zip(self.copies, self.trainable):
            p.be.copy(c, out=p.data)

    def close(self):
        if self.undoable:
            if self.settles:
                self.optimizer._settle = False
            self.optimizer.drop_previous()


def _prepare_target(loss_fn, y, dtype):
    """Host targets as the loss wants them (once per fit); backend arrays stay as they are."""
    if type(y) in _backend._array_types or not hasattr(loss_fn, "prepare_target"):
        return y
    return loss_fn.prepare_target(y, dtype)


_LAYER_TRAINABLE, _LAYER_PARAMETERS = Layer.trainable, Layer.parameters


def _apply_loss(loss_fn, out, yb, be):
    """(loss, dC/d(output)) of a lamina Loss on backend ``be``, or of a plain callable."""
    if isinstance(loss_fn, _Loss):
        return loss_fn(out, yb, backend=be)
    lval, grad = loss_fn(out, yb)
    return float(lval), grad


def _postfix(logs):
    out = {}
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if logs.get(k) is not None:
            out[k] = f"{logs[k]:.4f}"
    out["img/s"] = f"{logs['images_per_s']:.0f}"
    out["time"] = f"{logs['time']:.1f}s"
    return out


def _fmt_shape(shape):
    return str(tuple(int(s) for s in shape))


def _layer_entry(layer):
    if type(layer).__name__ not in LAYER_TYPES or LAYER_TYPES[type(layer).__name__] is not type(layer):
        raise ValueError(f"layer type {type(layer).__name__} is not registered (lamina.nn.register_layer)")
    entry = {"type": type(layer).__name__, "config": layer.get_config()}
    params = {n: {"trainable": p.trainable, "lr_scale": p.lr_scale} for n, p in layer.named_parameters()
              if not isinstance(layer, Sequential)}
    if params:
        entry["params"] = params
    state = layer.get_state()
    if state:
        entry["state"] = state
    return entry


def _layer_from_entry(entry):
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise ValueError(f"bad layer entry in the architecture: {entry!r}")
    cls = LAYER_TYPES.get(entry["type"])
    if cls is None:
        raise ValueError(f"unknown layer type {entry['type']!r} in the architecture")
    config = entry.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"bad config for layer {entry['type']}: {config!r}")
    try:
        layer = cls.from_config(config)
    except ValueError:
        raise
    except (TypeError, KeyError) as e:
        raise ValueError(f"bad config for layer {entry['type']}: {config!r} ({e})") from None
    named = dict(layer.named_parameters())
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"bad parameter attributes for layer {entry['type']}: {params!r}")
    for name, attrs in params.items():
        if name not in named or not isinstance(attrs, dict):
            raise ValueError(f"layer {entry['type']} has no parameter {name!r}")
        trainable, lr_scale = attrs.get("trainable", True), attrs.get("lr_scale", 1.0)
        if not isinstance(trainable, bool) or isinstance(lr_scale, bool) or not isinstance(lr_scale, (int, float)) \
                or not math.isfinite(lr_scale):
            raise ValueError(f"bad attributes {attrs!r} for parameter {name!r} of layer {entry['type']}")
        named[name].trainable, named[name].lr_scale = trainable, float(lr_scale)
    state = entry.get("state")
    if state:
        if not isinstance(state, dict):
            raise ValueError(f"bad state for layer {entry['type']}: {state!r}")
        layer.set_state(state)
    return layer
