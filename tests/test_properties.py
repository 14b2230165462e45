"""Property-based tests of every kernel of lamina.backend.KERNELS: generated
shapes, layouts (steps, negative steps, transposes, read-only), dtypes (float32, float64,
int32, int64, bool, and non-arrays) and arguments (kernel_size, stride, padding, dilation,
axis, scale, indices, ...), zero, negative and huge values (2**31, 2**62) included.

Every call runs in a child process (crashguard.py), native and reference alike: a case that
kills the child or runs past the timeout fails with the case. Otherwise the native kernel
either raises TypeError / ValueError / MemoryError, or its result, and every argument after
the call (in-place kernels, `out`), equals the reference's (assert_allclose). When the native
kernel succeeds the reference must succeed too, unless it ran out of memory (NumPy's twin pads
and materialises windows; max_pool2d with kernel (1, 2**62) is a one-cell answer natively).

Bounded and reproducible: derandomize=True, no example database, a fixed number of examples
per kernel.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings, strategies as st

import lamina
from crashguard import ArraySpec, Child, build
from lamina.backend import KERNELS

ISAS = lamina.backend_info()["isas_available"]
EXAMPLES = 40
HUGE = [2**31, 2**62]
ACCEPTED = ("TypeError", "ValueError", "MemoryError")


@pytest.fixture(scope="module")
def child():
    c = Child(timeout=10)
    yield c
    c.close()


# ---- value strategies ------------------------------------------------------------------
def small_int(lo=1, hi=3):
    return st.integers(lo, hi)


def geo_int(lo=1, hi=3):
    """Mostly small and valid; sometimes 0, negative, huge."""
    return st.one_of(*[small_int(lo, hi)] * 6, st.sampled_from([0, -1] + HUGE))


def geo_pair(lo=1, hi=3):
    bad = st.sampled_from([1.5, "2", True, (1, 2, 3), None, [2], np.int64(2)])
    return st.one_of(*[geo_int(lo, hi), st.tuples(geo_int(lo, hi), geo_int(lo, hi))] * 4, bad)


def real(*usual):
    return st.one_of(st.sampled_from(usual), st.sampled_from(usual),
                     st.sampled_from([0.0, -1.0, float("nan"), float("inf"), 1e30, 2**62, "1", None]))


dims = st.sampled_from([1, 2, 3, 4, 5, 1, 2, 3, 0])
hw = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 0])  # pooling planes


def shape(draw, ndim=None):
    nd = draw(st.integers(0, 4)) if ndim is None else ndim
    return tuple(draw(dims) for _ in range(nd))


LAYOUTS = ["c"] * 14 + ["step", "neg", "T", "readonly", "dtype", "nonarray"]


def array(draw, shp, kind="float", layout=True, lo=None, hi=None):
    """An ArraySpec (or a non-array) of shape `shp`: float values, ints in [lo, hi), or a 0/1 mask."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    how = draw(st.sampled_from(LAYOUTS)) if layout else "c"
    dtype = np.int64 if kind == "int" else np.float32
    if how == "dtype":
        dtype = draw(st.sampled_from([np.float64, np.int32, np.int64, np.bool_, np.float32, np.uint8]))

    def values(s):
        if kind == "int":
            return rng.integers(lo, hi, size=s) if hi > lo else np.zeros(s, np.int64)
        if kind == "mask":
            return (rng.random(s) < 0.5).astype(np.float32)
        if kind == "prob":
            return rng.random(s)
        return rng.standard_normal(s) * 3

    def typed(s):
        return np.asarray(values(s)).astype(dtype)  # 0-D: an array, not a scalar

    if how == "nonarray":
        return draw(st.sampled_from([typed(shp).tolist(), None, 3.0, "x"]))
    if how == "step" and len(shp) >= 1:
        base = typed(shp[:-1] + (2 * shp[-1],))
        return ArraySpec(base, index=(Ellipsis, slice(None, None, 2)))
    if how == "neg" and len(shp) >= 1:
        return ArraySpec(typed(shp), index=(Ellipsis, slice(None, None, -1)))
    if how == "T" and len(shp) >= 2:
        return ArraySpec(typed(shp[::-1]), axes=tuple(range(len(shp)))[::-1])
    return ArraySpec(typed(shp), readonly=how == "readonly")


