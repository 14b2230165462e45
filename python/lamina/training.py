"""The training loop: ``compile``, ``train_step``, ``fit``, ``evaluate``, ``predict``, the
callbacks and the undo of a step that led to a non-finite loss.

``Sequential``'s methods of these names delegate here; the functions take the model first and
use only its public side: ``be``, ``dtype``, ``parameters()``, ``zero_grad()``,
``forward_workspace(x, training)`` (the forward without the copy of its result),
``backward(grad, need_input_grad=False)`` (the parameter gradients alone), and its ``loss``,
``optimizer`` and ``stop_training`` attributes. Nothing here imports the layers or the container.

The non-finite-loss undo: lamina's optimisers can keep the arrays of the previous step
(``Optimizer.step(keep_previous=True)``, ``undo()``, ``drop_previous()``), so ``fit`` takes
every step that way and, after a NaN or infinite loss, puts the weights and the optimiser's
state back as they were before the update that led to it (``LastGoodWeights``).
"""
from __future__ import annotations

import contextlib
import inspect
import math
import sys
import time

import numpy as np

from . import backend as _backend
from .losses import Loss, NonFiniteLossError
from . import losses as _losses

METRICS = ("accuracy", "acc")  # the names compile(metrics=...) accepts


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

    def append(self, logs):
        """Appends one epoch's logs: each value to the list under its key.

        Example:

            >>> from lamina import nn
            >>> h = nn.History(); h.append({"loss": 0.5}); h.append({"loss": 0.25}); h["loss"]
            [0.5, 0.25]
        """
        for k, v in logs.items():
            self.setdefault(k, []).append(v)

    _append = append  # (the earlier spelling)


# -- the loss on a batch ---------------------------------------------------------------------------
def apply_loss(loss_fn, out, yb, be):
    """(loss, dC/d(output)) of a lamina Loss on backend ``be``, or of a plain callable
    ``loss_fn(out, yb) -> (loss, grad)`` (its loss made a float).

    Example:

        >>> import numpy as np
        >>> from lamina import backend, losses, training
        >>> lval, grad = training.apply_loss(losses.MSE(), np.zeros((2, 1), np.float32), np.ones((2, 1), np.float32),
        ...                                  backend.get_backend("native"))
        >>> lval, grad.shape
        (0.5, (2, 1))
    """
    if isinstance(loss_fn, Loss):
        return loss_fn(out, yb, backend=be)
    lval, grad = loss_fn(out, yb)
    return float(lval), grad


def prepare_target(loss_fn, y, dtype):
    """Host targets as the loss wants them (its ``prepare_target``; once per ``fit``); arrays
    of a registered backend and losses without it pass as they are.

    Example:

        >>> import numpy as np
        >>> from lamina import losses, training
        >>> training.prepare_target(losses.MSE(), [[1, 0]], np.float32).dtype
        dtype('float32')
    """
    if _backend.array_owner(y) is not None or not hasattr(loss_fn, "prepare_target"):
        return y
    return loss_fn.prepare_target(y, dtype)


def call_callbacks(callbacks, hook, *args):
    """Calls ``hook`` (e.g. "on_epoch_end") on every callback that has it; a plain callable
    without any hook is called as ``f(epoch, logs)`` for "on_epoch_end".

    Example:

        >>> from lamina import training
        >>> seen = []
        >>> training.call_callbacks([lambda epoch, logs: seen.append(epoch)], "on_epoch_end", 3, {})
        >>> seen
        [3]
    """
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)
        elif hook == "on_epoch_end" and callable(cb) and not hasattr(cb, "on_epoch_begin"):
            cb(*args)


# -- compile ---------------------------------------------------------------------------------------
def compile(model, optimizer=None, loss=None, metrics=None):
    """``model.compile``: checks the metric names, then sets ``model.optimizer`` and
    ``model.loss`` (``set_training``). Returns the model.

    Example:

        >>> from lamina import models, training
        >>> model = training.compile(models.mlp(), optimizer="adam", loss="mse")
        >>> type(model.optimizer).__name__, type(model.loss).__name__
        ('Adam', 'MSE')
    """
    for m in ([] if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)):
        if m not in METRICS:
            raise ValueError(f"unknown metric {m!r}; expected one of {sorted(METRICS)}")
    set_training(model, optimizer, loss)
    return model


