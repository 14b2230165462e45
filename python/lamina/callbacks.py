"""Training callbacks with Keras's names and semantics, for ``Sequential.fit(callbacks=[...])``.

    EarlyStopping           stop when a monitored value stops improving (and restore the best weights)
    ModelCheckpoint         save the model (atomically; the optimiser state when asked) every
                            epoch, every N batches, or only when the monitored value improves
    CSVLogger               one CSV row per epoch, on disk at once (survives an interrupted run)
    LearningRateScheduler   the learning rate of each epoch from schedule(epoch, lr)

They use fit's callback protocol (``set_model``, ``on_train_begin``, ``on_epoch_begin``,
``on_batch_end``, ``on_epoch_end``, ``on_train_end``, ``model.stop_training``). Under
``fit(distributed=True)`` the ones that write files (``ModelCheckpoint``, ``CSVLogger``) are
marked ``rank_zero_only`` and run on rank 0 alone; ``EarlyStopping`` and
``LearningRateScheduler`` run on every rank (the logs they read are averaged over the ranks, so
every rank decides alike and the weights stay the same everywhere).

The monitored value is a key of the epoch's logs: "loss", "accuracy", and with validation data
"val_loss", "val_accuracy". ``mode="auto"`` minimises a loss and maximises an accuracy.
"""
from __future__ import annotations

import csv
import inspect
import math
import os
import warnings

import numpy as np

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "CSVLogger", "LearningRateScheduler"]


class Callback:
    """Base class of the callbacks: ``model`` (set by fit through ``set_model``) and every hook
    of fit's protocol as a method that does nothing. A subclass overrides the hooks it needs;
    ``rank_zero_only = True`` makes it run on rank 0 alone under ``fit(distributed=True)``.

    Example:

        >>> import numpy as np
        >>> from lamina import callbacks, nn
        >>> class Count(callbacks.Callback):
        ...     epochs = 0
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         self.epochs += 1
        >>> model = nn.Sequential(nn.Dense(4, 2)); count = Count()
        >>> _ = model.fit(np.zeros((8, 4), np.float32), np.zeros(8, np.int64), epochs=3, verbose=0, callbacks=[count])
        >>> count.epochs, count.model is model
        (3, True)
    """

    rank_zero_only = False

    def __init__(self):
        self.model = None

    def set_model(self, model):
        """Called by fit before training with the model being trained (kept as ``model``).

        Example:

            >>> from lamina import callbacks, nn
            >>> cb = callbacks.Callback(); m = nn.Sequential(); cb.set_model(m); cb.model is m
            True
        """
        self.model = model

    def on_train_begin(self, logs=None):
        """Called once when training begins (``logs`` is an empty dict).

        Example:

            >>> from lamina import callbacks
            >>> callbacks.Callback().on_train_begin({})
        """

    def on_epoch_begin(self, epoch, logs=None):
        """Called before each epoch; ``epoch`` counts from 0 (from ``initial_epoch`` on a resume).

        Example:

            >>> from lamina import callbacks
            >>> callbacks.Callback().on_epoch_begin(0, {})
        """

    def on_batch_end(self, batch, logs=None):
        """Called after each minibatch with ``{"loss": the batch's loss, "size": its samples}``.

        Example:

            >>> from lamina import callbacks
            >>> callbacks.Callback().on_batch_end(0, {"loss": 0.5, "size": 32})
        """

    def on_epoch_end(self, epoch, logs=None):
        """Called after each epoch with the epoch's logs ("loss", "accuracy", "val_loss", ...).

        Example:

            >>> from lamina import callbacks
            >>> callbacks.Callback().on_epoch_end(0, {"loss": 0.5})
        """

    def on_train_end(self, logs=None):
        """Called once when training ends (not when an exception ends it).

        Example:

            >>> from lamina import callbacks
            >>> callbacks.Callback().on_train_end({})
        """


