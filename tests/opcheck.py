"""One harness for every kernel: each implementation against the reference, forward and backward.

An operation is described once (an ``Op``: the kernel's name, how close its results must be,
its backward kernel and how that is called) and a test is a table of cases plus one call:

    CONV2D = opcheck.Op("conv2d", close=conv_close, backward="conv2d_backward",
                        backward_args=lambda a, kw, out, gy: ((a[0], a[1], gy), kw), wrt=(0, 1, 2),
                        torch=lambda F, x, w, b=None, **kw: F.conv2d(x, w, b, **kw))

    @pytest.mark.parametrize("target", opcheck.targets(CONV2D))
    @pytest.mark.parametrize("shape", SHAPES)
    def test_conv2d(target, rng, shape):
        x, w, b, geo = make(rng, shape)             # host float32 arrays
        opcheck.check(target, CONV2D, (x, w, b), geo)

``targets(op)`` is the list of what one case is checked on, one test each:

- ``native-<isa>-<n>t``: ``lamina.ops.<name>`` on every CPU path of this machine
  (``lamina._native._select_isa``) at 1 and 2 threads;
- every other registered backend (``lamina.backend.available()`` beyond "native" and "numpy",
  e.g. the wrapped stand-in device backend that conftest.py registers): ``be.<name>`` on
  ``be.asarray`` copies of the inputs, results back through ``be.to_numpy``, in float32 where
  the backend has it (kernels the reference does not have yet are skipped there);
- ``fd``: the reference's backward (or a loss's gradient) against float64 central finite
  differences (gradcheck.numeric_grad) of the reference forward;
- ``torch``: the reference in float64 against torch.nn.functional in float64, forward and,
  through autograd, backward (skipped where torch is not installed).

On an implementation, the forward is compared with ``lamina.reference.<name>`` run on float64
copies of the same inputs (``close(got, want, args, kwargs)``, tolerances the op's own), or
bit for bit with the reference in the implementation's dtype (``close=EXACT``); the reference
runs once for all the targets of a case (they run in a row). Then, if the op
has a backward kernel, that kernel is checked the same way on host inputs made from the
reference's forward results and a random grad_y: ``backward_args(args, kwargs, out, grad_y) ->
(args, kwargs)`` of the backward kernel, whose outputs are the gradients of ``args[i]`` for
``i`` in ``wrt``. A loss (``loss=True``) returns ``(loss, dloss/dargs[0])`` itself.

New kernels plug in with one Op and one table: the harness takes every kernel by name from
the implementation (``getattr(lamina.ops, name)``, ``getattr(be, name)``), e.g.

    SCALE = opcheck.Op("scale", close=opcheck.allclose(rtol=1e-6), torch=lambda F, x, alpha: alpha * x)

    @pytest.mark.parametrize("target", opcheck.targets(SCALE))
    @pytest.mark.parametrize("shape", [(0,), (1,), (17,), (3, 5), (300, 411)], ids=str)
    def test_scale(target, rng, shape):
        opcheck.check(target, SCALE, (rng.standard_normal(shape).astype(np.float32),), dict(alpha=-0.5), out=True)

Finite differences run on every element of a small input and on a seeded sample (always the
first and the last element) of a large one. An in-place kernel (``inplace=(0, 3)`` for
sgd_step's param and velocity) is checked over a list of successive calls.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
from typing import Callable, Optional

import numpy as np
import pytest

import lamina
from lamina import ops as _ops
from lamina import reference as _ref

from gradcheck import assert_grad_close, numeric_grad

ISAS = tuple(lamina.backend_info()["isas_available"])
THREADS = (1, 2)
FD_ALL = 128       # finite differences on every element of an input up to this size...
FD_SAMPLES = 10    # ...and on this many (first, last and seeded random ones) of a larger one,
FD_LARGE = 8192    # or on its first and last only when the case has more elements in all
FD_EPS = 1e-6      # the central-difference step


# ---- comparisons -------------------------------------------------------------------------

class _Exact:
    """Bit for bit (NaN equal to NaN) against the reference run in the implementation's dtype."""

    def __call__(self, got, want, args=(), kwargs=None):
        for g, w in zip(_leaves(got), _leaves(want), strict=True):
            if w is None:
                assert g is None
            elif isinstance(w, np.ndarray):
                # (what strict=True checks, spelled out: NumPy < 1.24 has no strict)
                assert isinstance(g, np.ndarray) and g.shape == w.shape and g.dtype == w.dtype, \
                    (type(g), getattr(g, "shape", None), getattr(g, "dtype", None), w.shape, w.dtype)
                np.testing.assert_array_equal(g, w)
            else:
                assert g == w or (np.isnan(g) and np.isnan(w)), (g, w)

    def __repr__(self):
        return "EXACT"