def set_training(model, optimizer, loss):
    """Sets ``model.loss`` (a Loss, a callable or a name; None: cross-entropy) and
    ``model.optimizer`` (an optimiser, an object with ``step``, or a name; None: SGD(lr=0.01)
    over the model's parameters).

    Example:

        >>> from lamina import models, training
        >>> model = models.mlp(); training.set_training(model, None, None)
        >>> type(model.optimizer).__name__, model.optimizer.lr
        ('SGD', 0.01)
    """
    from . import optim as _optim

    model.loss = _losses.get("cross_entropy" if loss is None else loss)
    params = model.parameters()
    if optimizer is None:
        optimizer = _optim.SGD(params, lr=0.01)
    elif not isinstance(optimizer, _optim.Optimizer) and not callable(getattr(optimizer, "step", None)):
        optimizer = _optim.get(optimizer, params)
    model.optimizer = optimizer


def ensure_training(model, optimizer=None, loss=None):
    """fit's and train_step's rule: given ones replace the compiled ones; with none compiled
    and none given, the defaults are compiled (once: later calls keep them).

    Example:

        >>> from lamina import models, training
        >>> model = models.mlp(); training.ensure_training(model); first = model.optimizer
        >>> training.ensure_training(model); model.optimizer is first
        True
    """
    if optimizer is not None or loss is not None or model.optimizer is None or model.loss is None:
        set_training(model, model.optimizer if optimizer is None else optimizer,
                     model.loss if loss is None else loss)


# -- one step --------------------------------------------------------------------------------------
def train_step(model, xb, yb, keep_previous=False, before_update=None):
    """``model.train_step``: forward in training mode, the loss, backward, the optimiser's
    step; returns (loss, output). See ``Sequential.train_step``.

    Example:

        >>> import numpy as np
        >>> from lamina import nn, training
        >>> model = nn.Sequential(nn.Dense(4, 3)).compile(optimizer="sgd", loss="cross_entropy")
        >>> loss, out = training.train_step(model, np.ones((8, 4), np.float32), np.zeros(8, np.int64))
        >>> out.shape, loss > 0
        ((8, 3), True)
    """
    ensure_training(model)
    optimizer = model.optimizer
    if getattr(optimizer, "requires_closure", False):
        return closure_step(model, xb, yb, keep_previous, before_update)
    be = model.be
    out = model.forward_workspace(_backend.move(xb, be), True)
    lval, grad = apply_loss(model.loss, out, yb, be)
    synchronize = getattr(optimizer, "synchronize", None)
    if synchronize is None and not math.isfinite(lval):
        raise NonFiniteLossError(f"non-finite loss ({lval})", None, None, lval)
    model.zero_grad()  # marks the gradients zero: the first backward write overwrites them
    model.backward(grad, False)
    if synchronize is not None:
        total = synchronize(lval, len(xb))
        if not math.isfinite(total):
            raise NonFiniteLossError(f"non-finite loss ({total})", None, None, total)
    if before_update is not None:
        before_update()
    if keep_previous:
        optimizer.step(keep_previous=True)
    else:
        optimizer.step()
    return lval, out


def closure_step(model, xb, yb, keep_previous, before_update):
    """train_step for an optimiser whose step takes a closure (``requires_closure``, e.g.
    SaddleFreeNewton): the closure re-runs zero_grad, forward (training mode), the loss and
    backward on this minibatch and returns the loss. Its first call is at the current
    weights: a non-finite loss there raises NonFiniteLossError before the optimiser has
    changed anything, and ``before_update()`` runs after it. Returns (that first loss, a
    copy of that first output), as train_step does for the other optimisers.

    Example:

        >>> import numpy as np
        >>> from lamina import nn, optim, training
        >>> model = nn.Sequential(nn.Dense(4, 2)).to("numpy").astype(np.float64)
        >>> model = model.compile(optimizer=optim.SaddleFreeNewton(model.parameters(), krylov_dim=2), loss="mse")
        >>> loss, out = training.closure_step(model, np.ones((3, 4)), np.zeros((3, 2)), False, None)
        >>> out.shape
        (3, 2)
    """
    be = model.be
    xb = _backend.move(xb, be)
    first = []

    def closure():
        model.zero_grad()
        out = model.forward_workspace(xb, True)
        lval, grad = apply_loss(model.loss, out, yb, be)
        if not first:
            if not math.isfinite(lval):
                raise NonFiniteLossError(f"non-finite loss ({lval})", None, None, lval)
            first.append((lval, be.copy(out)))
            if before_update is not None:
                before_update()
        if math.isfinite(lval):  # (a line search may try points where it is not)
            model.backward(grad, False)
        return lval

    if keep_previous:
        model.optimizer.step(closure, keep_previous=True)
    else:
        model.optimizer.step(closure)
    if not first:
        raise RuntimeError(f"{type(model.optimizer).__name__}.step(closure) never called the closure")
    return first[0]


