"""Data-parallel training across processes and machines, on MPI (through mpi4py).

Install with ``pip install "lamina[mpi]"`` (mpi4py >= 4.1 and the ``mpich`` wheel; a system MPI
works too) and launch with ``mpiexec``::

    mpiexec -n 4 lamina train --distributed
    mpiexec -n 4 python train.py            # train.py calls model.fit(..., distributed=True)

Every rank runs the same program on its own shard of the data. ``init()`` returns
``(rank, world_size)`` (``(0, 1)`` outside ``mpiexec``). ``DistributedOptimizer(opt)`` wraps any
lamina optimiser: when it is made, rank 0's parameters are broadcast to every rank; at every
step the ranks' gradients are averaged with one in-place ``Allreduce`` on one flat contiguous
buffer (a few buckets of ``bucket_bytes`` for large models; never one call per parameter), then
the inner optimiser steps, identically on every rank, so the parameters stay equal everywhere.

The flat buffer lives on the parameters' backend and is packed and unpacked with its kernels
(``scale``, ``fill``): host backends hand it to MPI as it is; a device backend whose arrays have
``__cuda_array_interface__`` hands it straight to a CUDA-aware MPI (``cuda_aware=True`` or
``LAMINA_MPI_CUDA_AWARE=1``: MPI libraries do not say portably whether they are); any other
backend goes through one host copy (``to_numpy``) and back (``asarray``) per bucket.

The same Allreduce carries each rank's loss sum and sample count: each rank's gradient is
weighted by its sample count, so an uneven last batch is averaged exactly, and the loss that
decides whether training must stop (a NaN or infinite loss) is the same number on every rank,
so all ranks stop together. An exception on any rank, inside ``fit`` or uncaught anywhere after
``init()``, aborts the whole job (``MPI_Abort``, as ``python -m mpi4py`` does) instead of
leaving the other ranks waiting in a collective forever.
"""
from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
import os
import sys
import time
import traceback

import numpy as np

EXTRA = 'pip install "lamina[mpi]"'


class MPIUnavailableError(ImportError):
    """mpi4py (or the MPI library under it) is not installed: raised by ``init``, ``comm`` and
    every collective, with the extra to install (``pip install "lamina[mpi]"``) in its message.
    A subclass of ImportError, so ``except ImportError`` catches it.

    Example:

        >>> from lamina import distributed
        >>> issubclass(distributed.MPIUnavailableError, ImportError)
        True
    """


_comm = None
_hook_installed = False
# this rank's number of samples in the minibatch fit is stepping (set by Shard.batches): the
# weight of its loss and gradients when a closure optimiser evaluates them
_batch_samples: contextvars.ContextVar = contextvars.ContextVar("lamina_batch_samples", default=None)


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise MPIUnavailableError(
            f"distributed training needs mpi4py and an MPI library, which are not installed ({e}); "
            f"install the extra: {EXTRA}") from None
    return MPI


def init(abort_on_exception=True):
    """Starts MPI (once) and returns ``(rank, world_size)``; ``(0, 1)`` outside ``mpiexec``.
    With ``abort_on_exception`` (and more than one rank), an exception that reaches the top
    of any rank prints its traceback and aborts every rank (``MPI_Abort``).
    MPIUnavailableError, naming the extra to install, when mpi4py is missing.

    Example:

        >>> from lamina import distributed
        >>> distributed.init()   # outside mpiexec
        (0, 1)
    """
    global _comm, _hook_installed
    MPI = _mpi()
    if _comm is None:
        _comm = MPI.COMM_WORLD
    if abort_on_exception and _comm.Get_size() > 1 and not _hook_installed:
        previous = sys.excepthook

        def hook(kind, value, tb):
            previous(kind, value, tb)
            abort(code=1)

        sys.excepthook = hook
        _hook_installed = True
    return _comm.Get_rank(), _comm.Get_size()


def comm():
    """The communicator (``MPI.COMM_WORLD``), starting MPI (``init()``) when needed.
    MPIUnavailableError when mpi4py is missing.

    Example:

        >>> from lamina import distributed
        >>> distributed.comm().Get_size() >= 1
        True
    """
    if _comm is None:
        init()
    return _comm