EXACT = _Exact()


def allclose(rtol=1e-6, atol=0.0):
    """close(got, want, ...) of np.testing.assert_allclose on every output (integer outputs exact)."""

    def close(got, want, args=(), kwargs=None):
        for g, w in zip(_leaves(got), _leaves(want), strict=True):
            if w is None:
                assert g is None
            elif isinstance(w, np.ndarray) and w.dtype.kind in "iub":
                np.testing.assert_array_equal(g, w)
            else:
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)

    return close


def each(close1):
    """close(got, want, ...) applying close1(g, w) to every output pair (None where both are None)."""

    def close(got, want, args=(), kwargs=None):
        for g, w in zip(_leaves(got), _leaves(want), strict=True):
            if w is None or g is None:
                assert g is None and w is None, (g, w)
            else:
                close1(g, w)

    return close


def _leaves(v):
    return list(v) if isinstance(v, (tuple, list)) else [v]


# ---- what an op is ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Op:
    name: str                                  # the kernel: lamina.ops.<name>, be.<name>, reference.<name>
    close: Callable = allclose()               # close(got, want, args, kwargs); or EXACT
    other_close: Optional[Callable] = None     # for backends other than native, if looser (not EXACT)
    backward: Optional[str] = None             # the backward kernel's name
    backward_args: Optional[Callable] = None   # (args, kwargs, out, grad_y) -> (args, kwargs) of it
    backward_close: Callable = allclose()
    wrt: tuple = (0,)                          # the backward's outputs are d/d args[i], i in wrt
    y: Optional[int] = None                    # the differentiated output when the forward returns a tuple
    loss: bool = False                         # forward returns (loss, dloss/dargs[0])
    inplace: tuple = ()                        # positions of the arguments updated in place
    torch: Optional[Callable] = None           # torch(F, *args, **kwargs) -> the forward's outputs
    fd_rtol: float = 1e-6
    fd_atol: float = 1e-8

    @property
    def differentiable(self):
        return self.loss or self.backward is not None

    def backward_op(self):
        return Op(self.backward, close=self.backward_close)


# ---- where it runs -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Target:
    kind: str                    # "native", "backend", "fd" or "torch"
    id: str
    isa: Optional[str] = None
    threads: tuple = ()          # native: the thread counts it runs at, one after the other
    backend: Optional[str] = None

    def __repr__(self):
        return self.id

    @property
    def be(self):
        return lamina.backend.get_backend(self.backend)

    @property
    def dtype(self):
        if self.kind == "native":
            return np.dtype(np.float32)
        dtypes = [np.dtype(d) for d in self.be.dtypes]
        return np.dtype(np.float32) if np.dtype(np.float32) in dtypes else dtypes[0]

    def kernel(self, name):
        if self.kind == "native":
            return getattr(_ops, name)
        if not hasattr(_ref, name):
            pytest.skip(f"lamina.reference has no {name} yet: nothing to check backend {self.backend!r} against")
        return getattr(self.be, name)

    def asarray(self, a):
        if not isinstance(a, np.ndarray):
            return a
        if self.kind == "native":
            return a  # lamina.ops takes host arrays as they are (strided views included)
        return self.be.asarray(a.astype(self.dtype) if a.dtype.kind == "f" else a)

    def to_numpy(self, r):
        if r is None or isinstance(r, (bool, int, float, str, np.generic)):
            return np.asarray(r) if isinstance(r, np.generic) else r
        if isinstance(r, (tuple, list)):
            return type(r)(self.to_numpy(v) for v in r)
        return np.asarray(r) if self.kind == "native" else self.be.to_numpy(r)

    def runs(self):
        """(label, context) for each run of the implementation: a native path once per thread
        count (all compared with one reference result), any other backend once."""
        if self.kind != "native":
            return [(self.id, contextlib.nullcontext())]
        return [(f"{self.id} at {n} thread{'s' * (n > 1)}", self._active(n)) for n in self.threads]

    @contextlib.contextmanager
    def _active(self, threads):
        isa0, threads0 = lamina.backend_info()["isa"], lamina.get_num_threads()
        lamina._native._select_isa(self.isa)
        lamina.set_num_threads(threads)
        try:
            yield
        finally:
            lamina._native._select_isa(isa0)
            lamina.set_num_threads(threads0)


