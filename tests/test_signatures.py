"""Every kernel has one signature: lamina.reference.<name> and its native twin take the same
parameter names, in the same order, with the same defaults. The native side is read from
pybind11's own function records (lamina._native._kernel_signatures(): the py::arg / py::arg_v
names and default values), not from docstrings."""
import inspect

import pytest

import lamina._native as _native
from lamina import ops
from lamina import reference as R
from lamina.backend import KERNELS

SPEC_KERNELS = KERNELS  # the backend contract's kernels

_EMPTY = inspect.Parameter.empty


def reference_params(fn):
    """[(name, has_default, default or None), ...] of a Python function, in order."""
    return [(p.name, p.default is not _EMPTY, None if p.default is _EMPTY else p.default)
            for p in inspect.signature(fn).parameters.values()]


def _same_default(a, b):
    # 0.01 vs float32(0.01) = 0.009999999776482582, or 1 vs 1.0 / True: the type counts too.
    return type(a) is type(b) and a == b


def signature_mismatches(ref, native):
    """What differs between two [(name, has_default, default), ...] lists (empty: the same)."""
    problems = []
    ref_names, nat_names = [p[0] for p in ref], [p[0] for p in native]
    if ref_names != nat_names:
        problems.append(f"parameters {ref_names} (reference) vs {nat_names} (native)")
    for (name, r_has, r_default), (_, n_has, n_default) in zip(ref, native):
        if r_has != n_has:
            problems.append(f"{name}: default {'present' if r_has else 'absent'} in the reference, "
                            f"{'present' if n_has else 'absent'} natively")
        elif r_has and not _same_default(r_default, n_default):
            problems.append(f"{name}: default {r_default!r} (reference) vs {n_default!r} (native)")
    return problems


@pytest.mark.parametrize("name", SPEC_KERNELS)
def test_reference_and_native_signatures_match(name):
    assert hasattr(ops, name), f"lamina.ops lacks the kernel {name}"
    assert hasattr(R, name), f"lamina.ops.{name} has no lamina.reference twin"
    native = _native._kernel_signatures()
    assert name in native, f"lamina.ops.{name} is not a function of lamina._native"
    problems = signature_mismatches(reference_params(getattr(R, name)), native[name])
    assert not problems, f"{name}: " + "; ".join(problems)


def test_kernel_signatures_cover_the_module():
    sigs = _native._kernel_signatures()
    for name in dir(_native):
        if callable(getattr(_native, name)) and not name.startswith("__"):
            assert name in sigs, name
    assert sigs["set_num_threads"] == [("n", False, None)]
    assert sigs["backend_info"] == []
    assert sigs["conv2d"][2] == ("b", True, None)  # py::arg("b") = py::none() is a default
    assert sigs["matmul"][2] == ("trans_a", True, False)


def test_a_mismatch_is_caught():
    def ref(x, w, b=None, stride=1, out=None):
        pass
    good = [("x", False, None), ("w", False, None), ("b", True, None), ("stride", True, 1),
            ("out", True, None)]
    assert signature_mismatches(reference_params(ref), good) == []
    cases = {
        "missing out": good[:-1],
        "renamed": [("x", False, None), ("weight", False, None)] + good[2:],
        "reordered": [good[1], good[0]] + good[2:],
        "no default": good[:2] + [("b", False, None)] + good[3:],
        "other default": good[:3] + [("stride", True, 2)] + good[4:],
        "default of another type": good[:3] + [("stride", True, 1.0)] + good[4:],
        "extra": good + [("activation", True, None)],
    }
    for why, native in cases.items():
        assert signature_mismatches(reference_params(ref), native), why
    # and the float32 rounding of a default, as pybind11 stores py::arg("slope") = 0.01f
    assert signature_mismatches([("slope", True, 0.01)], [("slope", True, 0.009999999776482582)])