def _monitor_op(monitor, mode, who):
    """np.less (lower is better) or np.greater for ``monitor`` under ``mode``."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        name = monitor[4:] if monitor.startswith("val_") else monitor
        if name == "loss" or name.endswith("_loss") or name.endswith("error"):
            mode = "min"
        elif name in ("accuracy", "acc") or name.endswith("_accuracy") or name.endswith("_acc"):
            mode = "max"
        else:
            raise ValueError(f"{who}: cannot tell whether {monitor!r} should be minimised or maximised: pass "
                             "mode='min' or mode='max'")
    return np.less if mode == "min" else np.greater


def _value(logs, monitor, who):
    """The monitored value of ``logs`` as a float, or None (with a warning naming the keys there are)."""
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(f"{who} conditioned on {monitor!r}, which is not in the logs (there are: "
                      f"{', '.join(sorted(logs or {}))}); pass validation_data to fit for the val_ keys",
                      RuntimeWarning, stacklevel=3)
        return None
    return float(value)


def _snapshot(model):
    """Host copies of every parameter and buffer of ``model``: [(Parameter or Buffer, array)]."""
    return [(p, p.numpy()) for _, p in model.named_parameters()] + [(b, b.numpy()) for _, b in model.named_buffers()]


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved for ``patience`` epochs (Keras's
    semantics).

    An epoch improves on the best value so far when it is lower by more than ``min_delta``
    (``mode="min"``; higher for "max"; "auto" minimises losses and maximises accuracies). After
    ``patience`` epochs in a row without improvement (``wait`` reaches ``patience``; never on
    the first epoch) ``model.stop_training`` is set and fit ends after that epoch; the epoch is
    ``stopped_epoch``. ``baseline``: the wait restarts only on epochs that also beat it, so
    while the baseline is not beaten, the first epoch without improvement after ``patience``
    epochs stops training. Epochs before
    ``start_from_epoch`` are not counted. ``restore_best_weights``: at the end of training the
    model gets back the parameters and buffers of its best epoch (``best_epoch``; the first
    counted epoch's when none improved). Runs on every rank under ``fit(distributed=True)``.
    ValueError for a negative ``patience`` or a ``mode`` that is not "auto", "min" or "max".

    Example (the loss cannot improve: zero learning rate):

        >>> import numpy as np
        >>> from lamina import callbacks, nn, optim
        >>> model = nn.Sequential(nn.Dense(4, 2))
        >>> stop = callbacks.EarlyStopping(monitor="loss", patience=2)
        >>> history = model.fit(np.ones((8, 4), np.float32), np.zeros(8, np.int64), epochs=10, verbose=0,
        ...                     optimizer=optim.SGD(model.parameters(), lr=0.0), callbacks=[stop])
        >>> len(history["loss"]), stop.stopped_epoch, stop.best_epoch
        (3, 2, 0)
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if int(patience) != patience or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.monitor = str(monitor)
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.verbose = int(verbose)
        self.mode = mode
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.monitor_op = _monitor_op(self.monitor, mode, "EarlyStopping")
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, value, reference):
        if math.isnan(value):  # a NaN is never the best (it would compare false with all after it)
            return False
        if reference is None:
            return True
        delta = -self.min_delta if self.monitor_op is np.less else self.min_delta
        return bool(self.monitor_op(value - delta, reference))

    def on_train_begin(self, logs=None):
        """Starts afresh (the callback can be reused for another fit).

        Example:

            >>> from lamina import callbacks
            >>> cb = callbacks.EarlyStopping(); cb.wait = 3; cb.on_train_begin(); cb.wait
            0
        """
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        """Compares the epoch's monitored value with the best; sets ``model.stop_training`` when
        ``patience`` is exhausted.

        Example:

            >>> from lamina import callbacks, nn
            >>> cb = callbacks.EarlyStopping(monitor="loss", patience=1); cb.set_model(nn.Sequential())
            >>> for epoch, loss in enumerate([1.0, 0.5, 0.7]):
            ...     cb.on_epoch_end(epoch, {"loss": loss})
            >>> cb.model.stop_training, cb.best, cb.stopped_epoch
            (True, 0.5, 2)
        """
        current = _value(logs, self.monitor, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = _snapshot(self.model), epoch  # the best so far: the first
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.model)
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        """With ``restore_best_weights``, puts the best epoch's parameters and buffers back.

        Example:

            >>> from lamina import callbacks
            >>> callbacks.EarlyStopping().on_train_end()
        """
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", flush=True)
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.", flush=True)
            for target, values in self.best_weights:
                target.assign(values)


class ModelCheckpoint(Callback):
    """Saves the model with ``lamina.save`` (atomically: a reader never sees half a file)
    after every epoch (``save_freq="epoch"``) or every ``save_freq`` batches (an int).

    ``filepath`` may hold ``{epoch}`` (from 1) and any key of the logs, formatted as
    ``str.format`` does (``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``); ``{batch}`` (from
    1) with an int ``save_freq``. ``save_best_only``: save only when ``monitor`` beats the best
    value so far (``best``, starting from ``initial_value_threshold``; ``mode`` as for
    EarlyStopping), so a fixed ``filepath`` always holds the best model. ``include_optimizer``:
    the file is a checkpoint (``lamina.load_checkpoint``) with the optimiser's state, the
    number of completed epochs, and ``scheduler``'s and ``extra``'s when given, from which
    training resumes exactly; otherwise it holds the model (``lamina.load``). Rank 0 alone
    saves under ``fit(distributed=True)``. ValueError for a bad ``save_freq`` or ``mode``, or a
    ``scheduler`` without ``include_optimizer``; KeyError naming a ``filepath`` key that the
    logs lack.

    Example:

        >>> import os, tempfile, numpy as np, lamina
        >>> from lamina import callbacks, nn
        >>> folder = tempfile.mkdtemp()
        >>> ckpt = callbacks.ModelCheckpoint(os.path.join(folder, "m-{epoch}.safetensors"), monitor="loss")
        >>> model = nn.Sequential(nn.Dense(4, 2))
        >>> _ = model.fit(np.ones((8, 4), np.float32), np.zeros(8, np.int64), epochs=2, verbose=0, callbacks=[ckpt])
        >>> sorted(os.listdir(folder))
        ['m-1.safetensors', 'm-2.safetensors']
    """

    rank_zero_only = True

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, mode="auto",
                 save_freq="epoch", initial_value_threshold=None, include_optimizer=False, scheduler=None,
                 extra=None):
        super().__init__()
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or an int >= 1, got {save_freq!r}")
        if scheduler is not None and not include_optimizer:
            raise ValueError("ModelCheckpoint: saving a scheduler needs include_optimizer=True")
        self.filepath = os.fspath(filepath)
        self.monitor = str(monitor)
        self.verbose = int(verbose)
        self.save_best_only = bool(save_best_only)
        self.mode = mode
        self.save_freq = save_freq
        self.include_optimizer = bool(include_optimizer)
        self.scheduler, self.extra = scheduler, extra
        self.monitor_op = _monitor_op(self.monitor, mode, "ModelCheckpoint")
        self.best = None if initial_value_threshold is None else float(initial_value_threshold)
        self._epoch = 0
        self._batches_since_save = 0

    def on_epoch_begin(self, epoch, logs=None):
        """Notes the epoch (for ``{epoch}`` in batch-level saves).

        Example:

            >>> from lamina import callbacks
            >>> cb = callbacks.ModelCheckpoint("m.safetensors"); cb.on_epoch_begin(4); cb._epoch
            4
        """
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        """With an int ``save_freq``: saves after every ``save_freq``-th batch (counted across
        epochs), monitoring the batch's logs.

        Example:

            >>> from lamina import callbacks
            >>> callbacks.ModelCheckpoint("m.safetensors").on_batch_end(0, {"loss": 1.0})
        """
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._epoch, batch, logs, completed=self._epoch)

    def on_epoch_end(self, epoch, logs=None):
        """With ``save_freq="epoch"``: saves (or, with ``save_best_only``, saves when the
        monitored value improved).

        Example:

            >>> import os, tempfile, lamina
            >>> from lamina import callbacks, nn
            >>> path = os.path.join(tempfile.mkdtemp(), "best.safetensors")
            >>> cb = callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=True)
            >>> cb.set_model(nn.Sequential(nn.Dense(2, 1)))
            >>> cb.on_epoch_end(0, {"loss": 1.0}); cb.on_epoch_end(1, {"loss": 2.0}); cb.best
            1.0
        """
        if self.save_freq == "epoch":
            self._save(epoch, None, logs, completed=epoch + 1)

    def _filepath(self, epoch, batch, logs):
        keys = {k: v for k, v in (logs or {}).items()}
        keys["epoch"] = epoch + 1
        if batch is not None:
            keys["batch"] = batch + 1
        try:
            return self.filepath.format(**keys)
        except KeyError as e:
            raise KeyError(f"ModelCheckpoint: filepath {self.filepath!r} names {e}, which is not in the logs "
                           f"(there are: {', '.join(sorted(keys))})") from None

    def _save(self, epoch, batch, logs, completed):
        from . import io

        path = self._filepath(epoch, batch, logs)
        if self.save_best_only:
            current = _value(logs, self.monitor, "ModelCheckpoint")
            if current is None or math.isnan(current):  # (a NaN is never the best)
                return
            if self.best is not None and not self.monitor_op(current, self.best):
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}", flush=True)
                return
            if self.verbose > 0:
                before = "inf" if self.best is None else f"{self.best:.5f}"
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {before} to {current:.5f}, saving model "
                      f"to {path}", flush=True)
            self.best = current
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}", flush=True)
        if self.include_optimizer:
            io.save(self.model, path, optimizer=self.model.optimizer, scheduler=self.scheduler, epoch=completed,
                    extra=self.extra)
        else:
            io.save(self.model, path)


class CSVLogger(Callback):
    """Streams the epoch logs to a CSV file: a header (``epoch`` and the sorted log keys), then
    one row per epoch (``epoch`` from 0, as Keras writes it; "NA" for a missing or None value),
    each flushed to disk (``os.fsync``) as it is written, so an interrupted run leaves every
    finished epoch in the file.

    ``separator``: the field delimiter. ``append=True`` continues an existing file (a resumed
    run): the header is not written again and the rows keep its columns; an incomplete last
    line (a run killed while writing it) is dropped first. ``append=False`` starts the file
    afresh. Rank 0 alone writes under ``fit(distributed=True)``.

    Example:

        >>> import os, tempfile, numpy as np
        >>> from lamina import callbacks, nn
        >>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
        >>> model = nn.Sequential(nn.Dense(4, 2))
        >>> _ = model.fit(np.ones((8, 4), np.float32), np.zeros(8, np.int64), epochs=2, verbose=0,
        ...               callbacks=[callbacks.CSVLogger(path)])
        >>> rows = [line.split(",") for line in open(path).read().splitlines()]
        >>> rows[0][:4], [row[0] for row in rows[1:]]
        (['epoch', 'accuracy', 'images_per_s', 'loss'], ['0', '1'])
    """

    rank_zero_only = True

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = str(separator)
        self.append = bool(append)
        self.keys = None
        self.writer = None
        self.csv_file = None
        self._write_header = True

    def on_train_begin(self, logs=None):
        """Opens the file (``append``: after its last complete row, keeping its header).

        Example:

            >>> import os, tempfile
            >>> from lamina import callbacks
            >>> cb = callbacks.CSVLogger(os.path.join(tempfile.mkdtemp(), "log.csv")); cb.on_train_begin()
            >>> cb.on_train_end()
        """
        self._close()
        self.keys, self.writer, self._write_header = None, None, True
        if self.append and os.path.exists(self.filename):
            with open(self.filename, "rb+") as f:
                data = f.read()
                end = data.rfind(b"\n") + 1  # after the last complete line
                if end < len(data):
                    f.truncate(end)
            header = data[:end].split(b"\n", 1)[0].decode("utf-8").rstrip("\r") if end else ""
            if header:
                fields = next(csv.reader([header], delimiter=self.sep))
                self.keys = fields[1:] if fields and fields[0] == "epoch" else None
                self._write_header = False
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")

    def on_epoch_end(self, epoch, logs=None):
        """Writes the epoch's row and flushes it to disk.

        Example:

            >>> import os, tempfile
            >>> from lamina import callbacks
            >>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
            >>> cb = callbacks.CSVLogger(path); cb.on_train_begin(); cb.on_epoch_end(0, {"loss": 0.5})
            >>> open(path).read().splitlines()
            ['epoch,loss,val_loss', '0,0.5,NA']
            >>> cb.on_train_end()
        """
        logs = logs or {}
        if self.csv_file is None:
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs)
            if not any(k.startswith("val_") for k in self.keys):  # (as Keras: room for validation keys)
                self.keys += ["val_" + k for k in self.keys]
        if self.writer is None:
            self.writer = csv.writer(self.csv_file, delimiter=self.sep, lineterminator="\n")
            if self._write_header:
                self.writer.writerow(["epoch", *self.keys])
        self.writer.writerow([epoch, *(_csv_value(logs.get(k)) for k in self.keys)])
        self.csv_file.flush()
        os.fsync(self.csv_file.fileno())

    def on_train_end(self, logs=None):
        """Closes the file.

        Example:

            >>> from lamina import callbacks
            >>> callbacks.CSVLogger("log.csv").on_train_end()
        """
        self._close()
        self.writer = None

    def _close(self):
        if self.csv_file is not None:
            self.csv_file.close()
            self.csv_file = None


def _csv_value(v):
    if v is None:
        return "NA"
    if isinstance(v, (np.ndarray, list, tuple)) and np.ndim(v) > 0:
        return "[" + ", ".join(map(str, np.ravel(v))) + "]"
    return v


class LearningRateScheduler(Callback):
    """Sets the optimiser's learning rate before every epoch to ``schedule(epoch, lr)`` (epoch
    from 0, lr the current rate; a one-argument ``schedule(epoch)`` works too). The rate of
    each epoch is in the logs as "lr" (and "learning_rate", Keras's key, for the callbacks
    after this one). ``verbose=1`` prints each change. Runs on every rank under
    ``fit(distributed=True)``. ValueError when ``schedule`` returns something that is not a
    finite number >= 0.

    Example (halve the rate every epoch):

        >>> import numpy as np
        >>> from lamina import callbacks, nn, optim
        >>> model = nn.Sequential(nn.Dense(4, 2))
        >>> history = model.fit(np.ones((8, 4), np.float32), np.zeros(8, np.int64), epochs=3, verbose=0,
        ...                     optimizer=optim.SGD(model.parameters(), lr=0.4),
        ...                     callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: lr / 2 if epoch else lr)])
        >>> history["lr"]
        [0.4, 0.2, 0.1]
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = int(verbose)
        self._two_args = _takes_two(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        """Sets ``model.optimizer.lr`` to the schedule's rate for ``epoch``.

        Example:

            >>> from lamina import callbacks, nn, optim
            >>> model = nn.Sequential(nn.Dense(2, 1)); model.compile(optimizer=optim.SGD(model.parameters(), lr=1.0))
            Sequential(...)
            >>> cb = callbacks.LearningRateScheduler(lambda epoch: 0.1 * (epoch + 1)); cb.set_model(model)
            >>> cb.on_epoch_begin(2); model.optimizer.lr
            0.30000000000000004
        """
        opt = getattr(self.model, "optimizer", None)
        if opt is None or not hasattr(opt, "lr"):
            raise ValueError("LearningRateScheduler: the model has no optimizer with an lr (compile it first)")
        lr = float(opt.lr)
        new = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        if isinstance(new, (bool, np.bool_)) or not isinstance(new, (int, float, np.integer, np.floating)) \
                or not math.isfinite(new) or new < 0:
            raise ValueError(f"LearningRateScheduler: the schedule must return a finite float >= 0, got {new!r} "
                             f"for epoch {epoch}")
        opt.lr = float(new)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(new)}.", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        """Adds "learning_rate" (the epoch's rate) to the logs.

        Example:

            >>> from lamina import callbacks, nn, optim
            >>> model = nn.Sequential(nn.Dense(2, 1)); model.compile(optimizer="sgd")
            Sequential(...)
            >>> cb = callbacks.LearningRateScheduler(lambda epoch, lr: lr); cb.set_model(model)
            >>> logs = {}; cb.on_epoch_end(0, logs); logs
            {'learning_rate': 0.01}
        """
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.lr)


def _takes_two(fn):
    """Whether ``fn`` accepts (epoch, lr), else it is called with epoch alone."""
    try:
        inspect.signature(fn).bind(0, 0.0)
        return True
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): Keras's current form
        return True