def native_targets(isas=ISAS, threads=THREADS):
    return [Target("native", f"native-{i}-{n}t", isa=i, threads=(n,)) for i in isas for n in threads]


def backend_targets():
    return [Target("backend", n, backend=n) for n in lamina.backend.available() if n not in ("native", "numpy")]


def targets(*ops, native=True, backends=True, threads=THREADS, fd=True, torch=True, requires=()):
    """pytest params: every implementation (each native path x threads, every other registered
    backend), then "fd" if one of ``ops`` is differentiable and "torch" if one has a torch twin
    (native/backends/fd/torch=False leave those out, e.g. fd for inputs with ties or kinks).
    ``requires``: optional kernels (lamina.backend.OPTIONAL_KERNELS) the ops are; a registered
    backend lacking one of them is listed as a skip that names the missing kernels."""
    ts = (native_targets(threads=threads) if native else []) + (backend_targets() if backends else [])
    if fd and any(op.differentiable for op in ops):
        ts.append(Target("fd", "fd"))
    if torch and any(op.torch is not None for op in ops):
        ts.append(Target("torch", "torch"))
    return [pytest.param(t, id=t.id, marks=_lacking(t, requires)) for t in ts]


def _lacking(target, kernels):
    if target.kind != "backend":
        return ()
    missing = [k for k in kernels if not lamina.backend.has_kernel(target.be, k)]
    if not missing:
        return ()
    return (pytest.mark.skip(reason=f"backend {target.backend!r} lacks the optional kernel(s) {missing}"),)


# ---- the check -----------------------------------------------------------------------------

def check(target, op, args, kwargs=None, *, out=False, backward=True):
    """Checks ``op`` on one case for ``target`` (one of ``targets()``).

    args: the positional arguments, host arrays (float32) and plain values; or, for an op
    with ``inplace`` positions, a list of such tuples: successive calls on the same state (the
    in-place arguments are the same objects in every tuple; they are compared after the last).
    out=True also calls with a NaN-filled ``out=`` of the implementation and checks it is
    returned and filled. backward=False leaves out the backward kernel and its gradients.
    """
    kwargs = dict(kwargs or {})
    calls = args if isinstance(args, list) else [args]
    if target.kind == "fd":
        if op.differentiable and backward:
            _check_fd(op, calls[0], kwargs)
        return
    if target.kind == "torch":
        if op.torch is not None:
            _check_torch(op, calls[0], kwargs, backward)
        return
    want = _check_impl(target, op, calls, kwargs, out)
    if op.backward and backward:
        host = _cast(want, target.dtype)
        y = host[op.y] if op.y is not None else host
        gy = _rng(op.name).standard_normal(np.shape(y)).astype(target.dtype)
        bargs, bkw = op.backward_args(calls[0], kwargs, host, gy)
        _check_impl(target, op.backward_op(), [bargs], bkw)


def _ref_dtype(target, op):
    return target.dtype if op.close is EXACT else np.dtype(np.float64)


