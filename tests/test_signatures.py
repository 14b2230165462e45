"""Every kernel has one signature: lamina.reference.<name> and its native twin take the same
parameter names, in the same order, with the same defaults. The native side is read from
pybind11's own function records (lamina._native._kernel_signatures(): the py::arg / py::arg_v
names and default values), not from docstrings."""
import inspect

import pytest

import lamina._native as _native
from lamina import ops
from lamina import reference as R

# The backend contract's kernels (the KERNELS tuple of issue 8's spec; backend.py holds it).
SPEC_KERNELS = (
    "matmul", "linear",
    "conv2d", "conv2d_backward",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "upsample_nearest2d", "upsample_nearest2d_backward",
    "relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "leaky_relu", "leaky_relu_backward",
    "softmax", "log_softmax", "softmax_backward",
    "softmax_cross_entropy", "mse", "binary_cross_entropy",
    "dropout", "dropout_backward",
    "sgd_step", "adam_step",
    "fill", "copy", "transpose", "add", "scale", "gather_rows", "argmax", "all_finite", "dot",
)

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


# Kernels the other half of issue 8 adds (array, upsample, softmax_backward, adam_step) are
# skipped until they are in lamina.ops; once there, they are checked like the rest with no
# change here (and their reference twin must exist).
_PRESENT = [k for k in SPEC_KERNELS if hasattr(ops, k)]


@pytest.mark.parametrize("name", SPEC_KERNELS)
def test_reference_and_native_signatures_match(name):
    if name not in _PRESENT:
        pytest.skip(f"{name} is not yet in lamina.ops")
    assert hasattr(R, name), f"lamina.ops.{name} has no lamina.reference twin"
    native = _native._kernel_signatures()
    assert name in native, f"lamina.ops.{name} is not a function of lamina._native"
    problems = signature_mismatches(reference_params(getattr(R, name)), native[name])
    assert not problems, f"{name}: " + "; ".join(problems)


def test_existing_kernels_are_checked():
    # the kernels present before issue 8 must never be skipped
    assert {"matmul", "linear", "conv2d", "conv2d_backward", "max_pool2d", "avg_pool2d_backward",
            "relu", "leaky_relu", "softmax", "mse", "binary_cross_entropy", "dropout",
            "sgd_step"} <= set(_PRESENT)


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