def maybe_out(draw, shp):
    return draw(st.sampled_from([None, None, None, "out"])) and array(draw, shp)


def maybe_shape(draw, shp):
    """shp, or now and then another shape (a mismatch)."""
    return shp if draw(st.integers(0, 5)) else shape(draw, len(shp))


# ---- one generator per kernel: draw -> kwargs ----------------------------------------------
GEN = {}


def gen(*names):
    def deco(f):
        for n in names:
            GEN[n] = f
        return f
    return deco


@gen("matmul")
def _matmul(draw, name):
    m, k, n = draw(dims), draw(dims), draw(dims)
    ta, tb = draw(st.booleans()), draw(st.booleans())
    a = array(draw, maybe_shape(draw, (k, m) if ta else (m, k)))
    b = array(draw, (n, k) if tb else (k, n))
    return dict(a=a, b=b, trans_a=ta, trans_b=tb, out=maybe_out(draw, (m, n)))


@gen("linear")
def _linear(draw, name):
    n, k, o = draw(dims), draw(dims), draw(dims)
    return dict(x=array(draw, (n, k)), w=array(draw, maybe_shape(draw, (o, k))),
                b=draw(st.sampled_from([None, "b"])) and array(draw, (o,)),
                activation=draw(st.sampled_from([None, "relu", "tanh"])), out=maybe_out(draw, (n, o)))


def _conv_geometry(draw):
    return dict(stride=geo_pair(), padding=geo_pair(0, 2), dilation=geo_pair(1, 2))


@gen("conv2d", "conv2d_backward")
def _conv(draw, name):
    N, C, H, W = draw(dims), draw(small_int(1, 3)), draw(small_int(1, 6)), draw(small_int(1, 6))
    O, kh, kw = draw(small_int(1, 3)), draw(small_int(1, 3)), draw(small_int(1, 3))
    g = {k: draw(v) for k, v in _conv_geometry(draw).items()}
    kw_ = dict(x=array(draw, (N, C, H, W)), w=array(draw, maybe_shape(draw, (O, C, kh, kw))), **g)
    if name == "conv2d":
        kw_.update(b=draw(st.sampled_from([None, "b"])) and array(draw, (O,)),
                   activation=draw(st.sampled_from([None, "relu"])), out=None)
        return kw_
    try:
        oh, ow = lamina.reference.conv_output_shape((H, W), (kh, kw), g["stride"], g["padding"], g["dilation"])
        ys = (N, O, oh, ow) if oh * ow < 4096 else (N, O, 1, 1)
    except Exception:  # noqa: BLE001 - an invalid geometry: any grad_y will do
        ys = (N, O, 1, 1)
    kw_.update(grad_y=array(draw, maybe_shape(draw, ys)), compute_grad_x=draw(st.booleans()))
    return kw_


def _pool_geometry(draw, shp=None):
    """Half the time a geometry valid for the plane of ``shp`` (so that results get compared,
    not only rejections), otherwise anything, including zero, negative and huge values."""
    if shp is not None and min(shp[2:]) >= 1 and draw(st.booleans()):
        kh, kw = draw(st.integers(1, min(4, shp[2]))), draw(st.integers(1, min(4, shp[3])))
        return dict(kernel_size=(kh, kw), stride=draw(st.one_of(st.none(), st.tuples(small_int(), small_int()))),
                    padding=(draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))))
    return dict(kernel_size=draw(geo_pair(1, 4)), stride=draw(st.one_of(st.none(), geo_pair())),
                padding=draw(geo_pair(0, 1)))


def _pool_out_shape(shp, g):
    """(N, C, OH, OW) for a valid small geometry, else (N, C, 1, 1)."""
    from lamina.reference.pool import _geometry
    try:
        *_, OH, OW = _geometry(shp[2], shp[3], g["kernel_size"], g["stride"], g["padding"])
        if OH * OW < 4096:
            return shp[:2] + (OH, OW)
    except Exception:  # noqa: BLE001
        pass
    return shp[:2] + (1, 1)


