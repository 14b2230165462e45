"""Sequential: a stack of layers run in order, the container.

Forward runs the layers in order; backward runs them in reverse, each taking dC/d(output) and
returning dC/d(input). Neighbouring layers that implement the fusion protocol (a Dense or
Conv2D and the ReLU after it, a ReLU and the MaxPool2D after it, the first conv layer's
gradient from its pool's) run fused, by the plan of ``lamina.nn.fusion``; the training loop
(``compile``, ``fit``, ``evaluate``, ``predict``, ``train_step``) is ``lamina.training``'s, the
saved form of the layers ``lamina.io``'s.
"""
from __future__ import annotations

import math
import operator

from .. import training as _training
from ..losses import NonFiniteLossError  # noqa: F401  (lamina.nn.NonFiniteLossError)
from . import fusion
from .layers import Dense, Layer, register_layer
from .parameter import Parameter

History = _training.History
METRICS = _training.METRICS  # the names compile(metrics=...) accepts

# The plan's modes and the loss helper under their earlier names (benchmarks/profile_step.py).
_PLAIN, _FUSE_RELU, _FUSED_RELU, _NESTED = fusion.PLAIN, fusion.FUSE_ACTIVATION, fusion.FUSED_ACTIVATION, fusion.NESTED
_apply_loss = _training.apply_loss

__all__ = ["Sequential", "History", "NonFiniteLossError", "METRICS"]


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

    is_container = True

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
                p.grad_is_zero = True  # (Parameter.zero_grad's one line, without the call)
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
        from ..io import layer_to_entry

        return {"layers": [layer_to_entry(layer) for layer in self.layers]}

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
        from ..io import layer_from_entry

        return cls(*[layer_from_entry(e) for e in config["layers"]])

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
    def plan(self, key=None):
        """The fusion plan of the current layer list (``lamina.nn.fusion.Plan``), made again
        when the list changes.

        Example:

            >>> from lamina import models
            >>> sorted(models.lenet5().plan().through_activation)
            [2, 5]
        """
        if key is None:
            key = tuple(map(id, self.layers))
        if key != self._plan_key:
            self._plan, self._plan_key = fusion.Plan(self.layers), key
        return self._plan

    def forward_workspace(self, x, training=False):
        """``forward`` without the copy of its result: the array returned may be the last
        layer's workspace, valid until the next forward (what the training loop and a
        Sequential inside another use).

        Example:

            >>> import numpy as np
            >>> from lamina import models
            >>> models.mlp().forward_workspace(np.zeros((2, 784), np.float32)).shape
            (2, 10)
        """
        self._input_shape = x.shape[1:]
        return self.plan().forward(x, training)

    _forward = forward_workspace  # (the earlier name)

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
        return self._be().copy(self.forward_workspace(x, training))

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
        # Layers before the first one with a trainable parameter need no backward at all when
        # the input gradient is not wanted (frozen feature extractors cost nothing).
        key = tuple(map(id, self.layers))
        if need_input_grad:
            first = 0
        elif first is None:
            first = self._first_trainable(key)
        return self.plan(key).backward(grad, need_input_grad, first)

    def backward(self, grad, need_input_grad=True):
        """dC/d(output) -> dC/d(input) through every layer in reverse, for the most recent
        ``forward``; ``grad`` has the output's shape and dtype. Accumulates every trainable
        parameter's gradient (``zero_grad`` first for a fresh one). ``need_input_grad=False``
        computes the parameter gradients only (returns None): the layers before the first
        trainable one are then skipped, and the first conv layer may take its gradients from
        the pool after it (``lamina.nn.fusion``).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> model = nn.Sequential(nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2))
            >>> y = model.forward(np.ones((5, 4), np.float32), training=True)
            >>> model.backward(np.ones_like(y)).shape
            (5, 4)
        """
        return self._backward(grad, need_input_grad)

    # The plan as (layer, mode) pairs, the ReLU + pool indices and the conv-from-pool test under
    # their earlier names (benchmarks/profile_step.py replays a step with them).
    def _get_plan(self, key=None):
        plan = self.plan(key)
        self._relu_pool = plan.through_activation
        return [(layer, mode) for layer, mode, _ in plan.steps]

    def _conv_from_pool(self, i, first):
        return self.plan().from_pool(i, first)

    # -- training (lamina.training) ------------------------------------------------------------
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
        return _training.compile(self, optimizer, loss, metrics)

    def train_step(self, xb, yb, keep_previous=False, before_update=None):
        """One optimisation step on one minibatch: forward in training mode, the loss, backward,
        the optimiser's step. ``xb`` is an array of the model's backend (or host data), ``yb``
        the targets (host or backend). Returns (loss, output); the output is valid until the
        next forward. A non-finite loss raises NonFiniteLossError before anything changes.
        ``keep_previous`` is passed to the optimiser's step (``optimizer.undo()`` then restores
        the weights and its state); ``before_update()``, when given, runs just before the step.
        With a DistributedOptimizer the gradients and the loss are averaged over all ranks after
        the backward pass, and the averaged loss is the one checked (all ranks stop together).
        An optimiser with ``requires_closure`` gets ``step(closure)`` instead (``lamina.training.closure_step``).

        Example:

            >>> import numpy as np
            >>> from lamina import nn
            >>> model = nn.Sequential(nn.Dense(4, 3)).compile(optimizer="sgd", loss="cross_entropy")
            >>> loss, out = model.train_step(np.ones((8, 4), np.float32), np.zeros(8, np.int64))
            >>> out.shape, loss > 0
            ((8, 3), True)
        """
        return _training.train_step(self, xb, yb, keep_previous, before_update)

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
        return _training.fit(self, X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer, loss=loss,
                             validation_data=validation_data, validation_split=validation_split, shuffle=shuffle,
                             seed=seed, callbacks=callbacks, verbose=verbose, initial_epoch=initial_epoch,
                             distributed=distributed)

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
        return _training.evaluate(self, X, y, batch_size, loss)

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
        return _training.predict(self, X, batch_size)

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


def _fmt_shape(shape):
    return str(tuple(int(s) for s in shape))


_LAYER_TRAINABLE, _LAYER_PARAMETERS = Layer.trainable, Layer.parameters