def rank() -> int:
    """This process's rank, 0 ... world_size() - 1 (0 outside ``mpiexec``), starting MPI when
    needed. MPIUnavailableError when mpi4py is missing.

    Example:

        >>> from lamina import distributed
        >>> 0 <= distributed.rank() < distributed.world_size()
        True
    """
    return comm().Get_rank()


def world_size() -> int:
    """The number of ranks in the job (1 outside ``mpiexec``), starting MPI when needed.
    MPIUnavailableError when mpi4py is missing.

    Example:

        >>> from lamina import distributed
        >>> distributed.world_size() >= 1
        True
    """
    return comm().Get_size()


def local_size() -> int:
    """The number of ranks on this machine (``MPI.COMM_TYPE_SHARED``), to split its cores
    between them: 1 outside ``mpiexec``. MPIUnavailableError when mpi4py is missing.

    Example:

        >>> from lamina import distributed
        >>> 1 <= distributed.local_size() <= distributed.world_size()
        True
    """
    c = comm()
    MPI = _mpi()
    local = c.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return local.Get_size()
    finally:
        local.Free()


def abort(exc=None, code=1):
    """Prints ``exc`` (with its traceback, prefixed by this rank) on stderr, flushes both
    streams and ends every rank of the job with exit code ``code`` (``MPI_Abort``); it does not
    return. ``fit(distributed=True)`` calls it for an exception on one rank, so the others do
    not wait in a collective forever.

    Example (not run: it would end the process):

        try:
            train()
        except Exception as e:
            distributed.abort(e)
    """
    if exc is not None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write(f"[lamina rank {rank()}] aborting the job: {text}")
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    comm().Abort(code)


@contextlib.contextmanager
def abort_on_error(active=True):
    """Within the block, an exception on one rank aborts the job (the other ranks would wait
    for it forever); a non-finite loss, which every rank sees together, is raised as usual.

    Example:

        >>> from lamina import distributed
        >>> with distributed.abort_on_error():
        ...     pass   # the per-rank work: an exception here would end every rank
    """
    from .losses import NonFiniteLossError

    if not active or world_size() == 1:
        yield
        return
    try:
        yield
    except NonFiniteLossError:
        raise
    except BaseException as e:
        abort(e)
        raise


# -- moving a flat buffer of a backend through MPI ------------------------------------------------
def _cuda_aware_default():
    return os.environ.get("LAMINA_MPI_CUDA_AWARE", "").strip().lower() in ("1", "true", "yes", "on")


class _Flat:
    """A flat array on backend ``be`` and the entries [(param, view)] packed in it; ``extra``
    trailing values (the loss sum and the sample count) after the parameters."""

    def __init__(self, be, dtype, params, extra=0):
        self.be = be
        self.size = sum(p.size for p in params)
        self.array = be.empty((self.size + extra,), dtype)
        self.entries, off = [], 0
        for p in params:
            self.entries.append((p, self.array[off: off + p.size].reshape(p.shape)))
            off += p.size
        self.extra = self.array[self.size:]


def _through_mpi(flat, op, cuda_aware):
    """Runs ``op(buffer)`` (an in-place collective) on ``flat.array``: as it is when MPI can
    read it (host memory, or device memory with a CUDA-aware MPI), else through a host copy.
    Returns (the array holding the result, the host copy or None)."""
    be, a = flat.be, flat.array
    if cuda_aware and hasattr(a, "__cuda_array_interface__"):
        sync = getattr(be, "synchronize", None)
        if sync is not None:
            sync()  # the kernels that packed it must have finished
        op(a)
        return a, None
    host = be.to_numpy(a)
    op(host)
    if host is a:  # a host backend: MPI worked on the buffer itself
        return a, host
    return be.asarray(host), host