@gen("max_pool2d", "avg_pool2d")
def _pool(draw, name):
    shp = (draw(dims), draw(small_int(1, 3)), draw(hw), draw(hw))
    return dict(x=array(draw, shp), **_pool_geometry(draw, shp))


@gen("avg_pool2d_backward")
def _avg_pool_backward(draw, name):
    shp = (draw(dims), draw(small_int(1, 3)), draw(hw), draw(hw))
    g = _pool_geometry(draw, shp)
    return dict(grad_y=array(draw, maybe_shape(draw, _pool_out_shape(shp, g))),
                input_shape=draw(st.sampled_from([shp, shp, shp, list(shp), shp[:3], (1, 1, 2**31, 2**31),
                                                  (1, 1, -1, 2), "shape"])), **g)


@gen("max_pool2d_backward")
def _max_pool_backward(draw, name):
    shp = (draw(dims), draw(small_int(1, 3)), draw(hw), draw(hw))
    ys = _pool_out_shape(shp, _pool_geometry(draw, shp))
    return dict(grad_y=array(draw, ys),
                indices=array(draw, maybe_shape(draw, ys), kind="int", lo=-1 if draw(st.integers(0, 4)) == 0 else 0,
                              hi=max(shp[2] * shp[3], 1)),
                input_shape=draw(st.sampled_from([shp, shp, shp, (1, 1, 2**31, 2**31), shp[:3]])))


@gen("upsample_nearest2d", "upsample_nearest2d_backward")
def _upsample(draw, name):
    s = draw(geo_int(1, 3))
    shp = (draw(dims), draw(small_int(1, 3)), draw(hw), draw(hw))
    if name.endswith("backward") and 0 < s < 4 and draw(st.integers(0, 3)):
        shp = shp[:2] + (shp[2] * s, shp[3] * s)
    key = "grad_y" if name.endswith("backward") else "x"
    return {key: array(draw, shp), "scale": s, "out": None}


@gen("relu", "sigmoid", "tanh", "leaky_relu")
def _act(draw, name):
    shp = shape(draw)
    kw = dict(x=array(draw, shp), out=maybe_out(draw, shp))
    if name == "leaky_relu":
        kw["slope"] = draw(st.sampled_from([0.01, 0.2, -1.0, 0.0]))
    return kw


@gen("relu_backward", "sigmoid_backward", "tanh_backward", "leaky_relu_backward")
def _act_backward(draw, name):
    shp = shape(draw)
    saved = "y" if name in ("sigmoid_backward", "tanh_backward") else "x"
    kw = {"grad_y": array(draw, shp), saved: array(draw, maybe_shape(draw, shp)), "out": maybe_out(draw, shp)}
    if name == "leaky_relu_backward":
        kw["slope"] = draw(st.sampled_from([0.01, 0.2, -1.0]))
    return kw


@gen("softmax", "log_softmax", "softmax_backward")
def _softmax(draw, name):
    shp = shape(draw)
    axis = draw(st.one_of(*[st.integers(-len(shp), max(len(shp) - 1, 0))] * 4, st.integers(-5, 5),
                          st.sampled_from([2**62, 2**70, 1.0, None])))
    if name == "softmax_backward":
        return dict(grad_y=array(draw, shp), y=array(draw, maybe_shape(draw, shp)), axis=axis,
                    out=maybe_out(draw, shp))
    return dict(x=array(draw, shp), axis=axis, out=maybe_out(draw, shp))


@gen("softmax_cross_entropy")
def _sce(draw, name):
    n, k = draw(dims), draw(dims)
    return dict(logits=array(draw, (n, k)),
                labels=array(draw, maybe_shape(draw, (n,)), kind="int", lo=-1 if draw(st.integers(0, 4)) == 0 else 0,
                             hi=max(k, 1)))


@gen("mse", "binary_cross_entropy")
def _loss(draw, name):
    shp = shape(draw)
    if name == "mse":
        return dict(pred=array(draw, shp), target=array(draw, maybe_shape(draw, shp)))
    return dict(prob=array(draw, shp, kind="prob"), target=array(draw, maybe_shape(draw, shp), kind="mask"),
                eps=draw(st.sampled_from([1e-7, 1e-3, 0.0, 0.5, -1.0])))


