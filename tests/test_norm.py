"""batch_norm / batch_norm_backward through opcheck: every implementation (every CPU path and
thread count, every registered backend that has these optional kernels) against the reference
in training and evaluation mode, (N, C) and (N, C, H, W) inputs on both native layouts (plane
and column), the running statistics over successive calls, the reference backward by float64
finite differences and PyTorch; then the variance's stability on large offsets and bad inputs."""
import numpy as np
import pytest

import lamina
import opcheck
from lamina import ops, reference as ref
from lamina.backend import OPTIONAL_KERNELS

KERNEL_NAMES = ("batch_norm", "batch_norm_backward")



def _torch_bn(F, x, running_mean=None, running_var=None, weight=None, bias=None, training=False, momentum=0.1,
              eps=1e-5):
    import torch
    rm = None if running_mean is None else running_mean.detach().clone()
    rv = None if running_var is None else running_var.detach().clone()
    y = F.batch_norm(x, rm, rv, weight, bias, training, momentum, eps)
    if training:
        dims = [0] + list(range(2, x.ndim))
        mean = x.detach().mean(dims)
        var = x.detach().var(dims, unbiased=False)
    else:
        mean, var = running_mean, running_var
    return y, mean, 1.0 / torch.sqrt(var + eps)


_close = opcheck.allclose(rtol=1e-5, atol=1e-5)
BATCH_NORM = opcheck.Op(
    "batch_norm", close=_close, y=0, backward="batch_norm_backward",
    backward_args=lambda a, kw, out, gy: ((gy, a[0], a[3], out[1], out[2]), {"training": kw["training"]}),
    backward_close=opcheck.allclose(rtol=1e-4, atol=1e-5), wrt=(0, 3, 4), torch=_torch_bn)


def _flat(v):
    return [a for x in v for a in _flat(x)] if isinstance(v, (tuple, list)) else [v]


def _close_flat(got, want, args=(), kwargs=None):
    g, w = _flat(got), _flat(want)
    assert len(g) == len(w) == 5, (len(g), len(w))  # y, mean, invstd, running_mean, running_var
    _close(tuple(g), tuple(w))


# training with running statistics: ((y, mean, invstd), running_mean, running_var) after
# successive calls on the same running arrays
BATCH_NORM_STATS = opcheck.Op("batch_norm", close=_close_flat, inplace=(1, 2))

SHAPES = [  # (x shape); S = prod(shape[2:]) < 16 takes the native column path, >= 16 the plane path
    (2, 1), (5, 3), (7, 17), (64, 40), (3, 2, 5), (4, 3, 2, 2), (2, 3, 4, 4), (3, 5, 6, 7),
    (2, 4, 1, 2049), (1, 2, 50, 50), (130, 3, 1, 1), (16, 33),
]


def _case(rng, shape, affine=True, offset=0.0):
    C = shape[1]
    x = (rng.standard_normal(shape) * 2.0 + offset).astype(np.float32)
    w = rng.standard_normal(C).astype(np.float32) if affine else None
    b = rng.standard_normal(C).astype(np.float32) if affine else None
    rm = rng.standard_normal(C).astype(np.float32)
    rv = (rng.random(C) + 0.5).astype(np.float32)
    return x, rm, rv, w, b


