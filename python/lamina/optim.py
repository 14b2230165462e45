"""Optimisers and learning-rate schedules.

``SGD`` steps every parameter with the backend's fused ``sgd_step`` kernel and ``Adam``/``AdamW``
with ``adam_step`` (PyTorch's formulas, one pass over memory each). Each parameter is stepped
on its own backend (the optimiser's ``backend`` when one is given); the state (velocities,
moments) lives there too. Parameters may
be given as a list or as PyTorch-style param groups (dicts with "params" and overrides).
The effective learning rate of a parameter is ``group["lr"] * param.lr_scale``. Frozen
parameters (``trainable=False``) are skipped.

Schedules (``StepLR``, ``CosineLR``) set ``group["lr"]`` from ``group["initial_lr"]`` and the
epoch count; call ``step()`` once per epoch, or pass them to ``fit(callbacks=[...])``.
"""
from __future__ import annotations

import math

import numpy as np

from . import backend as _backend


class Optimizer:
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

    def _check(self, group):
        if group["lr"] < 0:
            raise ValueError(f"lr must be >= 0, got {group['lr']}")

    def params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self):
        for p in self.params():
            p.zero_grad()

    def step(self, keep_previous=False):
        """Updates every trainable parameter from its gradient.

        keep_previous: write the new values of the parameters and of their state (velocities,
        moments) into spare arrays and swap them in, keeping the previous ones, so that
        ``undo()`` can bring the exact previous state back. This costs no extra memory traffic
        (the kernels read the old arrays and write the new ones in their one pass) but changes
        which arrays ``p.data`` and the state hold; ``drop_previous()`` moves the values back
        into the parameters' own arrays and frees the spares (``fit`` does both)."""
        raise NotImplementedError

    def _be(self, p):
        return self.backend if self.backend is not None else p.be

    # -- keeping the previous step (fit restores it after a non-finite loss) -------------------
    def _outputs(self, p, st, keys):
        """The spare arrays that receive the new p.data and st[k] (k in keys) in a kept step."""
        sp = self._spares.get(p)
        if sp is None or set(sp) != {"data", *keys}:
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

    def undo(self):
        """Brings back the parameters and the optimiser state (step counts included) from before
        the latest ``step(keep_previous=True)``; a second undo does nothing."""
        for p, st, keys, counted in reversed(self._previous):
            self._swap(p, st, keys)
            if counted:
                st["step"] -= 1
        self._previous = []

    def drop_previous(self):
        """Ends keeping previous steps: the current values go back into each parameter's (and
        state entry's) own arrays, as they were before the first kept step, and the spares are
        freed. One copy per array, only where an odd number of swaps left them elsewhere."""
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
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        for g in self.param_groups:
            g["lr"] = value

    # -- state, for checkpoints -------------------------------------------------------------
    def state_dict(self, params=None):
        """{"type", "param_groups": [hyperparameters + "params": indices], "state": {index: {...}}}.
        Indices are positions in ``params`` (default: the optimiser's own parameter order); state
        arrays are host NumPy copies."""
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
    """PyTorch's SGD: g = grad + wd*p; v = momentum*v + g; p -= lr*(g + momentum*v if nesterov else v)."""

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
        keep = self._begin_step(keep_previous)
        state = self.state
        for g in self.param_groups:
            lr, m, wd, nest = g["lr"], g["momentum"], g["weight_decay"], g["nesterov"]
            for p in g["params"]:
                if not p.trainable:
                    continue
                be = self._be(p)
                plr = lr * p.lr_scale
                if m:
                    st = state.get(p)
                    if st is None:
                        st = state[p] = {"velocity": be.zeros(p.shape, p.dtype)}
                    # (with lr 0 the velocity still integrates the gradient, as in PyTorch)
                    if keep:
                        out = self._outputs(p, st, ("velocity",))
                        be.sgd_step(p.data, p.grad, plr, velocity=st["velocity"], momentum=m, weight_decay=wd,
                                    nesterov=nest, param_out=out["data"], velocity_out=out["velocity"])
                        self._swap_in(p, st, ("velocity",))
                    else:
                        be.sgd_step(p.data, p.grad, plr, velocity=st["velocity"], momentum=m, weight_decay=wd,
                                    nesterov=nest)
                elif plr != 0.0:
                    if keep:
                        out = self._outputs(p, {}, ())
                        be.sgd_step(p.data, p.grad, plr, weight_decay=wd, param_out=out["data"])
                        self._swap_in(p, {}, ())
                    else:
                        be.sgd_step(p.data, p.grad, plr, weight_decay=wd)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's formulas; weight_decay adds wd*p to the gradient (L2).
    One fused ``adam_step`` kernel per parameter."""

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
        keep = self._begin_step(keep_previous)
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
                if keep:
                    out = self._outputs(p, st, ("m", "v"))
                    kw = {"param_out": out["data"], "m_out": out["m"], "v_out": out["v"]}
                be.adam_step(p.data, p.grad, st["m"], st["v"], lr * p.lr_scale, st["step"], beta1=b1, beta2=b2,
                             eps=eps, weight_decay=wd, decoupled=self.decoupled, **kw)
                if keep:
                    self._swap_in(p, st, ("m", "v"), counted=True)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr*wd before the step."""

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, backend=None):
        super().__init__(params, lr, betas, eps, weight_decay, backend)


OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


# -- schedules ------------------------------------------------------------------------------
class LRScheduler:
    """Sets each group's lr to f(initial_lr, epoch). ``last_epoch`` is the number of completed
    epochs (-1 before the first ``step``, which the constructor takes, as in PyTorch)."""

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, initial_lr, epoch):
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr_at(g["initial_lr"], self.last_epoch)

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    # fit(callbacks=[scheduler]) steps it after every epoch.
    def on_epoch_end(self, epoch, logs=None):
        self.step()

    def get_config(self):
        return {}

    def state_dict(self):
        return {"type": type(self).__name__, "config": self.get_config(), "last_epoch": self.last_epoch}

    def load_state_dict(self, sd):
        self.last_epoch = int(sd["last_epoch"]) - 1
        self.step()


class StepLR(LRScheduler):
    """lr = initial_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if int(step_size) < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, initial_lr, epoch):
        return initial_lr * self.gamma ** (epoch // self.step_size)

    def get_config(self):
        return {"step_size": self.step_size, "gamma": self.gamma}


class CosineLR(LRScheduler):
    """lr = eta_min + (initial_lr - eta_min) (1 + cos(pi * min(epoch, T_max) / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if int(T_max) < 1:
            raise ValueError(f"T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, initial_lr, epoch):
        e = min(epoch, self.T_max)
        return self.eta_min + (initial_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2

    def get_config(self):
        return {"T_max": self.T_max, "eta_min": self.eta_min}


SCHEDULERS = {"StepLR": StepLR, "CosineLR": CosineLR}


def get(optimizer, params, **kwargs):
    """An optimiser from an instance (returned as is) or a name ("sgd", "adam", "adamw")."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    names = {k.lower(): v for k, v in OPTIMIZERS.items()}
    try:
        cls = names[str(optimizer).lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {sorted(names)}") from None
    return cls(params, **kwargs)