@gen("dropout", "dropout_backward")
def _dropout(draw, name):
    shp = shape(draw)
    p = draw(real(0.0, 0.5, 0.25, 0.9))
    if name == "dropout":
        return dict(x=array(draw, shp), p=p, seed=draw(st.one_of(st.integers(0, 2**64 - 1),
                                                                 st.sampled_from([-1, 2**64, 1.5, None]))))
    return dict(grad_y=array(draw, shp), mask=array(draw, maybe_shape(draw, shp), kind="mask"), p=p)


@gen("sgd_step")
def _sgd(draw, name):
    shp = shape(draw)
    mom = draw(real(0.0, 0.9))
    kw = dict(param=array(draw, shp), grad=array(draw, maybe_shape(draw, shp)), lr=draw(real(0.1, 0.01)),
              velocity=draw(st.sampled_from([None, "v", "v"])) and array(draw, shp), momentum=mom,
              weight_decay=draw(real(0.0, 0.01)), nesterov=draw(st.booleans()))
    kw["param_out"] = maybe_out(draw, shp)
    kw["velocity_out"] = maybe_out(draw, shp)
    return kw


@gen("adam_step")
def _adam(draw, name):
    shp = shape(draw)
    return dict(param=array(draw, shp), grad=array(draw, maybe_shape(draw, shp)), m=array(draw, shp),
                v=array(draw, shp, kind="prob"), lr=draw(real(1e-3, 0.1)),
                step=draw(st.one_of(st.integers(1, 10), st.sampled_from([0, -1, 2**62, 2**70, 1.5]))),
                beta1=draw(real(0.9, 0.5)), beta2=draw(real(0.999, 0.9)), eps=draw(real(1e-8, 1e-3)),
                weight_decay=draw(real(0.0, 0.01)), decoupled=draw(st.booleans()),
                param_out=maybe_out(draw, shp), m_out=maybe_out(draw, shp), v_out=maybe_out(draw, shp))


@gen("fill", "copy", "transpose", "scale", "argmax", "all_finite")
def _unary(draw, name):
    shp = shape(draw)
    x = array(draw, shp)
    if name == "fill":
        return dict(x=x, value=draw(real(1.5, -2.0)))
    if name == "copy":
        return dict(x=x, out=maybe_out(draw, shp))
    if name == "transpose":
        perm = tuple(draw(st.permutations(range(len(shp)))))
        axes = draw(st.sampled_from([perm, perm, perm[:-1], perm + (0,), (2**62,) * len(perm), "ab"]))
        return dict(x=x, axes=axes, out=maybe_out(draw, tuple(shp[a] for a in perm)))
    if name == "scale":
        return dict(x=x, alpha=draw(real(2.0, -0.5)), out=maybe_out(draw, shp))
    if name == "argmax":
        return dict(x=x, axis=draw(st.one_of(*[st.integers(-len(shp), max(len(shp) - 1, 0))] * 4,
                                             st.integers(-5, 5), st.sampled_from([2**62, 2**70]))))
    return dict(x=x)


@gen("add", "dot")
def _binary(draw, name):
    shp = shape(draw)
    kw = dict(a=array(draw, shp), b=array(draw, maybe_shape(draw, shp)))
    if name == "add":
        kw.update(alpha=draw(real(1.0, -2.0)), out=maybe_out(draw, shp))
    return kw


@gen("gather_rows")
def _gather(draw, name):
    shp = (draw(dims),) + shape(draw, draw(st.integers(0, 2)))
    m = draw(dims)
    rows = shp[0]
    idx = array(draw, (m,), kind="int", lo=-1 if draw(st.integers(0, 4)) == 0 else 0, hi=max(rows, 1))
    return dict(x=array(draw, shp), indices=idx, out=maybe_out(draw, (m,) + shp[1:]))


# ---- the check ---------------------------------------------------------------------------
def _resource_failure(outcome):
    """The reference could not compute it (out of memory, or NumPy refusing a huge array)."""
    return outcome[0] == "raise" and (outcome[1] == "MemoryError" or any(
        s in outcome[2] for s in ("too big", "Maximum allowed", "exceeds", "cannot allocate")))


