"""Optimisers and learning-rate schedules.

``SGD`` steps every parameter with the backend's fused ``sgd_step`` kernel and ``Adam``/``AdamW``
with ``adam_step`` (PyTorch's formulas, one pass over memory each). Each parameter is stepped
on its own backend (the optimiser's ``backend`` when one is given); the state (velocities,
moments) lives there too. Parameters may
be given as a list or as PyTorch-style param groups (dicts with "params" and overrides).
The effective learning rate of a parameter is ``group["lr"] * param.lr_scale``. Frozen
parameters (``trainable=False``) are skipped.

``SaddleFreeNewton`` is second order: its ``step(closure)`` re-evaluates the loss and gradients
through a closure (as PyTorch's LBFGS) for Hessian-vector products, a Krylov subspace and a
line search; ``fit`` drives it with a closure over each (large) minibatch.

Schedules (``StepLR``, ``CosineLR``) set ``group["lr"]`` from ``group["initial_lr"]`` and the
epoch count; call ``step()`` once per epoch, or pass them to ``fit(callbacks=[...])``.
"""
from __future__ import annotations

import math

import numpy as np

from . import backend as _backend
from . import linalg

_KEYSETS: dict = {}  # keys -> frozenset({"data", *keys}), the spare arrays of a kept step


def _keyset(keys):
    ks = _KEYSETS.get(keys)
    if ks is None:
        ks = _KEYSETS[keys] = frozenset(("data", *keys))
    return ks


_VKEYS = ("velocity",)  # SGD's state with momentum, and the key sets of its spare arrays
_VSET, _DSET = _keyset(_VKEYS), _keyset(())