# -- the undo of a non-finite step -------------------------------------------------------------
_UNDOABLE_STEPS: dict = {}  # an optimiser class's step function -> whether it takes keep_previous


def step_keeps_previous(step) -> bool:
    """Whether an optimiser's ``step`` takes ``keep_previous`` (cached per class).

    Example:

        >>> from lamina import nn, optim, training
        >>> training.step_keeps_previous(optim.SGD(nn.Dense(2, 1).parameters()).step)
        True
    """
    func = getattr(step, "__func__", None)
    if func is not None:
        known = _UNDOABLE_STEPS.get(func)
        if known is None:
            known = _UNDOABLE_STEPS[func] = "keep_previous" in inspect.signature(step).parameters
        return known
    return "keep_previous" in inspect.signature(step).parameters


class LastGoodWeights:
    """What fit restores after a non-finite loss: the weights and the optimiser state from
    before the latest update. With lamina's optimisers the step keeps its previous arrays (no
    copies, see Optimizer.step(keep_previous=True)); an optimiser whose step cannot keep them
    gets a copy of the trainable parameters before every update (the weights only).

    Example:

        >>> import numpy as np
        >>> from lamina import nn, optim, training
        >>> layer = nn.Dense(2, 1); opt = optim.SGD(layer.parameters(), lr=0.1)
        >>> good = training.LastGoodWeights(layer.parameters(), opt)
        >>> w = layer.weight.numpy(); layer.weight.grad = np.ones((1, 2), np.float32)
        >>> opt.step(keep_previous=good.undoable); good.restore(); good.close()
        >>> bool(np.array_equal(layer.weight.numpy(), w))
        True
    """

    def __init__(self, params, optimizer):
        from . import optim as _optim

        self.params, self.optimizer, self.trainable, self.copies = params, optimizer, [], []
        self.undoable = callable(getattr(optimizer, "undo", None)) and step_keeps_previous(optimizer.step)
        # lamina's own optimisers can take fit's last update so that it ends in the parameters'
        # own arrays (Optimizer.settle_next_step): drop_previous then copies nothing.
        self.settles = self.undoable and isinstance(optimizer, _optim.Optimizer)
        self.final = False  # whether the epoch under way is fit's last

    def follow_trainable(self):
        """Copies of the trainable parameters when the step cannot keep them (again after a
        callback froze or unfroze some).

        Example:

            >>> from lamina import nn, training
            >>> class Plain:   # an optimiser whose step cannot keep the previous arrays
            ...     lr = 0.1
            ...     def step(self): pass
            >>> layer = nn.Dense(2, 1); good = training.LastGoodWeights(layer.parameters(), Plain())
            >>> good.follow_trainable(); len(good.copies)
            2
        """
        if self.undoable:
            return
        now = [p for p in self.params if p.trainable]
        if list(map(id, now)) != list(map(id, self.trainable)):
            self.trainable = now
            self.copies = [p.be.copy(p.data) for p in now]

    def keep(self):
        """Before an update an optimiser cannot undo: the weights into the copies.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, training
            >>> class Plain:
            ...     lr = 0.1
            ...     def step(self): pass
            >>> layer = nn.Dense(2, 1); good = training.LastGoodWeights(layer.parameters(), Plain())
            >>> good.follow_trainable(); good.keep(); layer.weight.assign(np.zeros((1, 2))); good.restore()
            >>> bool(layer.weight.numpy().any())
            True
        """
        for c, p in zip(self.copies, self.trainable):
            p.be.copy(p.data, out=c)

    def restore(self):
        """The weights (and, where it can, the optimiser's state) from before the latest update.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim, training
            >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32)
            >>> opt = optim.SGD([p], lr=0.5); good = training.LastGoodWeights([p], opt)
            >>> opt.step(keep_previous=True); p.numpy(), (good.restore(), p.numpy())[1]
            (array([0.5, 0.5], dtype=float32), array([1., 1.], dtype=float32))
        """
        if self.undoable:
            self.optimizer.undo()
        for c, p in zip(self.copies, self.trainable):
            p.be.copy(c, out=p.data)

    def close(self):
        """The end of fit: the parameters back in their own arrays, the spares freed.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim, training
            >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32); own = p.data
            >>> opt = optim.SGD([p], lr=0.5); good = training.LastGoodWeights([p], opt)
            >>> opt.step(keep_previous=True); p.data is own, (good.close(), p.data is own)[1]
            (False, True)
        """
        if self.undoable:
            if self.settles:
                self.optimizer.settle_next_step(False)
            self.optimizer.drop_previous()


