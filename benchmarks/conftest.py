"""Every lamina kernel benchmark checks its result once against lamina.reference before it is
timed, so a fast wrong kernel fails the run (CI runs these with --benchmark-disable).

The ``benchmark`` fixture below wraps pytest-benchmark's: for a test parametrized with
impl="lamina" it first calls the benchmarked function once on copies of the arguments, and
its reference twin once on other copies, and compares the results and the arguments after the
call (the in-place kernels). The twin is the same call with the lamina.ops module replaced by
lamina.reference wherever it is an argument, or the reference function of the same name when
the benchmarked function is a kernel itself. Model-level benchmarks (whole training steps)
have no twin: they are named in NO_TWIN.
"""
import numpy as np
import pytest

from lamina import ops, reference

NO_TWIN = {"bench_training.py"}  # whole training runs: their correctness is the test suite's


def _twin(fn, args):
    """(function, args) of the reference computation, or None."""
    if any(a is ops for a in args):
        return fn, tuple(reference if a is ops else a for a in args)
    name = getattr(fn, "__name__", None)
    if name and getattr(ops, name, None) is fn and hasattr(reference, name):
        return getattr(reference, name), args
    return None


def _copies(args, kwargs):
    """args and kwargs with every array copied (the in-place kernels change theirs)."""
    def cp(a):
        return a.copy() if isinstance(a, np.ndarray) else a
    return tuple(cp(a) for a in args), {k: cp(v) for k, v in kwargs.items()}


def _assert_close(got, want, where):
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_close(g, w, f"{where}[{i}]")
        return
    if want is None or isinstance(want, (str, bool)):
        assert got == want, f"{where}: {got!r} vs {want!r}"
        return
    g, w = np.asarray(got), np.asarray(want)
    assert g.shape == w.shape, f"{where}: shape {g.shape} vs {w.shape}"
    if w.dtype.kind in "iub":
        np.testing.assert_array_equal(g, w, err_msg=where)
        return
    scale = float(np.max(np.abs(w), initial=0.0))
    np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=1e-3, atol=1e-4 * max(scale, 1.0),
                               err_msg=where)


@pytest.fixture
def benchmark(benchmark, request):
    params = getattr(request.node, "callspec", None)
    impl = params.params.get("impl") if params is not None else None
    if impl != "lamina" or request.path.name in NO_TWIN:
        return benchmark
    timed = type(benchmark).__call__

    def checked_call(self, fn, *args, **kwargs):
        twin = _twin(fn, args)
        assert twin is not None, f"{request.node.name}: no reference twin for {fn!r} (add it to NO_TWIN?)"
        ref_fn, ref_args = twin
        mine, theirs = _copies(args, kwargs), _copies(ref_args, kwargs)
        got = fn(*mine[0], **mine[1])
        want = ref_fn(*theirs[0], **theirs[1])
        _assert_close(got, want, f"{request.node.name}: result")
        _assert_close([a for a in mine[0] if isinstance(a, np.ndarray)],
                      [a for a in theirs[0] if isinstance(a, np.ndarray)], f"{request.node.name}: arguments")
        return timed(self, fn, *args, **kwargs)

    # (pytest-benchmark insists on its own fixture type: a subclass that checks, then times)
    benchmark.__class__ = type("CheckedBenchmarkFixture", (type(benchmark),), {"__call__": checked_call})
    return benchmark