class Optimizer:
    """The base of lamina's optimisers. ``params``: a list of Parameters (``model.parameters()``)
    or PyTorch-style param groups (dicts with "params" and per-group options); an empty list, a
    parameter in two groups or an unknown option is a ValueError. ``step()`` updates every
    trainable parameter from its ``grad``; ``zero_grad()`` clears the gradients; ``lr`` reads
    or sets every group's rate; ``state_dict()`` / ``load_state_dict()`` carry the state
    (``lamina.save(model, path, optimizer=opt)`` stores it in a checkpoint).

    Example (param groups: the first layer at a tenth of the rate):

        >>> from lamina import models, optim
        >>> model = models.mlp()
        >>> opt = optim.SGD([{"params": model.layers[1].parameters(), "lr": 0.01},
        ...                  {"params": model.layers[3].parameters()}], lr=0.1, momentum=0.9)
        >>> [g["lr"] for g in opt.param_groups], len(opt.params())
        ([0.01, 0.1], 4)
    """

    defaults: dict = {}

    def __init__(self, params, backend=None, **hyper):
        self.defaults = {**type(self).defaults, **hyper}
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        seen = set()
        for g in groups:
            g = dict(g)
            ps = list(g.pop("params"))
            for p in ps:
                if id(p) in seen:
                    raise ValueError(f"parameter {p!r} appears in more than one group")
                seen.add(id(p))
            unknown = set(g) - set(self.defaults) - {"initial_lr", "name"}
            if unknown:
                raise ValueError(f"unknown option(s) {sorted(unknown)} for {type(self).__name__}")
            group = {**self.defaults, **g, "params": ps}
            self._check(group)
            self.param_groups.append(group)
        self.state = {}  # Parameter -> dict of arrays / scalars
        self.backend = None if backend is None else _backend.get_backend(backend)
        self._spares, self._home, self._previous = {}, {}, []
        self._settle = False

    def _check(self, group):
        if group["lr"] < 0:
            raise ValueError(f"lr must be >= 0, got {group['lr']}")

    def params(self):
        """Every parameter of every group, in order (a new list; frozen ones included).

        Example:

            >>> from lamina import nn, optim
            >>> len(optim.SGD(nn.Dense(3, 2).parameters()).params())
            2
        """
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self):
        """Marks every parameter's gradient zero (``Parameter.zero_grad``), as before a
        backward in a hand-written loop.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim
            >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32)
            >>> opt = optim.SGD([p]); opt.zero_grad(); p.grad
            array([0., 0.], dtype=float32)
        """
        for p in self.params():
            p.zero_grad()

    def step(self, keep_previous=False):
        """Updates every trainable parameter from its gradient.

        keep_previous: write the new values of the parameters and of their state (velocities,
        moments) into spare arrays and swap them in, keeping the previous ones, so that
        ``undo()`` can bring the exact previous state back. This costs no extra memory traffic
        (the kernels read the old arrays and write the new ones in their one pass) but changes
        which arrays ``p.data`` and the state hold; ``drop_previous()`` moves the values back
        into the parameters' own arrays and frees the spares (``fit`` does both).

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim
            >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32)
            >>> optim.SGD([p], lr=0.1).step(); p.numpy()
            array([0.9, 0.9], dtype=float32)
        """
        raise NotImplementedError

    def _be(self, p):
        return self.backend if self.backend is not None else p.be

    # -- keeping the previous step (fit restores it after a non-finite loss) -------------------
    def _outputs(self, p, st, keys):
        """The spare arrays that receive the new p.data and st[k] (k in keys) in a kept step."""
        sp = self._spares.get(p)
        if sp is None or sp.keys() != _keyset(keys):
            be = self._be(p)
            sp = self._spares[p] = {k: be.empty(p.shape, p.dtype) for k in ("data", *keys)}
            self._home.setdefault(p, {"data": p.data, **{k: st[k] for k in keys}})
        return sp

    def _swap(self, p, st, keys):
        sp = self._spares[p]
        p.data, sp["data"] = sp["data"], p.data
        for k in keys:
            st[k], sp[k] = sp[k], st[k]

    def _swap_in(self, p, st, keys, counted=False):
        self._swap(p, st, keys)
        self._previous.append((p, st, keys, counted))

    def _begin_step(self, keep_previous):
        self._previous = []
        return bool(keep_previous)

    def settle_next_step(self, settle=True):
        """Marks the next kept step (``step(keep_previous=True)``) as the last before
        ``drop_previous``, never to be undone (``fit`` says so of its very last step): a
        parameter whose arrays are then its own is stepped in place, one whose arrays are the
        spares swaps back, so ``drop_previous`` has nothing to copy. ``settle=False`` takes the
        mark back. Results are the same either way.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim
            >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32)
            >>> opt = optim.SGD([p], lr=0.1); own = p.data
            >>> opt.settle_next_step(); opt.step(keep_previous=True); opt.drop_previous()
            >>> p.data is own, p.numpy()
            (True, array([0.9, 0.9], dtype=float32))
        """
        self._settle = bool(settle)

    def _settling(self):
        """Whether this kept step is the last one before ``drop_previous`` (``fit`` says so for
        its last step, whose update is never undone): a parameter whose arrays are then its own
        is stepped in place, one whose arrays are the spares swaps back, so ``drop_previous``
        has nothing to copy. Consumed by the call."""
        settle = getattr(self, "_settle", False)
        if settle:
            self._settle = False
        return settle

    def _at_home(self, p, st, keys):
        """Whether p.data and st[k] (k in keys) are the parameter's own arrays (as before the
        first kept step), so that an in-place step leaves nothing for drop_previous."""
        home = self._home.get(p)
        if home is None:
            return p not in self._spares
        if home.keys() != _keyset(keys) or home["data"] is not p.data:
            return False
        for k in keys:
            if home[k] is not st[k]:
                return False
        return True

    def undo(self):
        """Brings back the parameters and the optimiser state (step counts included) from before
        the latest ``step(keep_previous=True)``; a second undo does nothing.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim
            >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32)
            >>> opt = optim.SGD([p], lr=0.1); opt.step(keep_previous=True); p.numpy()
            array([0.9, 0.9], dtype=float32)
            >>> opt.undo(); p.numpy()
            array([1., 1.], dtype=float32)
        """
        for p, st, keys, counted in reversed(self._previous):
            self._swap(p, st, keys)
            if counted:
                st["step"] -= 1
        self._previous = []

    def drop_previous(self):
        """Ends keeping previous steps: the current values go back into each parameter's (and
        state entry's) own arrays, as they were before the first kept step, and the spares are
        freed. One copy per array, only where an odd number of swaps left them elsewhere.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim
            >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32)
            >>> opt = optim.SGD([p], lr=0.1); opt.step(keep_previous=True); opt.drop_previous()
            >>> opt.undo(); p.numpy()   # nothing kept to undo
            array([0.9, 0.9], dtype=float32)
        """
        for p, home in self._home.items():
            be = self._be(p)
            st = self.state.get(p, {})
            for k, arr in home.items():
                now = p.data if k == "data" else st.get(k)
                if now is not None and now is not arr:
                    be.copy(now, out=arr)
                    if k == "data":
                        p.data = arr
                    else:
                        st[k] = arr
        self._spares, self._home, self._previous = {}, {}, []

    @property
    def lr(self):
        """The first group's learning rate; setting it sets every group's (schedulers set
        ``param_groups`` themselves, per group).

        Example:

            >>> from lamina import nn, optim
            >>> opt = optim.SGD(nn.Dense(3, 2).parameters(), lr=0.1)
            >>> opt.lr = 0.01; opt.param_groups[0]["lr"]
            0.01
        """
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        for g in self.param_groups:
            g["lr"] = value

    # -- state, for checkpoints -------------------------------------------------------------
    def state_dict(self, params=None):
        """{"type", "param_groups": [hyperparameters + "params": indices], "state": {index: {...}}}.
        Indices are positions in ``params`` (default: the optimiser's own parameter order); state
        arrays are host NumPy copies. ValueError when the optimiser holds a parameter that is
        not in ``params``.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim
            >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32)
            >>> opt = optim.SGD([p], lr=0.1, momentum=0.9); opt.step()
            >>> sd = opt.state_dict(); sd["type"], sd["param_groups"][0]["params"], sd["state"][0]["velocity"]
            ('SGD', [0], array([1., 1.], dtype=float32))
        """
        params = self.params() if params is None else list(params)
        index = {id(p): i for i, p in enumerate(params)}
        groups = []
        for g in self.param_groups:
            try:
                idx = [index[id(p)] for p in g["params"]]
            except KeyError:
                raise ValueError("the optimiser holds parameters that are not in the model") from None
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": idx})
        state = {}
        for p, st in self.state.items():
            if id(p) in index:
                be = self._be(p)
                state[index[id(p)]] = {k: (v if isinstance(v, (int, float, bool, str)) else be.to_numpy(v).copy())
                                       for k, v in st.items()}
        return {"type": type(self).__name__, "param_groups": groups, "state": state}

    def load_state_dict(self, sd, params=None):
        """Restores a ``state_dict()`` (hyperparameters and per-parameter state, copied onto
        each parameter's backend in its dtype). ``params``: the parameters its indices refer to
        (default: this optimiser's). ValueError for another optimiser type, another number of
        groups, an index out of range or a state array of the wrong shape.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim
            >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32)
            >>> opt = optim.SGD([p], lr=0.1, momentum=0.9); opt.step()
            >>> fresh = optim.SGD([p], lr=0.5, momentum=0.9); fresh.load_state_dict(opt.state_dict())
            >>> fresh.lr, fresh.state[p]["velocity"]
            (0.1, array([1., 1.], dtype=float32))
        """
        params = self.params() if params is None else list(params)
        if sd.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"state is for {sd.get('type')}, not {type(self).__name__}")
        if len(sd["param_groups"]) != len(self.param_groups):
            raise ValueError("optimizer state has a different number of param groups")
        new_state = {}
        for i, st in sd["state"].items():
            i = int(i)
            if not 0 <= i < len(params):
                raise ValueError(f"optimizer state names parameter {i}, but there are {len(params)}")
            p = params[i]
            st = dict(st)
            for k, v in st.items():
                if isinstance(v, np.ndarray):
                    if v.shape != p.shape:
                        raise ValueError(f"optimizer state {k!r} of parameter {i} has shape {v.shape}, expected {p.shape}")
                    be = self._be(p)  # an own, writable copy on the parameter's backend
                    st[k] = be.copy(be.asarray(np.ascontiguousarray(v, dtype=p.dtype)))
            new_state[p] = st
        for g, sg in zip(self.param_groups, sd["param_groups"]):
            for k, v in sg.items():
                if k != "params":
                    g[k] = tuple(v) if isinstance(self.defaults.get(k), tuple) else v
        self.state = new_state