# -- fit -------------------------------------------------------------------------------------------
class _Run:
    """One fit's settings: the data, the schedule, the callbacks, the output and, distributed,
    the shard of this rank."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _check_verbose(verbose):
    if verbose == "auto":  # Keras's default
        verbose = 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return verbose


def _split_validation(X, y, validation_split, validation_data):
    """(X, y, validation_data) with the last ``ceil(split * N)`` samples held out."""
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
    return X, y, validation_data


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _distribute(model, run, n, callbacks):
    """Data-parallel fit: the optimiser wrapped, the seed shared, this rank's shard; returns the
    callbacks this rank runs."""
    from . import distributed as _dist

    rank, world = _dist.init()
    if not isinstance(model.optimizer, _dist.DistributedOptimizer):
        model.optimizer = _dist.DistributedOptimizer(model.optimizer)  # rank 0's weights everywhere
    run.base_seed = _dist.shared_seed(run.base_seed)
    run.shard = _dist.Shard(n, run.batch_size, rank, world)
    run.local_batch, run.verbose = run.shard.local_batch, run.verbose if rank == 0 else 0
    return [cb for cb in callbacks if rank == 0 or not getattr(cb, "rank_zero_only", False)]


def fit(model, X, y, *, epochs=1, batch_size=32, optimizer=None, loss=None, validation_data=None,
        validation_split=0.0, shuffle=True, seed=None, callbacks=(), verbose=1, initial_epoch=0,
        distributed=False):
    """``model.fit`` (every argument as there): mini-batch training; returns a History.

    Example:

        >>> import numpy as np
        >>> from lamina import nn, training
        >>> model = nn.Sequential(nn.Dense(4, 2))
        >>> h = training.fit(model, np.ones((8, 4), np.float32), np.zeros(8, np.int64), epochs=2, verbose=0)
        >>> h.epochs
        [1, 2]
    """
    from .nn.batches import Batches

    verbose = _check_verbose(verbose)
    ensure_training(model, optimizer, loss)
    X, y, validation_data = _split_validation(X, y, validation_split, validation_data)
    be, dtype = model.be, model.dtype or np.dtype(np.float32)
    if not _backend.supports(be, dtype):
        raise ValueError(f"the model's parameters are {dtype}, which backend {be.name!r} does not support")
    run = _Run(base_seed=np.random.SeedSequence().entropy if seed is None else int(seed), shard=None,
               batch_size=int(batch_size), local_batch=batch_size, verbose=verbose, epochs=int(epochs),
               initial_epoch=int(initial_epoch), shuffle=shuffle, validation_data=validation_data)
    if distributed:
        callbacks = _distribute(model, run, len(X), callbacks)
    run.data = Batches(X, prepare_target(model.loss, y, dtype), run.local_batch, be, dtype)
    if run.data.n == 0:
        raise ValueError("fit needs at least one sample")
    run.cbs = list(callbacks)
    for cb in run.cbs:
        if hasattr(cb, "set_model"):
            cb.set_model(model)
    run.use_bar = run.verbose == 1 and _isatty(sys.stderr)
    run.lines = run.verbose == 2 or (run.verbose == 1 and not run.use_bar)
    return _fit(model, run)


def _fit(model, run):
    """fit once the run is set up: the callbacks around the epochs, the undo closed whatever happens."""
    good = LastGoodWeights(model.parameters(), model.optimizer)
    history = History()
    history.epochs = []
    model.stop_training = False
    if run.shard is not None:
        from . import distributed as _dist
        guard = _dist.abort_on_error()
    else:
        guard = contextlib.nullcontext()
    with guard:
        call_callbacks(run.cbs, "on_train_begin", {})
        try:
            _fit_epochs(model, run, good, history)
        finally:
            good.close()  # the parameters are back in their own arrays, whatever happened
        call_callbacks(run.cbs, "on_train_end", {})
    return history


def _progress_bar(run, epoch):
    if not run.use_bar:
        return None
    from tqdm import tqdm
    total = len(run.data) if run.shard is None else run.shard.steps
    return tqdm(total=total, desc=f"epoch {epoch + 1}/{run.epochs}", unit="batch", leave=True, file=sys.stderr,
                dynamic_ncols=True)


def _validate(model, run, logs):
    if run.validation_data is None:
        return
    if run.shard is None:
        evaluate_fn = model.evaluate
    else:
        from . import distributed as _dist

        def evaluate_fn(*args, **kw):
            return _dist.evaluate(model, *args, **kw)
    vl, va = evaluate_fn(*run.validation_data, loss=model.loss, batch_size=max(int(run.local_batch), 256))
    logs["val_loss"], logs["val_accuracy"] = vl, va


def _fit_epochs(model, run, good, history):
    batch_cbs = [cb for cb in run.cbs if hasattr(cb, "on_batch_end")]
    for epoch in range(run.initial_epoch, run.epochs):
        call_callbacks(run.cbs, "on_epoch_begin", epoch, {})
        order = np.random.default_rng([run.base_seed, epoch]).permutation(run.data.n) if run.shuffle else None
        good.follow_trainable()  # (callbacks may freeze or unfreeze parameters between epochs)
        good.final = run.shard is None and epoch == run.epochs - 1
        bar = _progress_bar(run, epoch)
        try:
            logs = _fit_epoch(model, run, order, epoch, good, bar, batch_cbs)
            _validate(model, run, logs)
        except BaseException:
            if bar is not None:
                bar.close()
            raise
        _report_epoch(run, epoch, bar, logs)
        call_callbacks(run.cbs, "on_epoch_end", epoch, logs)
        # (after the callbacks, as Keras's History: what they add to the logs, e.g. the learning
        # rate of LearningRateScheduler, is kept)
        history.append(logs)
        history.epochs.append(epoch + 1)
        if run.shard is not None:
            from . import distributed as _dist
            model.stop_training = _dist.any_rank(model.stop_training)
        if model.stop_training:
            break


def _report_epoch(run, epoch, bar, logs):
    if bar is not None:
        bar.set_postfix(_postfix(logs), refresh=True)
        bar.close()
    elif run.lines:
        print(f"epoch {epoch + 1}/{run.epochs} - " + " - ".join(f"{k} {v}" for k, v in _postfix(logs).items()),
              flush=True)


def _post_progress(bar, bar_sum, bar_seen, t0, last_post):
    """One step on the progress bar; its loss and images/s at most every 0.25 s. Returns when
    they were last posted."""
    bar.update(1)
    now = time.perf_counter()
    if now - last_post > 0.25:
        last_post = now
        bar.set_postfix(loss=f"{bar_sum / bar_seen:.4f}", img_s=f"{bar_seen / (now - t0):.0f}", refresh=False)
    return last_post


def _step_without_samples(model, keep, before):
    """Distributed: this rank holds no sample of the (last) step, but takes part in it."""
    from . import distributed as _dist
    return _dist.step_without_samples(model, keep, before), None


def _fit_epoch(model, run, order, epoch, good, bar, batch_cbs):
    """One epoch of ``fit``: every minibatch through ``train_step``; returns the epoch's logs.
    Distributed (``run.shard``): this rank's part of every global batch; the logs, the batch
    callbacks and the bar see the loss and the sample counts of all ranks."""
    shard, data, optimizer = run.shard, run.data, model.optimizer
    count_correct = getattr(model.loss, "count_correct", lambda out, t: None)
    steps = len(data) if shard is None else shard.steps
    batches = data.iterate(order) if shard is None else shard.batches(data, order)
    t0 = last_post = time.perf_counter()
    loss_sum, correct, judged, bar_sum, bar_seen = 0.0, 0, 0, 0.0, 0
    # fit's very last update is never undone: the optimiser may end it in the own arrays
    settle_at = steps - 1 if good.settles and good.final else -1
    keep, before = good.undoable, None if good.undoable else good.keep
    for b, (xb, yb) in enumerate(batches):
        if b == settle_at:
            optimizer.settle_next_step()
        try:
            if xb is None:
                lval, out = _step_without_samples(model, keep, before)
            else:
                lval, out = model.train_step(xb, yb, keep, before)
        except NonFiniteLossError as e:
            good.restore()
            raise NonFiniteLossError(
                f"non-finite loss ({e.loss}) at epoch {epoch + 1}, batch {b + 1} of {steps}: "
                "training stopped; the model and its optimiser keep their last good state (from before "
                "the update that led to this loss). Try a lower learning rate.", epoch + 1, b + 1, e.loss) from None
        m = 0 if xb is None else len(xb)
        if m:
            loss_sum += lval * m
            cc = count_correct(out, yb)
            if cc is not None:
                correct += cc[0]
                judged += cc[1]
        if shard is not None:  # the step's loss over every rank's samples
            lval, m = optimizer.last_loss, optimizer.last_count
        bar_sum, bar_seen = bar_sum + lval * m, bar_seen + m
        for cb in batch_cbs:
            cb.on_batch_end(b, {"loss": lval, "size": m})
        if bar is not None:
            last_post = _post_progress(bar, bar_sum, bar_seen, t0, last_post)
    return _epoch_logs(model, run, t0, loss_sum, correct, judged)


def _epoch_logs(model, run, t0, loss_sum, correct, judged):
    dt = time.perf_counter() - t0
    n = run.data.n
    logs = {"loss": loss_sum / n, "accuracy": correct / judged if judged else None,
            "time": dt, "images_per_s": n / dt if dt > 0 else float("inf"), "lr": model.optimizer.lr}
    if run.shard is not None:
        from . import distributed as _dist
        _dist.average_epoch_logs(logs, n, loss_sum, correct, judged)
    return logs


def _postfix(logs):
    out = {}
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if logs.get(k) is not None:
            out[k] = f"{logs[k]:.4f}"
    out["img/s"] = f"{logs['images_per_s']:.0f}"
    out["time"] = f"{logs['time']:.1f}s"
    return out


# -- evaluate and predict --------------------------------------------------------------------------
def evaluate(model, X, y, batch_size=256, loss=None):
    """``model.evaluate``: (mean loss, accuracy or None) over X, y in inference mode.

    Example:

        >>> import numpy as np
        >>> from lamina import nn, training
        >>> loss, accuracy = training.evaluate(nn.Sequential(nn.Dense(4, 3)), np.zeros((10, 4), np.float32),
        ...                                    np.zeros(10, np.int64))
        >>> round(loss, 4), accuracy
        (1.0986, 1.0)
    """
    from .nn.batches import Batches

    loss_fn = _losses.get(loss if loss is not None else (model.loss or "cross_entropy"))
    be = model.be
    dtype = model.dtype or np.dtype(np.float32)
    data = Batches(X, prepare_target(loss_fn, y, dtype), batch_size, be, dtype)
    count_correct = getattr(loss_fn, "count_correct", lambda out, t: None)
    loss_sum, correct, judged = 0.0, 0, 0
    for xb, yb in data:
        out = model.forward_workspace(xb, False)
        lval, _ = apply_loss(loss_fn, out, yb, be)
        loss_sum += lval * len(xb)
        cc = count_correct(out, yb)
        if cc is not None:
            correct += cc[0]
            judged += cc[1]
    n = data.n
    return (loss_sum / n if n else float("nan")), (correct / judged if judged else None)


def predict(model, X, batch_size=256):
    """``model.predict``: the outputs for X (inference mode) as one new host array (N, ...).

    Example:

        >>> import numpy as np
        >>> from lamina import models, training
        >>> training.predict(models.mlp(), np.zeros((3, 784), np.float32)).shape
        (3, 10)
    """
    from .nn.batches import Batches

    be = model.be
    data = Batches(X, None, batch_size, be, model.dtype or np.dtype(np.float32))
    result, lo = None, 0
    for xb, _ in data:
        out = be.to_numpy(model.forward_workspace(xb, False))
        if result is None:
            result = np.empty((data.n,) + out.shape[1:], dtype=out.dtype)
        result[lo: lo + len(out)] = out
        lo += len(out)
    if result is None:
        raise ValueError("predict needs at least one sample")
    return result