def _assert_same(got, want, where):
    if isinstance(want, (tuple, list)) and not isinstance(want, str):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), f"{where}: {got!r} vs {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{i}]")
        return
    if isinstance(want, dict):
        for k in want:
            _assert_same(got[k], want[k], f"{where}[{k!r}]")
        return
    if want is None or isinstance(want, str):
        assert got == want, f"{where}: {got!r} vs {want!r}"
        return
    if isinstance(want, (bool, np.bool_)):
        assert bool(got) == bool(want), f"{where}: {got!r} vs {want!r}"
        return
    w, g = np.asarray(want), np.asarray(got)
    assert g.shape == w.shape, f"{where}: shape {g.shape} vs {w.shape}"
    if w.dtype.kind in "iub" or g.dtype.kind in "iub":
        np.testing.assert_array_equal(g, w, err_msg=where)
    else:
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=2e-4, atol=2e-5,
                                   err_msg=where)


_NAME = r"(?:\w+: )?(?P<name>\w+)"
_SHAPE = r"\((?:[-\d]+(?:, ?)?)*\)"


def _stricter_contract(kwargs, message):
    """Why a native rejection of an input the reference accepts is right ("dtype", "layout",
    "shape", "limit"), checked against the input itself; None when the message is not true of
    it (a valid input refused)."""
    import re

    args = build(kwargs)

    def arg(m):
        return args.get(m.group("name"), _MISSING)

    m = re.match(_NAME + r" must have dtype (?P<allowed>[\w ,]+?), got (?P<got>\w+)", message)
    if m and isinstance(arg(m), np.ndarray):
        return "dtype" if str(arg(m).dtype) == m.group("got") and m.group("got") not in m.group("allowed") else None
    m = re.match(_NAME + r" must be a numpy\.ndarray", message)
    if m and arg(m) is not _MISSING:
        return "type" if not isinstance(arg(m), np.ndarray) else None
    m = re.match(_NAME + r" must be (?:a real number|an integer|a bool)", message)
    if m and arg(m) is not _MISSING:
        v = arg(m)
        return "type" if isinstance(v, (str, bool, type(None), np.ndarray, list, tuple)) else None
    m = re.match(_NAME + r" must be C-contiguous", message)
    if m and isinstance(arg(m), np.ndarray):
        return "layout" if not arg(m).flags.c_contiguous else None
    m = re.match(_NAME + rf" has shape (?P<s>{_SHAPE}) but (?P<other>\w+) has shape (?P<t>{_SHAPE})", message)
    if m and isinstance(arg(m), np.ndarray) and isinstance(args.get(m.group("other")), np.ndarray):
        a, b = arg(m), args[m.group("other")]
        return "shape" if str(a.shape).replace(" ", "") == m.group("s").replace(" ", "") and a.shape != b.shape else None
    m = re.match(_NAME + rf" has shape (?P<s>{_SHAPE}), expected (?P<t>{_SHAPE})", message)
    if m and isinstance(arg(m), np.ndarray):
        a = arg(m)
        return "shape" if str(a.shape).replace(" ", "") == m.group("s").replace(" ", "") \
            and m.group("s").replace(" ", "") != m.group("t").replace(" ", "") else None
    m = re.match(_NAME + r" must have at least 1 dimension", message)
    if m:
        zero_d = [a for a in args.values() if isinstance(a, np.ndarray) and a.ndim == 0]
        return "0-d" if zero_d else None
    if "must be below" in message:  # the native geometry limit: some size argument reaches it
        limit = int(re.search(r"below (?:2\*\*)?(\d+)", message).group(1))
        limit = 2**limit if "2**" in message else limit
        sizes = [v for v in _flat(args.values()) if isinstance(v, int) and not isinstance(v, bool)]
        return "limit" if any(abs(v) >= limit for v in sizes) else None
    return None


_MISSING = object()


def _flat(values):
    for v in values:
        if isinstance(v, (tuple, list)):
            yield from _flat(v)
        else:
            yield v