class SGD(Optimizer):
    """PyTorch's SGD: g = grad + wd*p; v = momentum*v + g; p -= lr*(g + momentum*v if nesterov else v).
    ValueError for a negative rate, momentum or weight decay, or nesterov without momentum.

    Example:

        >>> import numpy as np
        >>> from lamina import nn, optim
        >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32)
        >>> opt = optim.SGD([p], lr=0.1, momentum=0.9)
        >>> opt.step(); opt.step(); p.numpy()   # v = 1, then 1.9: 1 - 0.1 - 0.19
        array([0.71, 0.71], dtype=float32)
    """

    defaults = {"lr": 0.01, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, backend=None):
        super().__init__(params, backend, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)

    def _check(self, group):
        super()._check(group)
        if group["momentum"] < 0 or group["weight_decay"] < 0:
            raise ValueError("momentum and weight_decay must be >= 0")
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError("nesterov momentum needs momentum > 0")

    def step(self, keep_previous=False):
        """One update of every trainable parameter from its ``grad`` (the class's formula, one
        ``sgd_step`` kernel per parameter, in place); ``keep_previous`` as for
        ``Optimizer.step``. Frozen parameters are skipped.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim
            >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32)
            >>> optim.SGD([p], lr=0.1).step(); p.numpy()
            array([0.9, 0.9], dtype=float32)
        """
        keep = self._begin_step(keep_previous)
        settle = keep and self._settling()
        for g in self.param_groups:
            lr, m, wd, nest = g["lr"], g["momentum"], g["weight_decay"], g["nesterov"]
            for p in g["params"]:
                if p.trainable:
                    if m:  # (with lr 0 the velocity still integrates the gradient, as in PyTorch)
                        self._momentum_step(p, lr * p.lr_scale, m, wd, nest, keep, settle)
                    elif lr * p.lr_scale != 0.0:
                        self._plain_step(p, lr * p.lr_scale, wd, keep, settle)

    def _momentum_step(self, p, plr, m, wd, nest, keep, settle):
        be = self.backend if self.backend is not None else p.be
        st = self.state.get(p)
        if st is None:
            st = self.state[p] = {"velocity": be.zeros(p.shape, p.dtype)}
        if keep and not (settle and self._at_home(p, st, _VKEYS)):
            out = self._spares.get(p)
            if out is None or out.keys() != _VSET:
                out = self._outputs(p, st, _VKEYS)
            be.sgd_step(p.data, p.grad, plr, velocity=st["velocity"], momentum=m, weight_decay=wd,
                        nesterov=nest, param_out=out["data"], velocity_out=out["velocity"])
            p.data, out["data"] = out["data"], p.data
            st["velocity"], out["velocity"] = out["velocity"], st["velocity"]
            self._previous.append((p, st, _VKEYS, False))
        else:
            be.sgd_step(p.data, p.grad, plr, velocity=st["velocity"], momentum=m, weight_decay=wd, nesterov=nest)

    def _plain_step(self, p, plr, wd, keep, settle):
        be = self.backend if self.backend is not None else p.be
        if keep and not (settle and self._at_home(p, {}, ())):
            out = self._spares.get(p)
            if out is None or out.keys() != _DSET:
                out = self._outputs(p, {}, ())
            be.sgd_step(p.data, p.grad, plr, weight_decay=wd, param_out=out["data"])
            p.data, out["data"] = out["data"], p.data
            self._previous.append((p, {}, (), False))
        else:
            be.sgd_step(p.data, p.grad, plr, weight_decay=wd)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's formulas; weight_decay adds wd*p to the gradient (L2).
    One fused ``adam_step`` kernel per parameter. ``lr`` is Keras's ``learning_rate``.

    Example:

        >>> from lamina import models, optim
        >>> model = models.mlp()
        >>> model.compile(optimizer=optim.Adam(model.parameters(), lr=1e-3), loss="cross_entropy").optimizer.lr
        0.001
    """

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, backend=None):
        super().__init__(params, backend, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

    def _check(self, group):
        super()._check(group)
        b1, b2 = group["betas"]
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {group['betas']}")
        if group["eps"] < 0 or group["weight_decay"] < 0:
            raise ValueError("eps and weight_decay must be >= 0")

    def step(self, keep_previous=False):
        """One Adam update of every trainable parameter from its ``grad`` (one fused
        ``adam_step`` kernel each: moments, bias correction, the step, in place); the first
        step of a parameter creates its zero moments. ``keep_previous`` as for
        ``Optimizer.step``.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim
            >>> p = nn.Parameter(np.ones(2, np.float32)); p.grad = np.ones(2, np.float32)
            >>> optim.Adam([p], lr=0.1).step(); p.numpy()
            array([0.9, 0.9], dtype=float32)
        """
        keep = self._begin_step(keep_previous)
        settle = keep and self._settling()
        for g in self.param_groups:
            lr, (b1, b2), eps, wd = g["lr"], g["betas"], g["eps"], g["weight_decay"]
            for p in g["params"]:
                if not p.trainable:
                    continue
                be = self._be(p)
                st = self.state.get(p)
                if st is None:
                    st = self.state[p] = {"step": 0, "m": be.zeros(p.shape, p.dtype), "v": be.zeros(p.shape, p.dtype)}
                st["step"] += 1
                kw = {}
                kept = keep and not (settle and self._at_home(p, st, ("m", "v")))
                if kept:
                    out = self._outputs(p, st, ("m", "v"))
                    kw = {"param_out": out["data"], "m_out": out["m"], "v_out": out["v"]}
                be.adam_step(p.data, p.grad, st["m"], st["v"], lr * p.lr_scale, st["step"], beta1=b1, beta2=b2,
                             eps=eps, weight_decay=wd, decoupled=self.decoupled, **kw)
                if kept:
                    self._swap_in(p, st, ("m", "v"), counted=True)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr*wd before the step
    (PyTorch's AdamW; ``weight_decay`` 0.01 by default). Arguments and errors as for Adam.

    Example:

        >>> import numpy as np
        >>> from lamina import nn, optim
        >>> p = nn.Parameter(np.ones(1, np.float32)); p.grad = np.zeros(1, np.float32)
        >>> optim.AdamW([p], lr=0.1, weight_decay=0.5).step(); p.numpy()
        array([0.95], dtype=float32)
    """

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, backend=None):
        super().__init__(params, lr, betas, eps, weight_decay, backend)


OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


# -- schedules ------------------------------------------------------------------------------
class LRScheduler:
    """Sets each group's lr to f(initial_lr, epoch). ``last_epoch`` is the number of completed
    epochs (-1 before the first ``step``, which the constructor takes, as in PyTorch). A
    subclass defines ``lr_at(initial_lr, epoch)`` (and ``get_config``).

    Example:

        >>> from lamina import nn, optim
        >>> class Halving(optim.LRScheduler):
        ...     def lr_at(self, initial_lr, epoch):
        ...         return initial_lr / 2 ** epoch
        >>> opt = optim.SGD(nn.Dense(3, 2).parameters(), lr=1.0)
        >>> sched = Halving(opt); sched.step(); sched.step(); opt.lr
        0.25
    """

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, initial_lr, epoch):
        """The rate of a group whose initial rate is ``initial_lr`` after ``epoch`` completed
        epochs (a float): what a subclass defines.

        Example:

            >>> from lamina import nn, optim
            >>> optim.StepLR(optim.SGD(nn.Dense(3, 2).parameters(), lr=1.0), step_size=2).lr_at(1.0, 4)
            0.010000000000000002
        """
        raise NotImplementedError

    def step(self):
        """Advances one epoch and sets every group's rate to ``lr_at(initial_lr, last_epoch)``
        (``fit`` calls it after each epoch; the constructor takes the first step, to epoch 0).

        Example:

            >>> from lamina import nn, optim
            >>> opt = optim.SGD(nn.Dense(3, 2).parameters(), lr=1.0)
            >>> sched = optim.StepLR(opt, step_size=2, gamma=0.1)
            >>> sched.step(); sched.step(); sched.last_epoch, round(opt.lr, 6)
            (2, 0.1)
        """
        self.last_epoch += 1
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr_at(g["initial_lr"], self.last_epoch)

    def get_last_lr(self):
        """Every group's current rate, a list of floats (PyTorch's spelling).

        Example:

            >>> from lamina import nn, optim
            >>> opt = optim.SGD(nn.Dense(3, 2).parameters(), lr=0.1)
            >>> optim.CosineLR(opt, T_max=4).get_last_lr()
            [0.1]
        """
        return [g["lr"] for g in self.optimizer.param_groups]

    # fit(callbacks=[scheduler]) steps it after every epoch.
    def on_epoch_end(self, epoch, logs=None):
        """The callback hook: ``fit(callbacks=[scheduler])`` steps the schedule after every
        epoch (``epoch`` and ``logs`` are not used).

        Example:

            >>> from lamina import nn, optim
            >>> opt = optim.SGD(nn.Dense(3, 2).parameters(), lr=1.0)
            >>> sched = optim.StepLR(opt, step_size=1, gamma=0.5); sched.on_epoch_end(0); opt.lr
            0.5
        """
        self.step()

    def get_config(self):
        """The schedule's constructor arguments besides the optimiser (empty here).

        Example:

            >>> from lamina import nn, optim
            >>> optim.StepLR(optim.SGD(nn.Dense(3, 2).parameters()), step_size=3).get_config()
            {'step_size': 3, 'gamma': 0.1}
        """
        return {}

    def state_dict(self):
        """``{"type", "config", "last_epoch"}``: what a checkpoint stores to resume the schedule.

        Example:

            >>> from lamina import nn, optim
            >>> optim.StepLR(optim.SGD(nn.Dense(3, 2).parameters()), step_size=3).state_dict()
            {'type': 'StepLR', 'config': {'step_size': 3, 'gamma': 0.1}, 'last_epoch': 0}
        """
        return {"type": type(self).__name__, "config": self.get_config(), "last_epoch": self.last_epoch}

    def load_state_dict(self, sd):
        """Resumes at ``sd["last_epoch"]`` and sets every group's rate for it (KeyError when
        the dict has no "last_epoch").

        Example:

            >>> from lamina import nn, optim
            >>> opt = optim.SGD(nn.Dense(3, 2).parameters(), lr=1.0)
            >>> sched = optim.StepLR(opt, step_size=1, gamma=0.5)
            >>> sched.load_state_dict({"last_epoch": 2}); opt.lr
            0.25
        """
        self.last_epoch = int(sd["last_epoch"]) - 1
        self.step()