@pytest.mark.parametrize("target", opcheck.targets(BATCH_NORM, requires=KERNEL_NAMES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_batch_norm(target, rng, shape, training):
    x, rm, rv, w, b = _case(rng, shape)
    if training:  # the statistics come from x: the running arrays are checked below
        rm = rv = None
    opcheck.check(target, BATCH_NORM, (x, rm, rv, w, b), dict(training=training, momentum=0.1, eps=1e-5))


@pytest.mark.parametrize("target", opcheck.targets(BATCH_NORM, fd=False, requires=KERNEL_NAMES))
@pytest.mark.parametrize("shape", [(5, 3), (3, 5, 6, 7)], ids=str)
def test_batch_norm_without_affine(target, rng, shape):
    x, rm, rv, _, _ = _case(rng, shape, affine=False)
    opcheck.check(target, BATCH_NORM, (x, rm, rv, None, None), dict(training=False, momentum=0.1, eps=1e-3))
    opcheck.check(target, BATCH_NORM, (x, None, None, None, None), dict(training=True, momentum=0.1, eps=1e-3))


@pytest.mark.parametrize("target", opcheck.targets(BATCH_NORM_STATS, requires=KERNEL_NAMES))
@pytest.mark.parametrize("shape", [(5, 3), (64, 40), (2, 3, 4, 4), (3, 5, 6, 7)], ids=str)
@pytest.mark.parametrize("momentum", [0.1, 1.0, 0.0])
def test_batch_norm_running_statistics(target, rng, shape, momentum):
    x1, rm, rv, w, b = _case(rng, shape)
    x2 = (rng.standard_normal(shape) * 0.5 - 1.0).astype(np.float32)
    kw = dict(training=True, momentum=momentum, eps=1e-5)
    opcheck.check(target, BATCH_NORM_STATS, [(x1, rm, rv, w, b), (x2, rm, rv, w, b), (x1, rm, rv, w, b)], kw)


@pytest.mark.parametrize("shape", [(4096, 3), (8, 3, 64, 64)], ids=str)
def test_variance_is_stable_far_from_zero(isa, shape):
    """A channel of values 1000 + N(0, 1e-2): E[x^2] - E[x]^2 in float32 would lose every
    digit (1e6 against 1e-4); the kernel's variance keeps about 1e-3 relative accuracy."""
    rng = np.random.default_rng(5)
    x = (1000.0 + 0.01 * rng.standard_normal(shape)).astype(np.float32)
    rm, rv = np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32)
    for threads in (1, 2):
        lamina.set_num_threads(threads)
        y, mean, invstd = ops.batch_norm(x, rm.copy(), rv.copy(), training=True)
        x64 = x.astype(np.float64)
        axes = (0,) + tuple(range(2, x.ndim))
        var = x64.var(axis=axes)
        np.testing.assert_allclose(mean, x64.mean(axis=axes), rtol=1e-7)
        np.testing.assert_allclose(1.0 / invstd.astype(np.float64) ** 2 - 1e-5, var, rtol=2e-3)
        np.testing.assert_allclose(y.std(axis=axes), np.sqrt(var / (var + 1e-5)), rtol=2e-3)


def test_out_is_filled_and_returned(rng):
    x, rm, rv, w, b = _case(rng, (3, 4, 5, 5))
    out = np.full_like(x, np.nan)
    y, _, _ = ops.batch_norm(x, rm, rv, w, b, out=out)
    assert y is out
    np.testing.assert_allclose(out, ref.batch_norm(x, rm, rv, w, b)[0], rtol=1e-5, atol=1e-6)


def test_evaluation_mode_leaves_running_statistics(rng):
    x, rm, rv, w, b = _case(rng, (6, 3))
    rm0, rv0 = rm.copy(), rv.copy()
    ops.batch_norm(x, rm, rv, w, b, training=False)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)


# ---- bad inputs --------------------------------------------------------------------------------

@pytest.mark.parametrize("bn", [ops.batch_norm, ref.batch_norm], ids=["native", "reference"])
def test_bad_arguments_name_themselves(bn):
    x = np.zeros((4, 3, 2, 2), np.float32)
    c3, c2 = np.zeros(3, np.float32), np.ones(2, np.float32)
    with pytest.raises(ValueError, match="x"):
        bn(np.zeros(3, np.float32), training=True)
    with pytest.raises(TypeError, match="x"):
        bn(x.astype(np.float16), training=True)
    with pytest.raises(ValueError, match="weight"):
        bn(x, weight=c2, training=True)
    with pytest.raises(ValueError, match="bias"):
        bn(x, bias=c2, training=True)
    with pytest.raises(ValueError, match="running_mean"):
        bn(x, c2, c3, training=True)
    with pytest.raises(ValueError, match="running_var"):
        bn(x, c3, None, training=True)
    with pytest.raises(ValueError, match="required when training=False"):
        bn(x)
    with pytest.raises(ValueError, match="momentum"):
        bn(x, training=True, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        bn(x, training=True, eps=-1.0)
    with pytest.raises(TypeError, match="training"):
        bn(x, c3, np.ones(3, np.float32), training=1)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(np.zeros((1, 3), np.float32), training=True)


@pytest.mark.parametrize("bwd", [ops.batch_norm_backward, ref.batch_norm_backward], ids=["native", "reference"])
def test_bad_backward_arguments_name_themselves(bwd):
    x = np.zeros((4, 3), np.float32)
    c3 = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="grad_y"):
        bwd(np.zeros((4, 2), np.float32), x, c3, c3, c3)
    with pytest.raises(ValueError, match="mean"):
        bwd(x, x, c3, np.ones(2, np.float32), c3)
    with pytest.raises(ValueError, match="invstd"):
        bwd(x, x, None, c3, None)


def test_native_rejects_strided_and_read_only_running_statistics():
    x = np.ones((4, 3), np.float32)
    rv = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="running_mean"):
        ops.batch_norm(x, np.zeros(6, np.float32)[::2], rv, training=True)
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="running_mean"):
        ops.batch_norm(x, ro, rv, training=True)
    ops.batch_norm(x, ro, rv, training=False)  # read only is fine when nothing is written


def test_kernels_are_optional_and_on_lamina_backends():
    for k in KERNEL_NAMES:
        assert k in OPTIONAL_KERNELS and k not in lamina.backend.KERNELS
        for name in ("native", "numpy"):
            assert callable(getattr(lamina.get_backend(name), k))


def test_signatures_match_the_reference():
    import inspect
    sigs = lamina._native._kernel_signatures()
    for k in KERNEL_NAMES:
        want = [(p.name, p.default is not inspect.Parameter.empty,
                 None if p.default is inspect.Parameter.empty else p.default)
                for p in inspect.signature(getattr(ref, k)).parameters.values()]
        got = [tuple(p) for p in sigs[k]]
        assert [g[0] for g in got] == [w[0] for w in want], k
        for (n, wh, wd), (_, gh, gd) in zip(want, got):
            assert wh == gh and (not wh or (type(wd) is type(gd) and wd == gd)), (k, n, wd, gd)


