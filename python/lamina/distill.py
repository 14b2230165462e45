"""Student-teacher training: knowledge distillation (Hinton, Vinyals & Dean 2015) and FitNets
(Romero et al. 2015, "FitNets: hints for thin deep nets").

- ``distill``: train the student on a mix of the labels and the teacher's softened outputs:
      C = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(softmax(s), y)
  with s, t the student's and teacher's logits. The T^2 keeps the soft term's gradient
  magnitude independent of T: dC/ds = alpha * T * (softmax(s/T) - softmax(t/T)) / N + (1 - alpha)
  * (softmax(s) - onehot(y)) / N.
- ``fitnets``: stage 1 trains the student's lower part (up to its guided layer) plus a regressor
  to predict the teacher's hint-layer output (MSE); stage 2 trains the whole student with
  ``distill``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import backend as _backend
from . import losses as _losses
from ._workflows import as_sequential, layers_of, make_optimizer, model_dtype, predict


def _log_softmax(z):
    """Row-wise log softmax (N, K), stable for any finite logits."""
    m = z.max(axis=1, keepdims=True)
    z = z - m
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class DistillationLoss(_losses.Loss):
    """The loss of ``distill`` on student logits (N, K). Its target is a packed array
    (N, K + 1): the teacher's log-probabilities at temperature T, then the label (as a float).
    Build it with ``pack_targets``; ``fit`` batches it like any target.

    Example:

        >>> import numpy as np
        >>> from lamina import distill
        >>> loss_fn = distill.DistillationLoss(temperature=4.0, alpha=0.9)
        >>> target = loss_fn.pack_targets(np.array([[2.0, 0.0]]), [0])
        >>> loss, grad = loss_fn(np.array([[2.0, 0.0]], np.float32), target.astype(np.float32))
        >>> grad.shape, loss > 0
        ((1, 2), True)
    """

    def __init__(self, temperature=4.0, alpha=0.9):
        super().__init__()
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        self._ce = _losses.CrossEntropy()

    def pack_targets(self, teacher_logits, y):
        """(N, K) teacher logits and (N,) labels -> the (N, K + 1) packed float64 target: the
        teacher's log-softmax at this loss's temperature, then the label. ValueError for other
        shapes.

        Example:

            >>> import numpy as np
            >>> from lamina import distill
            >>> packed = distill.DistillationLoss(temperature=2.0).pack_targets(np.zeros((3, 10)), [1, 2, 3])
            >>> packed.shape, packed[:, -1].tolist()
            ((3, 11), [1.0, 2.0, 3.0])
        """
        t = np.asarray(teacher_logits, dtype=np.float64)
        y = np.asarray(y)
        if t.ndim != 2 or y.shape != (t.shape[0],):
            raise ValueError(f"teacher logits must be (N, K) and labels (N,), got {t.shape} and {y.shape}")
        return np.concatenate([_log_softmax(t / self.temperature), y.astype(np.float64)[:, None]], axis=1)

    def prepare_target(self, target, dtype):
        """The packed target (N, K + 1) as a C-contiguous array of ``dtype`` (the labels stay
        exact whole numbers in float32 below 2^24).

        Example:

            >>> import numpy as np
            >>> from lamina import distill
            >>> distill.DistillationLoss().prepare_target(np.zeros((2, 11)), np.float32).dtype
            dtype('float32')
        """
        return np.ascontiguousarray(target, dtype=dtype)

    def __call__(self, output, target, backend=None):
        K = output.shape[1]
        n = output.shape[0]
        if tuple(target.shape) != (n, K + 1):
            raise ValueError(f"DistillationLoss: target must be ({n}, {K + 1}) (packed teacher "
                             f"log-probabilities + label), got {target.shape}")
        be = self._backend_for(output, backend)
        target = np.asarray(target if isinstance(target, np.ndarray) else
                            _backend.backend_of(target).to_numpy(target), dtype=np.float64)
        T, a = self.temperature, self.alpha
        labels = target[:, K].astype(np.int64)
        hard, ghard = self._ce(output, labels, backend=be)
        log_pt = target[:, :K]
        pt = np.exp(log_pt)
        # T^2 KL(pt || ps) = T^2 / n (sum pt log pt - sum pt log ps), ps = softmax(output / T)
        z = be.scale(output, 1.0 / T)
        pt_be = be.asarray(pt, dtype=output.dtype)
        cross = float(be.dot(pt_be, be.log_softmax(z, axis=1)))
        soft = (float(np.sum(pt * log_pt)) - cross) / n * T * T
        grad = be.add(be.softmax(z, axis=1, out=z), pt_be, alpha=-1.0)  # softmax(s/T) - pt
        be.scale(grad, a * T / n, out=grad)
        if a < 1.0:
            be.add(grad, ghard, alpha=1.0 - a, out=grad)
        return a * soft + (1.0 - a) * hard, grad

    def count_correct(self, output, target):
        """(rows whose argmax over the student's logits equals the packed label, N): the
        accuracy on the true labels, not agreement with the teacher.

        Example:

            >>> import numpy as np
            >>> from lamina import distill
            >>> loss = distill.DistillationLoss()
            >>> target = loss.pack_targets(np.zeros((2, 2)), [0, 1])
            >>> loss.count_correct(np.array([[1.0, 0.0], [1.0, 0.0]], np.float32), target)
            (1, 2)
        """
        target = target if isinstance(target, np.ndarray) else _backend.backend_of(target).to_numpy(target)
        return self._ce.count_correct(output, target[:, output.shape[1]].astype(np.int64))

    def get_config(self):
        """``temperature`` and ``alpha``.

        Example:

            >>> from lamina import distill
            >>> distill.DistillationLoss(temperature=2.0, alpha=0.5).get_config()
            {'temperature': 2.0, 'alpha': 0.5}
        """
        return {"temperature": self.temperature, "alpha": self.alpha}

    def __repr__(self):
        return f"DistillationLoss(temperature={self.temperature}, alpha={self.alpha})"


def distill(teacher, student, X, y, temperature=4.0, alpha=0.9, epochs=5, batch_size=64, optimizer="sgd",
            lr=0.05, momentum=0.9, validation_data=None, teacher_logits=None, seed=0, verbose=0):
    """Trains ``student`` (a Sequential producing logits) on (X, y) with knowledge distillation
    from ``teacher`` (its logits on X computed once, in inference mode, unless given as
    ``teacher_logits``). ``alpha`` weighs the soft (teacher) term, 1 - alpha the labels.
    ``optimizer``: a name ("sgd" with ``momentum``, "adam"), a factory or an Optimizer.
    Returns fit's History (its "loss" is the mixed loss, "val_loss" plain cross-entropy).

    Example:

        >>> import numpy as np
        >>> from lamina import distill, nn
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> teacher = nn.Sequential(nn.Dense(4, 16), nn.ReLU(), nn.Dense(16, 2))
        >>> _ = teacher.fit(X, y, epochs=3, verbose=0)
        >>> student = nn.Sequential(nn.Dense(4, 2))
        >>> history = distill.distill(teacher, student, X, y, epochs=2, batch_size=16)
        >>> len(history["loss"]), 0.0 <= history["accuracy"][-1] <= 1.0
        (2, True)
    """
    student = as_sequential(student)
    dtype = model_dtype(student)
    X = np.ascontiguousarray(X, dtype=dtype)
    if teacher_logits is None:
        teacher_logits = predict(teacher, X)
    loss = DistillationLoss(temperature, alpha)
    target = loss.pack_targets(teacher_logits, y)
    opt = make_optimizer(optimizer, student.parameters(), lr, momentum)
    before = getattr(student, "loss", None)
    hist = student.fit(X, target, epochs=epochs, batch_size=batch_size, optimizer=opt, loss=loss,
                       seed=seed, verbose=verbose, validation_data=None)
    # fit remembers its loss for evaluate(); the packed-target loss is no use there
    student.loss = before if before is not None else _losses.CrossEntropy()
    if validation_data is not None:  # fit would evaluate with the packed-target loss: do it here
        vl, va = student.evaluate(*validation_data, loss=_losses.CrossEntropy())
        hist["val_loss"], hist["val_accuracy"] = [vl], [va]
    return hist


def make_regressor(student_shape, teacher_shape):
    """Layers mapping the student's guided output (shape without batch) to the teacher's hint
    shape: Dense for vectors; for feature maps a convolution with kernel (Hs - Ht + 1,
    Ws - Wt + 1) as in FitNets; Flatten + Dense when one is a vector and the other a map.

    Example:

        >>> from lamina import distill
        >>> distill.make_regressor((8,), (16,)), distill.make_regressor((6, 12, 12), (16, 8, 8))
        ([Dense(in_features=8, out_features=16, bias=True)], [Conv2D(in_channels=6, out_channels=16, kernel_size=5, stride=1, padding=0, dilation=1, bias=True)])
    """
    from .nn import Conv2D, Dense, Flatten

    s, t = tuple(student_shape), tuple(teacher_shape)
    if len(s) == 3 and len(t) == 3 and s[1] >= t[1] and s[2] >= t[2]:
        return [Conv2D(s[0], t[0], (s[1] - t[1] + 1, s[2] - t[2] + 1), init="xavier")]
    if len(t) != 1:
        raise ValueError(f"make_regressor: cannot map a student output of shape {s} to a hint of shape {t}; "
                         "pass regressor=[...layers...]")
    pre = [Flatten()] if len(s) > 1 else []
    return pre + [Dense(math.prod(s), t[0], init="xavier")]


class FitNetsResult(NamedTuple):
    """``student``: the trained student; ``regressor``: the stage-1 regressor layers;
    ``hint_mse``: the hint MSE (monitor set, inference mode) before stage 1 and after each of its
    epochs; ``hint_history``, ``kd_history``: the two stages' fit Histories.

    Example:

        >>> import numpy as np
        >>> from lamina import distill, nn
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> teacher = nn.Sequential(nn.Dense(4, 16), nn.ReLU(), nn.Dense(16, 2))
        >>> _ = teacher.fit(X, y, epochs=3, verbose=0)
        >>> student = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 2))
        >>> result = distill.fitnets(teacher, student, X, y, hint=(1, 1), hint_epochs=1, epochs=1, monitor_size=32)
        >>> result.student is student, len(result.hint_mse), len(result.kd_history["loss"])
        (True, 2, 1)
    """

    student: object
    regressor: list
    hint_mse: list
    hint_history: dict
    kd_history: dict


def fitnets(teacher, student, X, y, hint=(1, 1), regressor=None, hint_epochs=3, hint_lr=0.01, epochs=5,
            lr=0.05, temperature=4.0, alpha=0.9, batch_size=64, optimizer="sgd", momentum=0.9,
            monitor_size=2000, seed=0, verbose=0):
    """The two FitNets stages.

    ``hint = (teacher_layer_index, student_layer_index)``: the outputs of ``teacher[i]`` (the
    hint) and ``student[j]`` (the guided layer), both inclusive indices into the Sequentials.
    Stage 1: ``Sequential(*student[:j + 1], *regressor)`` is trained with MSE to predict the
    hint (computed once from the teacher in inference mode) for ``hint_epochs`` at ``hint_lr``.
    Stage 2: ``distill(teacher, student, ...)`` for ``epochs`` at ``lr``. The regressor (default
    ``make_regressor``) is dropped afterwards. Returns FitNetsResult.

    Example:

        >>> import numpy as np
        >>> from lamina import distill, nn
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> teacher = nn.Sequential(nn.Dense(4, 16), nn.ReLU(), nn.Dense(16, 2))
        >>> _ = teacher.fit(X, y, epochs=3, verbose=0)
        >>> student = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 2))
        >>> result = distill.fitnets(teacher, student, X, y, hint=(1, 1), hint_epochs=1, epochs=1, monitor_size=32)
        >>> type(result).__name__, [type(layer).__name__ for layer in result.regressor]
        ('FitNetsResult', ['Dense'])
    """
    from .nn import Sequential

    teacher, student = as_sequential(teacher), as_sequential(student)
    ti, si = (int(v) for v in hint)
    if not -len(teacher) <= ti < len(teacher) or not -len(student) <= si < len(student):
        raise ValueError(f"hint={hint} is out of range for a teacher of {len(teacher)} and a student of "
                         f"{len(student)} layers")
    ti, si = ti % len(teacher), si % len(student)
    dtype = model_dtype(student)
    X = np.ascontiguousarray(X, dtype=dtype)
    hint_target = np.ascontiguousarray(predict(teacher[: ti + 1], X), dtype=dtype)
    lower = layers_of(student)[: si + 1]
    guided_shape = predict(lower, X[:1]).shape[1:]
    reg = list(regressor) if regressor is not None else make_regressor(guided_shape, hint_target.shape[1:])
    for layer in reg:
        layer.astype(dtype)
    stage1 = Sequential(*lower, *reg)
    mse = _losses.MSE()
    mon_x, mon_h = X[:monitor_size], hint_target[:monitor_size]
    hint_mse = [stage1.evaluate(mon_x, mon_h, loss=mse)[0]]
    opt1 = make_optimizer(optimizer, stage1.parameters(), hint_lr, momentum)
    rng = np.random.default_rng(seed)
    hint_hist = {"loss": []}
    for epoch in range(int(hint_epochs)):
        h = stage1.fit(X, hint_target, epochs=1, batch_size=batch_size, optimizer=opt1, loss=mse,
                       seed=int(rng.integers(2**31)), verbose=0)
        hint_hist["loss"].append(h["loss"][-1])
        hint_mse.append(stage1.evaluate(mon_x, mon_h, loss=mse)[0])
        if verbose:
            print(f"fitnets: hint stage epoch {epoch + 1}/{hint_epochs}: hint MSE {hint_mse[-1]:.5f}", flush=True)
    kd = distill(teacher, student, X, y, temperature=temperature, alpha=alpha, epochs=epochs,
                 batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum,
                 seed=int(rng.integers(2**31)), verbose=verbose)
    return FitNetsResult(student, reg, hint_mse, hint_hist, kd)


__all__ = ["distill", "fitnets", "DistillationLoss", "make_regressor", "FitNetsResult"]