class StepLR(LRScheduler):
    """lr = initial_lr * gamma ** (epoch // step_size); ValueError for step_size < 1.

    Example (``model.fit(X, y, epochs=10, callbacks=[sched])`` steps it after every epoch):

        >>> from lamina import nn, optim
        >>> opt = optim.SGD(nn.Dense(3, 2).parameters(), lr=1.0)
        >>> sched = optim.StepLR(opt, step_size=3, gamma=0.1)
        >>> rates = []
        >>> for epoch in range(7):
        ...     rates.append(round(opt.lr, 4)); sched.step()
        >>> rates
        [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01]
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if int(step_size) < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, initial_lr, epoch):
        """initial_lr * gamma ** (epoch // step_size).

        Example:

            >>> from lamina import nn, optim
            >>> optim.StepLR(optim.SGD(nn.Dense(3, 2).parameters()), step_size=3, gamma=0.5).lr_at(1.0, 7)
            0.25
        """
        return initial_lr * self.gamma ** (epoch // self.step_size)

    def get_config(self):
        """``step_size`` and ``gamma``.

        Example:

            >>> from lamina import nn, optim
            >>> optim.StepLR(optim.SGD(nn.Dense(3, 2).parameters()), step_size=3, gamma=0.5).get_config()
            {'step_size': 3, 'gamma': 0.5}
        """
        return {"step_size": self.step_size, "gamma": self.gamma}


class CosineLR(LRScheduler):
    """lr = eta_min + (initial_lr - eta_min) (1 + cos(pi * min(epoch, T_max) / T_max)) / 2;
    ValueError for T_max < 1.

    Example (``model.fit(X, y, epochs=10, callbacks=[sched])`` steps it after every epoch):

        >>> from lamina import nn, optim
        >>> opt = optim.SGD(nn.Dense(3, 2).parameters(), lr=1.0)
        >>> sched = optim.CosineLR(opt, T_max=4)
        >>> rates = []
        >>> for epoch in range(5):
        ...     rates.append(round(opt.lr, 4)); sched.step()
        >>> rates
        [1.0, 0.8536, 0.5, 0.1464, 0.0]
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if int(T_max) < 1:
            raise ValueError(f"T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, initial_lr, epoch):
        """The cosine of the class docstring; constant at ``eta_min`` after ``T_max`` epochs.

        Example:

            >>> from lamina import nn, optim
            >>> sched = optim.CosineLR(optim.SGD(nn.Dense(3, 2).parameters()), T_max=4)
            >>> [round(sched.lr_at(1.0, e), 3) for e in (0, 2, 4, 9)]
            [1.0, 0.5, 0.0, 0.0]
        """
        e = min(epoch, self.T_max)
        return self.eta_min + (initial_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2

    def get_config(self):
        """``T_max`` and ``eta_min``.

        Example:

            >>> from lamina import nn, optim
            >>> optim.CosineLR(optim.SGD(nn.Dense(3, 2).parameters()), T_max=10).get_config()
            {'T_max': 10, 'eta_min': 0.0}
        """
        return {"T_max": self.T_max, "eta_min": self.eta_min}


SCHEDULERS = {"StepLR": StepLR, "CosineLR": CosineLR}


def get(optimizer, params, **kwargs):
    """An optimiser from an instance (returned as is) or a name, case-insensitive ("sgd",
    "adam", "adamw", "saddlefreenewton"), built over ``params`` with ``kwargs``. ValueError for an
    unknown name, listing the known ones.

    Example:

        >>> from lamina import nn, optim
        >>> type(optim.get("adam", nn.Dense(3, 2).parameters(), lr=0.01)).__name__
        'Adam'
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    names = {k.lower(): v for k, v in OPTIMIZERS.items()}
    try:
        cls = names[str(optimizer).lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {sorted(names)}") from None
    return cls(params, **kwargs)


# -- second order: saddle-free Newton (Dauphin et al. 2014), a closure-driven step -----------
_ARMIJO_C1 = 1e-4
_CURVATURES = ("absolute", "signed")


class SaddleFreeNewton(Optimizer):
    """The saddle-free Newton method (Dauphin et al. 2014) in its Krylov-subspace form.

    Newton's method steps by -H^-1 g. Along a direction of negative curvature that step points
    *towards* the critical point, so saddle points attract Newton's method. Gradient descent moves
    away from them, but slowly where the curvature is small. The saddle-free Newton step is
    -|H|^-1 g, where |H| is the Hessian with its eigenvalues replaced by their absolute values: it
    rescales each eigen-direction as Newton's method does, and it always goes downhill, so a saddle
    repels it.

    One ``step(closure)``, with the trainable parameters as one vector w of P
    numbers (kept on the host in float64; parameters of any backend cross with p.numpy()/p.assign()):

    1. g, the gradient at w: one closure call.
    2. k = ``krylov_dim`` Lanczos steps starting from g (``lamina.diagnostics.lanczos``, the same
       code that ``hessian_spectrum`` runs) on Hessian-vector products. Each product is a central
       difference of the closure's gradients at w +- h v (``diagnostics.central_difference_hvp``),
       so it costs two closure calls. The result is an orthonormal basis V (k, P) of the Krylov
       subspace span{g, Hg, ..., H^(k-1) g} and the projected Hessian T = V H V^T (k x k,
       tridiagonal).
    3. T = U diag(lambda) U^T, and the step within the subspace is
       d = -V^T U diag(1 / (|lambda| + damping)) U^T V g. With k = P and damping 0 this is
       exactly -|H|^-1 g. With damping 0, eigenvalues below 1e-12 max|lambda| are left out (a
       pseudo-inverse).
    4. A backtracking line search over the step length, t = lr, lr/2, lr/4, ... (at most
       ``max_backtracks`` halvings). It accepts the first t whose loss (one closure call each)
       satisfies Armijo's condition f(w + t d) <= f(w) + 1e-4 t g.d. A non-finite loss at a trial
       point counts as a rejection. When no t is accepted the parameters stay at w.
       ``line_search=False`` takes t = lr without evaluating it.

    Closure calls per step: 1 + 2k + the line-search trials (1 to max_backtracks + 1; 0 without
    the line search). ``closure_calls`` counts them over the optimiser's life and ``last_step``
    describes the latest step. ``curvature="signed"`` uses lambda in place of |lambda|, which is
    Newton's method restricted to the Krylov subspace. It is there for comparison: saddles attract
    it, and its direction need not be a descent direction, so use it with ``line_search=False``.

    ``closure()`` follows PyTorch's LBFGS: it zeroes the gradients, runs the forward and backward
    passes and returns the loss as a number. It must compute the same function every time it is
    called within a step (the same data, no dropout), because the Hessian-vector products are
    differences of its gradients. ``fit`` builds such a closure over each minibatch, so use large
    batches or full batches.

    Options:

    lr: the first step length the line search tries (1 is the full saddle-free Newton step).
    damping: added to |lambda| (absolute, in the loss's curvature units; >= 0).
    krylov_dim: k, the Lanczos steps per optimiser step (>= 1; at most the parameter count).
    eps: the norm of the central-difference perturbation (default
        ``diagnostics.default_hvp_eps``: 1e-5 in float64, 3e-3 in float32, relative to the RMS
        of the parameters when that exceeds 1).
    line_search, max_backtracks: step 4. curvature: "absolute" (saddle-free Newton) or
        "signed" (Newton's method in the subspace).

    The trainable parameters are stepped together as one vector. A parameter's ``lr_scale``
    multiplies its part of the step, and 0 leaves it out of the vector altogether. Param groups
    must share their options. ``step(closure, keep_previous=True)`` remembers the point before
    the step, which ``undo()`` brings back (``fit`` uses this after a non-finite loss).

    Example (on a quadratic, k = P = 2 and no damping: one exact Newton step to the minimum):

        >>> import numpy as np
        >>> from lamina import nn, optim
        >>> p = nn.Parameter(np.array([1.0, 1.0]))   # f(w) = (w0^2 + 4 w1^2) / 2
        >>> def closure():
        ...     w = p.numpy(); p.grad = np.array([w[0], 4 * w[1]])
        ...     return 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
        >>> opt = optim.SaddleFreeNewton([p], damping=0.0, krylov_dim=2)
        >>> opt.step(closure), bool(np.abs(p.numpy()).max() < 1e-9), opt.closure_calls
        (2.5, True, 6)
    """

    defaults = {"lr": 1.0, "damping": 1e-3, "krylov_dim": 20, "eps": None, "line_search": True,
                "max_backtracks": 10, "curvature": "absolute"}
    requires_closure = True  # fit and train_step call step(closure)

    def __init__(self, params, lr=1.0, damping=1e-3, krylov_dim=20, eps=None, line_search=True, max_backtracks=10,
                 curvature="absolute"):
        super().__init__(params, None, lr=lr, damping=damping, krylov_dim=krylov_dim, eps=eps,
                         line_search=line_search, max_backtracks=max_backtracks, curvature=curvature)
        first = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        for g in self.param_groups[1:]:
            if {k: v for k, v in g.items() if k != "params"} != first:
                raise ValueError("SaddleFreeNewton steps all its parameters as one vector: its param groups must "
                                 "share their options")
        self.closure_calls = 0
        self.steps = 0
        self.last_step = None
        self._before = None  # (params, w) kept by step(keep_previous=True), for undo()

    @property
    def closure_calls_per_step(self):
        """The mean number of closure calls per step so far, a float (None before the first
        step): the cost of a step in loss-and-gradient evaluations.

        Example:

            >>> from lamina import nn, optim
            >>> print(optim.SaddleFreeNewton(nn.Dense(3, 2).parameters()).closure_calls_per_step)
            None
        """
        return self.closure_calls / self.steps if self.steps else None

    def _check(self, group):
        lr, damping, k = group["lr"], group["damping"], group["krylov_dim"]
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if isinstance(damping, bool) or not isinstance(damping, (int, float)) or not (
                math.isfinite(damping) and damping >= 0):
            raise ValueError(f"damping must be a finite number >= 0, got {damping!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"krylov_dim must be an integer >= 1, got {k!r}")
        eps = group["eps"]
        if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float)) or
                                not (math.isfinite(eps) and eps > 0)):
            raise ValueError(f"eps must be None or a finite number > 0, got {eps!r}")
        mb = group["max_backtracks"]
        if isinstance(mb, bool) or not isinstance(mb, (int, np.integer)) or mb < 0:
            raise ValueError(f"max_backtracks must be an integer >= 0, got {mb!r}")
        if group["curvature"] not in _CURVATURES:
            raise ValueError(f"curvature must be one of {_CURVATURES}, got {group['curvature']!r}")
        if not isinstance(group["line_search"], bool):
            raise ValueError(f"line_search must be True or False, got {group['line_search']!r}")

    # -- one step --------------------------------------------------------------------------------
    def _stepped(self):
        return [p for p in self.params() if p.trainable and p.lr_scale != 0.0]

    def step(self, closure=None, keep_previous=False):
        """One saddle-free Newton step; returns the loss at the point before the step.

        closure(): zeroes the gradients, computes the loss and its gradients, and returns the loss.
        A non-finite loss or gradient at the current point raises FloatingPointError before
        anything has changed. A non-finite Hessian-vector product raises after the parameters
        have been put back.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim
            >>> p = nn.Parameter(np.array([1.0, 1.0]))   # f(w) = (w0^2 + 4 w1^2) / 2
            >>> def closure():
            ...     w = p.numpy(); p.grad = np.array([w[0], 4 * w[1]])
            ...     return 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
            >>> opt = optim.SaddleFreeNewton([p], krylov_dim=2)
            >>> opt.step(closure), opt.last_step["accepted"], opt.last_step["ritz_values"]
            (2.5, True, array([1., 4.]))
        """
        if closure is None or not callable(closure):
            raise TypeError("SaddleFreeNewton.step needs a closure: step(closure), where closure() zeroes the "
                            "gradients, runs forward and backward, and returns the loss")
        g0 = self.param_groups[0]
        params = self._stepped()
        calls_before = self.closure_calls
        if not params:
            self.last_step = self._before = None
            return float(closure())
        w = linalg.parameters_to_vector(params)
        scale = np.concatenate([np.full(p.size, p.lr_scale) for p in params])

        def evaluate(point, gradient=True):
            """Loss (and gradient) at ``point``; the parameters are left there."""
            if point is not None:
                linalg.vector_to_parameters(point, params)
            value = closure()
            self.closure_calls += 1
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"the closure must return the loss as a number, got {type(value).__name__}") from None
            return (value, linalg.gradients_to_vector(params)) if gradient else (value, None)

        f0, g = evaluate(None)
        if not math.isfinite(f0) or not np.all(np.isfinite(g)):
            what = f"loss ({f0})" if not math.isfinite(f0) else "gradient"
            raise FloatingPointError(f"SaddleFreeNewton: the closure returned a non-finite {what} at the current "
                                     "parameters; nothing was changed")
        # (only now: after a non-finite loss here, undo() still brings back the previous step's start)
        self._before = (params, w.copy()) if keep_previous else None
        self.steps += 1
        info = {"loss": f0, "grad_norm": float(np.linalg.norm(g)), "new_loss": f0, "step_length": 0.0,
                "accepted": False, "trials": 0, "ritz_values": np.zeros(0)}
        self.last_step = info
        if info["grad_norm"] == 0.0:  # a critical point: the step -|H|^-1 g is zero
            info["closure_calls"] = self.closure_calls - calls_before
            return f0

        dtype = np.float64 if all(p.dtype == np.float64 for p in params) else np.float32
        eps = linalg.default_hvp_eps(dtype, w) if g0["eps"] is None else float(g0["eps"])

        def hvp(v):
            hv = linalg.central_difference_hvp(lambda point: evaluate(point)[1], w, v, eps)
            if not np.all(np.isfinite(hv)):
                linalg.vector_to_parameters(w, params)
                raise FloatingPointError("SaddleFreeNewton: a Hessian-vector product is not finite (the loss is not "
                                         "finite near the current parameters); the parameters are back where the "
                                         "step started")
            return hv

        lam, d = self._direction(g0, hvp, w.size, g, scale)
        slope = float(g @ d)
        info.update(ritz_values=lam, slope=slope, step_norm=float(np.linalg.norm(d)))
        self._move(g0, evaluate, params, w, d, f0, slope, info)
        info["closure_calls"] = self.closure_calls - calls_before
        return f0

    def _direction(self, g0, hvp, n, g, scale):
        """(Ritz values, the step direction d = -|H|^-1 g in the Krylov subspace of g, times
        the parameters' lr_scale): Lanczos on ``hvp``, then T's eigenvectors."""
        alphas, betas, V = linalg.lanczos(hvp, n, int(g0["krylov_dim"]), seed=self.steps, v0=g, return_basis=True)
        lam, U = np.linalg.eigh(linalg.tridiagonal(alphas, betas))
        curv = np.abs(lam) if g0["curvature"] == "absolute" else lam.copy()
        curv += float(g0["damping"])
        if g0["damping"] == 0:  # a pseudo-inverse: directions of (numerically) zero curvature are left out
            keep = np.abs(curv) > 1e-12 * max(float(np.max(np.abs(lam))), 1e-300)
        else:
            keep = np.ones(len(curv), bool)
        coef = np.zeros(len(curv))
        coef[keep] = -(U[:, keep].T @ (V @ g)) / curv[keep]
        return lam, (V.T @ (U @ coef)) * scale

    def _move(self, g0, evaluate, params, w, d, f0, slope, info):
        """The parameters to w + t d: t = lr, or with the line search the first of lr, lr/2, ...
        that decreases the loss enough (Armijo); none: they stay at w."""
        t = float(g0["lr"])
        if not g0["line_search"]:
            linalg.vector_to_parameters(w + t * d, params)
            info.update(step_length=t, accepted=True, new_loss=None)
            return
        for trial in range(int(g0["max_backtracks"]) + 1):
            f, _ = evaluate(w + t * d, gradient=False)
            info["trials"] = trial + 1
            if math.isfinite(f) and f <= f0 + _ARMIJO_C1 * t * slope:
                info.update(step_length=t, accepted=True, new_loss=f)
                return
            t *= 0.5
        linalg.vector_to_parameters(w, params)  # no acceptable step length: stay

    # -- fit's non-finite-loss recovery ------------------------------------------------------------
    def undo(self):
        """Puts the parameters back where the latest ``step(closure, keep_previous=True)``
        started; a second undo does nothing.

        Example:

            >>> import numpy as np
            >>> from lamina import nn, optim
            >>> p = nn.Parameter(np.array([1.0, 1.0]))   # f(w) = (w0^2 + 4 w1^2) / 2
            >>> def closure():
            ...     w = p.numpy(); p.grad = np.array([w[0], 4 * w[1]])
            ...     return 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
            >>> opt = optim.SaddleFreeNewton([p], krylov_dim=2)
            >>> _ = opt.step(closure, keep_previous=True); opt.undo(); p.numpy()
            array([1., 1.])
        """
        if self._before is not None:
            params, w = self._before
            linalg.vector_to_parameters(w, params)
            self._before = None

    def drop_previous(self):
        """Forgets the point ``undo`` would return to (``fit`` calls it once a step is
        accepted); a later undo does nothing.

        Example:

            >>> from lamina import nn, optim
            >>> opt = optim.SaddleFreeNewton(nn.Dense(3, 2).parameters()); opt.drop_previous(); opt.undo()
        """
        self._before = None



OPTIMIZERS["SaddleFreeNewton"] = SaddleFreeNewton