# ---- the CUDA kernels on the emulator: what opcheck does not reach ------------------------------

def _emu():
    import lamina.cuda as lcuda
    if not lcuda.emu_built():
        pytest.skip("built without the CUDA emulator (LAMINA_CUDA_EMU=OFF)")
    return lamina.get_backend("cuda_emu")


def test_cuda_emu_signatures_are_the_references():
    import inspect
    be = _emu()
    for k in KERNEL_NAMES:
        assert inspect.signature(getattr(be, k)) == inspect.signature(getattr(ref, k)), k


def test_cuda_emu_bad_arguments_name_themselves():
    be = _emu()
    x = be.zeros((4, 3, 2, 2))
    c3, c2 = be.zeros((3,)), be.asarray(np.ones(2, np.float32))
    with pytest.raises(ValueError, match="x must have at least 2 dimensions"):
        be.batch_norm(be.zeros((3,)), training=True)
    with pytest.raises(TypeError, match="x must be .*lamina.cuda.Array"):
        be.batch_norm(np.zeros((4, 3), np.float32), training=True)
    with pytest.raises(TypeError, match="x must be float32"):
        be.batch_norm(be.asarray(np.zeros((4, 3))), training=True)
    with pytest.raises(ValueError, match="weight"):
        be.batch_norm(x, weight=c2, training=True)
    with pytest.raises(ValueError, match="bias"):
        be.batch_norm(x, bias=c2, training=True)
    with pytest.raises(ValueError, match="running_mean"):
        be.batch_norm(x, c2, c3, training=True)
    with pytest.raises(ValueError, match="given together"):
        be.batch_norm(x, c3, None, training=True)
    with pytest.raises(ValueError, match="required when training=False"):
        be.batch_norm(x)
    with pytest.raises(ValueError, match="momentum"):
        be.batch_norm(x, training=True, momentum=1.5)
    with pytest.raises(TypeError, match="momentum"):
        be.batch_norm(x, training=True, momentum=True)
    with pytest.raises(ValueError, match="eps"):
        be.batch_norm(x, training=True, eps=-1.0)
    with pytest.raises(TypeError, match="training"):
        be.batch_norm(x, c3, be.zeros((3,)), training=1)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        be.batch_norm(be.zeros((1, 3)), training=True)
    with pytest.raises(ValueError, match="overlap"):
        be.batch_norm(x, c3, c3, training=True)
    x2 = be.zeros((4, 3))
    with pytest.raises(ValueError, match="grad_y"):
        be.batch_norm_backward(be.zeros((4, 2)), x2, c3, c3, c3)
    with pytest.raises(ValueError, match="mean"):
        be.batch_norm_backward(x2, x2, c3, c2, c3)
    with pytest.raises(ValueError, match="invstd"):
        be.batch_norm_backward(x2, x2, None, c3, None)


def test_cuda_emu_strided_running_statistics_out_and_x_as_out(rng):
    """Running statistics that are strided views are updated in place (through a copy); out
    receives y and is returned, and may be x itself."""
    be = _emu()
    x, rm, rv, w, b = _case(rng, (6, 3, 4, 5))
    rm_ref, rv_ref = rm.copy(), rv.copy()
    want = ref.batch_norm(x, rm_ref, rv_ref, w, b, training=True)
    rm_big = be.asarray(np.repeat(rm, 2))
    rv_big = be.asarray(np.repeat(rv, 2))
    dx = be.asarray(x)
    y, mean, invstd = be.batch_norm(dx, rm_big[::2], rv_big[::2], be.asarray(w), be.asarray(b), training=True,
                                    out=dx)
    assert y is dx
    np.testing.assert_allclose(be.to_numpy(dx), want[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(be.to_numpy(mean), want[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(be.to_numpy(invstd), want[2], rtol=1e-5)
    np.testing.assert_allclose(be.to_numpy(rm_big)[::2], rm_ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(be.to_numpy(rv_big)[::2], rv_ref, rtol=1e-6)
    np.testing.assert_array_equal(be.to_numpy(rm_big)[1::2], rm[:])  # the elements between are untouched


def test_cuda_emu_variance_is_stable_far_from_zero():
    be = _emu()
    rng = np.random.default_rng(5)
    x = (1000.0 + 0.01 * rng.standard_normal((8, 3, 64, 64))).astype(np.float32)
    y, mean, invstd = be.batch_norm(be.asarray(x), training=True)
    x64 = x.astype(np.float64)
    var = x64.var(axis=(0, 2, 3))
    np.testing.assert_allclose(be.to_numpy(mean), x64.mean(axis=(0, 2, 3)), rtol=1e-7)
    np.testing.assert_allclose(1.0 / be.to_numpy(invstd).astype(np.float64) ** 2 - 1e-5, var, rtol=2e-3)