def _check_impl(target, op, calls, kwargs, out=False):
    """Runs the calls on the reference once and on each run of the implementation; compares;
    returns the reference's (last) result (with the in-place arguments after it, if any)."""
    fn = target.kernel(op.name)
    ref_dtype = _ref_dtype(target, op)
    close = op.other_close if target.kind == "backend" and op.other_close is not None else op.close
    first = calls[0]
    for c in calls[1:]:
        assert all(c[i] is first[i] for i in op.inplace), "in-place arguments must be the same objects"
    want = _reference(op, calls, kwargs, ref_dtype)
    for label, context in target.runs():
        with context, _labelled(label):
            state = {i: target.asarray(_copy(first[i])) for i in op.inplace}
            for c in calls:
                got = target.to_numpy(fn(*[state[i] if i in state else target.asarray(a) for i, a in enumerate(c)],
                                         **kwargs))
            if op.inplace:
                got = (got,) + tuple(target.to_numpy(state[i]) for i in op.inplace)
            close(_normalise(got, want, target.dtype), want, calls[-1], kwargs)
            if out:  # the same into a NaN-filled out= of the implementation
                buf = target.asarray(np.full(np.shape(want), np.nan, target.dtype))
                assert fn(*[target.asarray(a) for a in first], **kwargs, out=buf) is buf, "out= must be returned"
                close(_normalise(target.to_numpy(buf), want, target.dtype), want, first, kwargs)
    return want


_cache = collections.OrderedDict()  # the last few reference results: a case's targets run in a row


def _reference(op, calls, kwargs, ref_dtype):
    """The reference's result of the calls on copies in ref_dtype (in-place arguments after it)."""
    key = (op.name, ref_dtype.str, repr(sorted(kwargs.items())), tuple(_digest(a) for c in calls for a in c))
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    ref_state = {i: _cast(calls[0][i], ref_dtype, copy=True) for i in op.inplace}
    for c in calls:
        ref_args = [ref_state[i] if i in ref_state else _cast(a, ref_dtype, copy=True) for i, a in enumerate(c)]
        want = getattr(_ref, op.name)(*ref_args, **kwargs)
    if op.inplace:
        want = (want,) + tuple(ref_state[i] for i in op.inplace)
    want = _cache[key] = _normalise(want, want, ref_dtype, check=False)
    while len(_cache) > 8:
        _cache.popitem(last=False)
    return want


def _digest(a):
    if isinstance(a, np.ndarray):
        return (a.shape, a.dtype.str, hashlib.blake2b(np.ascontiguousarray(a).data, digest_size=16).digest())
    return repr(a)


@contextlib.contextmanager
def _labelled(label):
    try:
        yield
    except AssertionError as e:
        raise AssertionError(f"[{label}] {e}") from None


def _normalise(got, want, dtype, check=True):
    """got's outputs as host NumPy arrays (or Python numbers, None) shaped like want's; checks
    shapes and that float results come in the implementation's dtype."""
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), (type(got), got)
        return tuple(_normalise(g, w, dtype, check) for g, w in zip(got, want))
    if want is None or (isinstance(want, (bool, int, float)) and not isinstance(want, np.generic)):
        if check:
            assert type(got) is type(want), f"expected a {type(want).__name__}, got {type(got).__name__}"
        return got
    want = np.asarray(want)
    if np.isscalar(got) and want.ndim == 0:
        # a backend may hand a 0-d result back as a Python or NumPy scalar (the wrapped one does)
        got = np.asarray(got, dtype=got.dtype if isinstance(got, np.generic) else
                         (dtype if want.dtype == np.float64 else want.dtype))
    assert isinstance(got, np.ndarray), type(got)
    if check:
        assert got.shape == want.shape, (got.shape, want.shape)
        expect = dtype if want.dtype == np.float64 or want.dtype == dtype else want.dtype
        assert got.dtype == expect, (got.dtype, expect)
    return got


def _cast(v, dtype, copy=False):
    if isinstance(v, (tuple, list)):
        return type(v)(_cast(x, dtype, copy) for x in v)
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return v.astype(dtype, copy=copy) if copy or v.dtype != dtype else v
    return v


def _copy(v):
    return v.copy() if isinstance(v, np.ndarray) else v


def _rng(name):
    return np.random.default_rng(sum(name.encode()) + 8)


# ---- the reference backward against finite differences -------------------------------------

def _sample(n, rng, large):
    if n <= FD_ALL and not large:
        return None
    k = 2 if large else FD_SAMPLES
    return np.unique(np.concatenate([[0, n - 1], rng.choice(n, size=min(n, k - 2), replace=False)]))


