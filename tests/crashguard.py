"""Kernel calls in a child process: a segfault, an abort or a hang is a failed case, reported
with the case, not a dead test run.

``Child`` owns one long-lived worker (a fresh interpreter running ``serve``), sends it pickled
cases over a pipe and reads pickled outcomes back; when the worker dies or takes longer than
the timeout it is killed, the outcome says so ("crash" with the exit status and the tail of
its stderr, or "timeout"), and the next call starts a new worker.

Arrays that must reach the kernel as views (steps, negative steps, transposes, read-only)
travel as ``ArraySpec``: pickling a view would copy it into a contiguous array, so both sides
rebuild the same view from the same base array.
"""
import os
import pickle
import select
import struct
import subprocess
import sys
import tempfile

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))


class ArraySpec:
    """base[index], transposed by `axes` (None: as is), made read-only when `readonly`."""

    def __init__(self, base, index=None, axes=None, readonly=False):
        self.base, self.index, self.axes, self.readonly = base, index, axes, readonly

    def build(self):
        a = self.base.copy()
        if self.index is not None:
            a = a[self.index]
        if self.axes is not None:
            a = a.transpose(self.axes)
        if self.readonly:
            a.flags.writeable = False
        return a

    def __repr__(self):
        return (f"ArraySpec({self.base.dtype}{self.base.shape}, index={self.index!r}, "
                f"axes={self.axes!r}, readonly={self.readonly})")


def build(v):
    """v with every ArraySpec (also inside tuples, lists and dicts) replaced by its array."""
    if isinstance(v, ArraySpec):
        return v.build()
    if isinstance(v, tuple):
        return tuple(build(x) for x in v)
    if isinstance(v, list):
        return [build(x) for x in v]
    if isinstance(v, dict):
        return {k: build(x) for k, x in v.items()}
    return v


def call(fn, args, kwargs):
    """("ok", result, args after the call) or ("raise", exception type name, message)."""
    args, kwargs = build(args), build(kwargs)
    try:
        result = fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - every exception is an outcome to compare
        return ("raise", type(e).__name__, str(e)[:500])
    return ("ok", result, (args, kwargs))


def _send(f, obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(struct.pack("<Q", len(data)) + data)
    f.flush()


def _recv_exact(f, n):
    buf = b""
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def serve():
    """The worker: (module, name, args, kwargs, setup) in, an outcome of ``call`` out."""
    import importlib

    import lamina
    import lamina._native as native

    inp, out = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the reply pipe
    while True:
        try:
            (n,) = struct.unpack("<Q", _recv_exact(inp, 8))
        except EOFError:
            return
        module, name, args, kwargs, setup = pickle.loads(_recv_exact(inp, n))
        native._select_isa(setup.get("isa", lamina.backend_info()["isas_available"][-1]))
        lamina.set_num_threads(setup.get("threads", 1))
        native._fail_next_workspace_alloc(setup.get("fail_allocs", 0))
        try:
            outcome = call(getattr(importlib.import_module(module), name), args, kwargs)
        finally:
            native._fail_next_workspace_alloc(0)
        try:
            _send(out, outcome)
        except Exception as e:  # noqa: BLE001 - an unpicklable result is an outcome too
            _send(out, ("raise", "UnpicklableResult", repr(e)))


class Child:
    def __init__(self, timeout=10.0):
        self.timeout = timeout
        self.proc = None

    def _start(self):
        env = dict(os.environ)
        env.pop("LAMINA_CPU", None)
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"import sys; sys.path.insert(0, {_HERE!r}); import crashguard; crashguard.serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, env=env, bufsize=0)

    def _stderr_tail(self):
        self.err.seek(0)
        return self.err.read()[-2000:].decode(errors="replace")

    def _kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def run(self, module, name, args=(), kwargs=None, **setup):
        """The outcome of module.name(*args, **kwargs) in the worker (see ``call``), or
        ("crash", exit status, stderr tail) / ("timeout", seconds, stderr tail)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        try:
            _send(self.proc.stdin, (module, name, args, kwargs or {}, setup))
        except BrokenPipeError:
            rc = self.proc.wait()
            tail = self._stderr_tail()
            self.proc = None
            return ("crash", rc, tail)
        out = self.proc.stdout
        ready, _, _ = select.select([out], [], [], self.timeout)
        if not ready:
            tail = self._stderr_tail()
            self._kill()
            return ("timeout", self.timeout, tail)
        try:
            (n,) = struct.unpack("<Q", _recv_exact(out, 8))
            return pickle.loads(_recv_exact(out, n))
        except EOFError:
            rc = self.proc.wait()
            tail = self._stderr_tail()
            self.proc = None
            return ("crash", rc, tail)

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
            self.proc = None


def as_arrays(v):
    """Results with NumPy scalars and arrays as arrays (for comparisons)."""
    if isinstance(v, (tuple, list)):
        return type(v)(as_arrays(x) for x in v)
    return np.asarray(v) if isinstance(v, (np.ndarray, np.generic, float, int, bool)) else v