OUTCOMES = []  # what became of each generated case, for the share that was really compared


def _outcome(what):
    OUTCOMES.append(what)
    if currently_in_test_context():  # (the explicit cases below run outside hypothesis)
        event(what)


def check(child, name, kwargs, isa=None, threads=1):
    setup = dict(threads=threads) if isa is None else dict(isa=isa, threads=threads)
    nat = child.run("lamina.ops", name, (), kwargs, **setup)
    case = f"{name}(**{kwargs!r}) on {isa or 'the default path'}, {threads} thread(s)"
    assert nat[0] in ("ok", "raise"), f"native {case}: the child died or hung: {nat}"
    ref = child.run("lamina.reference", name, (), kwargs)
    if nat[0] == "raise":
        assert nat[1] in ACCEPTED, f"native {case} raised {nat[1]}: {nat[2]}"
        if ref[0] == "ok":
            # The reference (NumPy) is laxer than the native contract: it takes float64, views
            # and broadcasting shapes. The native kernel may refuse such an input, but only
            # for a reason that is true of it; refusing a valid input is a failure.
            why = _stricter_contract(kwargs, nat[2])
            assert why, f"native {case} raised {nat[1]} on an input the reference accepts: {nat[2]}"
            _outcome(f"rejected by the native contract only ({why})")
            return
        _outcome("rejected")
        return
    if ref[0] != "ok" and (ref[0] == "timeout" or _resource_failure(ref)):
        _outcome("the reference ran out of resources")
        return  # the reference cannot judge it; the native call completed and returned
    assert ref[0] == "ok", f"native {case} succeeded but the reference rejects it: {ref}"
    _assert_same(nat[1], ref[1], f"{case}: result")
    _assert_same(nat[2][1], ref[2][1], f"{case}: arguments after the call")
    _outcome("compared with the reference")


def test_every_kernel_has_a_generator():
    assert sorted(GEN) == sorted(KERNELS)


@pytest.mark.parametrize("name", KERNELS)
def test_kernel_matches_the_reference_or_rejects(child, name):
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data):
        kwargs = data.draw(st.composite(lambda draw: GEN[name](draw, name))(), label="kwargs")
        isa = data.draw(st.sampled_from(ISAS), label="isa")
        threads = data.draw(st.sampled_from([1, 2]), label="threads")
        check(child, name, kwargs, isa, threads)

    OUTCOMES.clear()
    run()
    # Some generated cases must be computed by both and compared: a generator drifting to
    # inputs that are refused would test nothing. (The shares run from 3 of 40 for
    # softmax_backward, whose generator mostly mixes shapes, to 37 of 40 for scale.)
    compared = OUTCOMES.count("compared with the reference")
    assert len(OUTCOMES) == EXAMPLES and compared >= EXAMPLES // 20, \
        f"{name}: {compared} of {len(OUTCOMES)} cases compared: {sorted(set(OUTCOMES))}"


# The reproducer of an overflow that once crashed the process (a segmentation fault), and its relatives, explicitly.
@pytest.mark.parametrize("kwargs", [
    dict(x=np.zeros((1, 1, 1, 1), np.float32), kernel_size=(1, 2**62), padding=(0, 2**61)),
    dict(x=np.zeros((1, 1, 1, 1), np.float32), kernel_size=(2**62, 2**62), padding=(2**61, 2**61)),
    dict(x=np.zeros((2, 2, 3, 3), np.float32), kernel_size=(1, 2**40), padding=(0, 2**39)),
])
@pytest.mark.parametrize("isa", ISAS)
def test_the_max_pool2d_reproducer(child, kwargs, isa):
    for threads in (1, 2):
        check(child, "max_pool2d", kwargs, isa, threads)
        nat = child.run("lamina.ops", "max_pool2d", (), kwargs, isa=isa, threads=threads)
        assert nat[0] == "ok", nat
        y, idx = nat[1]
        assert (y == 0).all() and y.shape == idx.shape and idx.min() >= 0
        assert idx.max() < kwargs["x"].shape[2] * kwargs["x"].shape[3]
        assert math.prod(y.shape) > 0