def _check_fd(op, args, kwargs):
    args = list(_cast(list(args), np.float64, copy=True))
    fwd = getattr(_ref, op.name)
    out = fwd(*args, **kwargs)
    rng = _rng(op.name)
    if op.loss:
        y0, weights = out[0], None
        grads = {0: out[1]}
    else:
        y0 = out[op.y] if op.y is not None else out
        weights = rng.standard_normal(np.shape(y0))
        bargs, bkw = op.backward_args(args, kwargs, out, weights)
        analytic = getattr(_ref, op.backward)(*bargs, **bkw)
        analytic = analytic if isinstance(analytic, tuple) else (analytic,)
        grads = {i: g for i, g in zip(op.wrt, analytic) if i < len(args)}
    assert any(isinstance(args[i], np.ndarray) for i in grads), "nothing to differentiate"
    large = sum(np.size(a) for a in args + _leaves(out) if isinstance(a, np.ndarray)) > FD_LARGE
    for i, g in grads.items():
        if not isinstance(args[i], np.ndarray) or g is None:
            continue
        x = args[i]
        assert np.shape(g) == x.shape, (np.shape(g), x.shape)
        if x.size == 0:
            continue

        def objective():  # C = <f(x), w> less its value at the unperturbed x (cancels exactly)
            r = fwd(*args, **kwargs)
            if op.loss:
                return r[0] - y0
            r = r[op.y] if op.y is not None else r
            return float(np.sum((r - y0) * weights))

        idx = _sample(x.size, rng, large)
        numeric = numeric_grad(objective, x, eps=FD_EPS, in_place=True, indices=idx)
        g = np.asarray(g, np.float64)
        assert g.shape == x.shape, (g.shape, x.shape)
        if idx is not None:
            g, numeric = g.reshape(-1)[idx], numeric.reshape(-1)[idx]
        # a loss is one float64 number: its rounding (a few ulp of |loss|) over the 2 eps step
        roundoff = 4 * np.finfo(np.float64).eps * abs(y0) / FD_EPS if op.loss else 0.0
        assert_grad_close(g, numeric, rtol=op.fd_rtol, atol=max(op.fd_atol, roundoff))


# ---- the reference against PyTorch -----------------------------------------------------------

def _check_torch(op, args, kwargs, backward):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    grad_pos = set(op.wrt) if (op.differentiable and backward) else set()
    args64 = list(_cast(list(args), np.float64, copy=True))
    targs = [torch.tensor(a, requires_grad=(i in grad_pos and a.dtype.kind == "f"))
             if isinstance(a, np.ndarray) else a for i, a in enumerate(args64)]
    tout = op.torch(F, *targs, **kwargs)
    want = getattr(_ref, op.name)(*args64, **kwargs)
    got_fwd = tout if not op.loss else tout.item()
    _torch_close(_detach(got_fwd), want[0] if op.loss else want, f"{op.name} forward")
    if not grad_pos:
        return
    if op.loss:
        tout.backward()
        grads = {0: want[1]}
    else:
        ty = tout[op.y] if op.y is not None else tout
        gy = _rng(op.name).standard_normal(tuple(ty.shape))
        ty.backward(torch.tensor(gy))
        out = want
        bargs, bkw = op.backward_args(args64, kwargs, out, gy)
        analytic = getattr(_ref, op.backward)(*bargs, **bkw)
        analytic = analytic if isinstance(analytic, tuple) else (analytic,)
        grads = {i: g for i, g in zip(op.wrt, analytic) if i < len(args)}
    for i, g in grads.items():
        if g is None or not isinstance(targs[i], torch.Tensor) or targs[i].grad is None:
            continue
        _torch_close(targs[i].grad.numpy(), g, f"{op.name} gradient of argument {i}")


def _detach(v):
    if isinstance(v, (tuple, list)):
        return type(v)(_detach(x) for x in v)
    return v.detach().numpy() if hasattr(v, "detach") else v


def _torch_close(got, want, what):
    for g, w in zip(_leaves(got), _leaves(want), strict=True):
        w = np.asarray(w)
        if w.dtype.kind in "iub":
            np.testing.assert_array_equal(g, w, err_msg=what)
        else:
            scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12 * scale, err_msg=what)