def broadcast_parameters(params, root=0, communicator=None, cuda_aware=None):
    """Every rank's ``params`` (a list of Parameters, the same structure everywhere) set to
    rank ``root``'s, with one Bcast of one flat buffer per backend and dtype.

    Example:

        >>> import numpy as np
        >>> from lamina import distributed, nn, optim
        >>> model = nn.Sequential(nn.Dense(4, 2))
        >>> distributed.broadcast_parameters(model.parameters())   # every rank now holds rank 0's values
        >>> model.parameters()[0].shape
        (2, 4)
    """
    c = communicator or comm()
    if c.Get_size() == 1 or not params:
        return
    cuda_aware = _cuda_aware_default() if cuda_aware is None else cuda_aware
    groups = {}
    for p in params:
        groups.setdefault((id(p.be), p.dtype), []).append(p)
    for ps in groups.values():
        be = ps[0].be
        flat = _Flat(be, ps[0].dtype, ps)
        for p, view in flat.entries:
            be.copy(p.data, out=view)
        result, _ = _through_mpi(flat, lambda buf: c.Bcast(buf, root=root), cuda_aware)
        off = 0
        for p, _view in flat.entries:
            be.copy(result[off: off + p.size].reshape(p.shape), out=p.data)
            off += p.size


class DistributedOptimizer:
    """Wraps a lamina optimiser for data-parallel training (see the module docstring).

    ``synchronize(loss, count)`` averages the gradients across ranks, weighted by each rank's
    sample ``count``, in place in every ``p.grad``, and returns the mean loss over all ranks'
    samples; ``step()`` synchronizes first when that has not happened since the last step
    (a hand-written loop: forward, backward, ``opt.step()``), then steps the inner optimiser
    with the same keywords. ``undo``, ``drop_previous``, ``state_dict``, ``load_state_dict``,
    ``param_groups``, ``lr``, ``state`` and everything else are the inner optimiser's.
    ``stats`` counts steps and the seconds spent packing + reducing + unpacking (``sync_s``)
    and in MPI itself (``mpi_s``).

    Example:

        >>> import numpy as np
        >>> from lamina import distributed, nn, optim
        >>> model = nn.Sequential(nn.Dense(4, 2))
        >>> opt = distributed.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))
        >>> model = model.compile(optimizer=opt, loss="cross_entropy")
        >>> loss, out = model.train_step(np.ones((8, 4), np.float32), np.zeros(8, np.int64))
        >>> opt, opt.stats["steps"]
        (DistributedOptimizer(<lamina.optim.SGD object at ...>, rank 0 of 1), 1)
    """

    def __init__(self, optimizer, communicator=None, bucket_bytes=64 << 20, cuda_aware=None, broadcast=True):
        if isinstance(optimizer, DistributedOptimizer):
            optimizer = optimizer.optimizer
        self.__dict__["optimizer"] = optimizer
        self.comm = communicator or comm()
        self.world_size = self.comm.Get_size()
        self.rank = self.comm.Get_rank()
        self.bucket_bytes = int(bucket_bytes)
        self.cuda_aware = _cuda_aware_default() if cuda_aware is None else bool(cuda_aware)
        step = getattr(optimizer, "step")
        self._undoable = callable(getattr(optimizer, "undo", None)) and \
            "keep_previous" in inspect.signature(step).parameters
        self._layout, self._layout_key = None, None
        self._synced = False
        self.last_loss, self.last_count = float("nan"), 0
        self.stats = {"steps": 0, "sync_s": 0.0, "mpi_s": 0.0}
        if broadcast:
            broadcast_parameters(optimizer.params(), communicator=self.comm, cuda_aware=self.cuda_aware)

    # -- the inner optimiser's interface ------------------------------------------------------
    def __getattr__(self, name):  # only for names not defined here
        if name in ("undo", "drop_previous") and not self.__dict__.get("_undoable", False):
            raise AttributeError(name)
        return getattr(self.__dict__["optimizer"], name)

    @property
    def param_groups(self):
        """The inner optimiser's parameter groups (a list of dicts of hyperparameters with
        their ``params``), the same objects: editing one changes the inner optimiser.

        Example:

            >>> from lamina import distributed, nn, optim
            >>> model = nn.Sequential(nn.Dense(3, 2))
            >>> opt = distributed.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))
            >>> opt.param_groups[0]["lr"]
            0.1
        """
        return self.optimizer.param_groups

    @property
    def state(self):
        """The inner optimiser's per-parameter state (momentum buffers, Adam moments), empty
        before its first step.

        Example:

            >>> from lamina import distributed, nn, optim
            >>> model = nn.Sequential(nn.Dense(3, 2))
            >>> distributed.DistributedOptimizer(optim.SGD(model.parameters())).state
            {}
        """
        return self.optimizer.state

    @property
    def lr(self):
        """The inner optimiser's learning rate; setting it sets the inner one's (schedulers do).

        Example:

            >>> from lamina import distributed, nn, optim
            >>> model = nn.Sequential(nn.Dense(3, 2))
            >>> opt = distributed.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))
            >>> opt.lr = 0.05; opt.optimizer.lr
            0.05
        """
        return self.optimizer.lr

    @lr.setter
    def lr(self, value):
        self.optimizer.lr = value

    def params(self):
        """The inner optimiser's Parameters (a list, in its order).

        Example:

            >>> from lamina import distributed, nn, optim
            >>> model = nn.Sequential(nn.Dense(3, 2))
            >>> len(distributed.DistributedOptimizer(optim.SGD(model.parameters())).params())
            2
        """
        return self.optimizer.params()

    def zero_grad(self):
        """The inner optimiser's ``zero_grad``: marks every parameter's gradient zero (local to
        this rank; nothing is communicated).

        Example:

            >>> from lamina import distributed, nn, optim
            >>> model = nn.Sequential(nn.Dense(3, 2))
            >>> distributed.DistributedOptimizer(optim.SGD(model.parameters())).zero_grad()
        """
        self.optimizer.zero_grad()

    def state_dict(self, *args, **kwargs):
        """The inner optimiser's ``state_dict`` (the same on every rank, since every rank steps
        identically): what checkpoints save.

        Example:

            >>> from lamina import distributed, nn, optim
            >>> model = nn.Sequential(nn.Dense(3, 2))
            >>> sorted(distributed.DistributedOptimizer(optim.SGD(model.parameters())).state_dict())
            ['param_groups', 'state', 'type']
        """
        return self.optimizer.state_dict(*args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        """The inner optimiser's ``load_state_dict``: restores ``state_dict()``'s dict (every
        rank loads the same one). Its errors are the inner optimiser's (a dict of another
        optimiser type or parameter layout).

        Example:

            >>> from lamina import distributed, nn, optim
            >>> model = nn.Sequential(nn.Dense(3, 2))
            >>> opt = distributed.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))
            >>> opt.load_state_dict(opt.state_dict())
        """
        return self.optimizer.load_state_dict(*args, **kwargs)

    def __repr__(self):
        return f"DistributedOptimizer({self.optimizer!r}, rank {self.rank} of {self.world_size})"

    # -- averaging ------------------------------------------------------------------------------
    def _buckets(self):
        """The trainable parameters in buckets of about ``bucket_bytes`` (rebuilt when the set
        of trainable parameters changes); the last bucket carries the loss sum and the count."""
        ps = [p for p in self.optimizer.params() if p.trainable]
        key = tuple(map(id, ps))
        if key != self._layout_key:
            if not ps:
                raise ValueError("DistributedOptimizer: no trainable parameter to average")
            be, dtype = ps[0].be, ps[0].dtype
            if any(p.be is not be or p.dtype != dtype for p in ps):
                raise ValueError("DistributedOptimizer: the trainable parameters must share one backend and dtype")
            groups, current, nbytes = [], [], 0
            for p in ps:
                size = p.size * dtype.itemsize
                if current and nbytes + size > self.bucket_bytes:
                    groups.append(current)
                    current, nbytes = [], 0
                current.append(p)
                nbytes += size
            groups.append(current)
            self._layout = [_Flat(be, dtype, g, extra=2 if i == len(groups) - 1 else 0) for i, g in enumerate(groups)]
            self._layout_key = key
        return self._layout

    def synchronize(self, loss=0.0, count=1):
        """Averages the gradients over every rank's samples (in place in each ``p.grad``) and
        returns the mean loss over all of them. ``loss`` is this rank's mean loss over its
        ``count`` samples; ``count`` 0 (a rank without samples in an uneven last batch) adds
        nothing and reads no gradient. Every rank must call it, the same number of times.

        Example:

            >>> import numpy as np
            >>> from lamina import distributed, nn, optim
            >>> model = nn.Sequential(nn.Dense(4, 2))
            >>> opt = distributed.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))
            >>> opt.synchronize(loss=2.0, count=4)   # one rank: its own mean loss
            2.0
        """
        if self.world_size == 1:  # nothing to average: the gradients stay as they are
            self._synced, self.last_loss, self.last_count = True, float(loss), int(count)
            return self.last_loss
        MPI = _mpi()
        t0 = time.perf_counter()
        buckets = self._buckets()
        w = float(count)
        be = buckets[0].be
        for flat in buckets:
            if w == 0.0:
                be.fill(flat.array, 0.0)
            else:
                for p, view in flat.entries:
                    be.scale(p.grad, w, out=view)
        last = buckets[-1]
        dtype = last.array.dtype
        # (a rank without samples adds 0 to the loss, unless its loss is not finite: then every
        # rank's mean is NaN and they all stop together)
        lsum = loss * w if w else (0.0 if math.isfinite(loss) else float("nan"))
        be.copy(be.asarray(np.array([lsum, w], dtype=dtype)), out=last.extra)
        mpi_s = 0.0
        results = []
        for flat in buckets:
            def reduce(buf):
                nonlocal mpi_s
                t = time.perf_counter()
                self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                mpi_s += time.perf_counter() - t
            results.append(_through_mpi(flat, reduce, self.cuda_aware))
        result, host = results[-1]
        tail = host[last.size:] if host is not None else be.to_numpy(result[last.size:])
        loss_sum, total = float(tail[0]), float(tail[1])
        inv = 1.0 / total if total > 0 else 0.0
        for flat, (result, _) in zip(buckets, results):
            off = 0
            for p, _view in flat.entries:
                be.scale(result[off: off + p.size].reshape(p.shape), inv, out=p.grad)
                off += p.size
        self._synced = True
        self.last_loss = loss_sum * inv if total > 0 else float("nan")
        self.last_count = int(round(total))
        self.stats["sync_s"] += time.perf_counter() - t0
        self.stats["mpi_s"] += mpi_s
        return self.last_loss

    def step(self, closure=None, keep_previous=False, count=None):
        """Averages the gradients (unless ``synchronize`` did since the last step), then steps
        the inner optimiser (with ``keep_previous`` when it is asked for).

        An optimiser that takes a closure (``requires_closure``, e.g. SaddleFreeNewton) gets one
        that runs ``closure()`` on this rank's samples and then averages its loss and gradients
        over every rank, weighted by ``count``: each evaluation sees the loss and gradients of
        the whole global batch, so every rank takes the same step, the one a single process
        would. ``count`` is this rank's number of samples in the minibatch (default: what
        ``fit`` is stepping, else 1). Every rank must call ``step`` together; a rank without
        samples calls it without a closure (after ``synchronize(0.0, 0)``, which stands for the
        first evaluation) and adds nothing.

        Example:

            >>> import numpy as np
            >>> from lamina import distributed, nn, optim
            >>> model = nn.Sequential(nn.Dense(4, 2))
            >>> opt = distributed.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))
            >>> y = model.forward(np.ones((8, 4), np.float32), training=True)
            >>> opt.zero_grad(); _ = model.backward(np.ones_like(y)); opt.step()
            >>> opt.stats["steps"]
            1
        """
        inner = self.optimizer
        if closure is not None or getattr(inner, "requires_closure", False):
            return self._closure_step(closure, keep_previous, count)
        if not self._synced:
            self.synchronize()
        self._synced = False
        self.stats["steps"] += 1
        if keep_previous:
            return inner.step(keep_previous=True)
        return inner.step()

    def _closure_step(self, closure, keep_previous, count):
        from .losses import NonFiniteLossError

        if count is None:
            count = _batch_samples.get()
            count = 1 if count is None else count
        if closure is None:
            count = 0  # a rank without samples: it adds nothing to any evaluation
        count = int(count)
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        first = [self._synced]  # a synchronize since the last step is the first evaluation

        def averaged():
            if first[0]:  # (its result is already in every p.grad)
                first[0] = False
                return self.last_loss
            if count == 0:
                return self.synchronize(0.0, 0)
            try:
                local = float(closure())
            except NonFiniteLossError:
                # this rank's loss is not finite at the current weights: every rank must see it
                self.synchronize(float("nan"), 0)
                raise
            if not math.isfinite(local):  # (no gradient was computed: contribute none)
                return self.synchronize(local, 0)
            return self.synchronize(local, count)

        calls = [0]

        def evaluation():
            total = averaged()
            calls[0] += 1
            if calls[0] == 1 and not math.isfinite(total):
                # non-finite on another rank: stop together, before the optimiser changes anything
                raise NonFiniteLossError(f"non-finite loss ({total})", None, None, total)
            return total

        self._synced = False
        self.stats["steps"] += 1
        try:
            if keep_previous:
                return self.optimizer.step(evaluation, keep_previous=True)
            return self.optimizer.step(evaluation)
        finally:
            self._synced = False  # the evaluations' averages are not the next step's


# -- what fit needs ------------------------------------------------------------------------------
class Shard:
    """This rank's samples of every global minibatch: the epoch's order (shared by every rank:
    the same seed) cut into global batches of ``batch_size``, and each cut into ``world``
    nearly equal consecutive pieces, piece ``rank`` being this rank's. So the ranks together see
    exactly the batches one process would, and a run can resume with another number of ranks.

    Example:

        >>> from lamina import distributed
        >>> shards = [distributed.Shard(10, batch_size=4, rank=r, world=2) for r in range(2)]
        >>> [s.positions.tolist() for s in shards], shards[0].steps, shards[0].local_batch
        ([[0, 1, 4, 5, 8], [2, 3, 6, 7, 9]], 3, 2)
    """

    def __init__(self, n, batch_size, rank, world):
        if batch_size < world:
            raise ValueError(f"the global batch_size ({batch_size}) must be at least the number of ranks ({world})")
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world
        self.steps = -(-n // batch_size)
        full = self.steps - 1 if n % batch_size else self.steps
        lo, size = self._piece(batch_size)
        self.local_batch = size
        pos = (np.arange(full, dtype=np.int64)[:, None] * batch_size + lo + np.arange(size)[None, :]).ravel()
        if full < self.steps:
            lo, size = self._piece(n - full * batch_size)
            pos = np.concatenate([pos, full * batch_size + lo + np.arange(size, dtype=np.int64)])
        self.positions = pos  # indices into the epoch's order

    def _piece(self, m):
        q, r = divmod(m, self.world)
        return self.rank * q + min(self.rank, r), q + (self.rank < r)

    def order(self, order):
        """This rank's sample indices (int64, ``len(positions)`` of them) for an epoch visited
        in ``order`` (a permutation of range(n); None: the stored order).

        Example:

            >>> from lamina import distributed
            >>> shard = distributed.Shard(10, batch_size=4, rank=0, world=2)
            >>> shard.order(None).tolist(), shard.order(list(range(9, -1, -1))).tolist()
            ([0, 1, 4, 5, 8], [9, 8, 5, 4, 1])
        """
        return self.positions if order is None else np.asarray(order)[self.positions]

    def batches(self, data, order):
        """Exactly ``steps`` items: (xb, yb) of this rank, or (None, None) for a step in which
        this rank has no sample (only the last one, when it holds fewer samples than ranks).

        Example:

            >>> import numpy as np
            >>> from lamina import distributed, nn
            >>> data = nn.Batches(np.zeros((10, 2), np.float32), np.arange(10), batch_size=2)
            >>> shard = distributed.Shard(10, batch_size=4, rank=1, world=2)
            >>> [yb.tolist() for _, yb in shard.batches(data, None)]
            [[2, 3], [6, 7], [9]]
        """
        it = data.iterate(self.order(order))
        token = _batch_samples.set(None)
        try:
            for _ in range(self.steps):
                xb, yb = next(it, (None, None))
                _batch_samples.set(0 if xb is None else len(xb))
                yield xb, yb
        finally:
            _batch_samples.reset(token)


def step_without_samples(model, keep_previous, before_update):
    """fit's step on a rank holding no sample of the step: it still takes part in averaging
    (adding nothing) and steps like the others.

    Example:

        >>> import numpy as np
        >>> from lamina import distributed, nn, optim
        >>> model = nn.Sequential(nn.Dense(4, 2))
        >>> model = model.compile(optimizer=distributed.DistributedOptimizer(optim.SGD(model.parameters())), loss="mse")
        >>> distributed.step_without_samples(model, keep_previous=False, before_update=None)   # adds no loss
        0.0
    """
    from .losses import NonFiniteLossError

    opt = model.optimizer
    total = opt.synchronize(0.0, 0)
    if not math.isfinite(total):
        raise NonFiniteLossError(f"non-finite loss ({total})", None, None, total)
    if before_update is not None:
        before_update()
    opt.step(keep_previous=True) if keep_previous else opt.step()
    return total


def allreduce_sums(values, communicator=None, op="sum"):
    """The element-wise sum (``op="sum"``) or maximum (any other ``op``, e.g. ``"max"``) of a
    list of numbers over every rank, as a list of Python floats (reduced in float64, one
    ``Allreduce``). Every rank must call it with a list of the same length.

    Example:

        >>> from lamina import distributed
        >>> distributed.allreduce_sums([1, 2.5]) == [v * distributed.world_size() for v in (1.0, 2.5)]
        True
    """
    MPI = _mpi()
    c = communicator or comm()
    buf = np.array(values, dtype=np.float64)
    c.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM if op == "sum" else MPI.MAX)
    return [float(v) for v in buf]


def average_epoch_logs(logs, n, loss_sum, correct, judged, communicator=None):
    """fit's epoch logs with the loss and the accuracy over every rank's samples and the
    slowest rank's time (the same dict on every rank).

    Example:

        >>> from lamina import distributed
        >>> distributed.average_epoch_logs({"time": 1.0}, n=8, loss_sum=4.0, correct=6, judged=8)
        {'time': 1.0, 'loss': 0.5, 'accuracy': 0.75, 'images_per_s': 8.0}
    """
    loss_sum, correct, judged = allreduce_sums([loss_sum, correct, judged], communicator)
    dt, = allreduce_sums([logs["time"]], communicator, op="max")
    logs.update(loss=loss_sum / n, accuracy=correct / judged if judged else None, time=dt,
                images_per_s=n / dt if dt > 0 else float("inf"))
    return logs


def any_rank(flag, communicator=None) -> bool:
    """True on every rank when ``flag`` is true on any (a max ``Allreduce``); every rank must
    call it.

    Example:

        >>> from lamina import distributed
        >>> distributed.any_rank(False), distributed.any_rank(True)
        (False, True)
    """
    return allreduce_sums([1.0 if flag else 0.0], communicator, op="max")[0] > 0


def shared_seed(seed, communicator=None):
    """Rank 0's ``seed`` (any picklable value, None included) on every rank (a ``bcast``), so
    the ranks shuffle alike; every rank must call it.

    Example:

        >>> from lamina import distributed
        >>> distributed.shared_seed(7)
        7
    """
    return (communicator or comm()).bcast(seed, root=0)


def evaluate(model, X, y, batch_size=256, loss=None, communicator=None):
    """``model.evaluate`` over all of X, each rank evaluating a contiguous slice: (mean loss,
    accuracy) over every sample, the same on every rank.

    Example:

        >>> import numpy as np
        >>> from lamina import distributed, nn, optim
        >>> model = nn.Sequential(nn.Dense(4, 2))
        >>> loss, accuracy = distributed.evaluate(model, np.zeros((8, 4), np.float32), np.zeros(8, np.int64))
        >>> round(loss, 4), accuracy   # zero inputs and biases: uniform logits over 2 classes, argmax 0
        (0.6931, 1.0)
    """
    c = communicator or comm()
    r, w, n = c.Get_rank(), c.Get_size(), len(X)
    lo, hi = r * n // w, (r + 1) * n // w
    m = hi - lo
    vl, va = model.evaluate(X[lo:hi], y[lo:hi], batch_size=batch_size, loss=loss) if m else (0.0, None)
    ls, acc, judged, total = allreduce_sums([vl * m, (va or 0.0) * m, m if va is not None else 0, m], c)
    return (ls / total if total else float("nan")), (acc / judged if judged else None)
