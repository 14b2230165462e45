"""Out-of-place optimiser steps: sgd_step(..., param_out, velocity_out) and
adam_step(..., param_out, m_out, v_out) write the new state into the outputs and leave the
inputs as they were; the bits equal an in-place step's, on every CPU path at 1 and 2 threads,
natively and in the reference."""
import numpy as np
import pytest

from lamina import ops, reference as R

N = 100_003  # > 2 * 32K (split over 2 threads), and a masked tail on every path

SGD = {
    "plain": dict(),
    "weight decay": dict(weight_decay=0.01),
    "momentum": dict(momentum=0.9),
    "momentum + weight decay": dict(momentum=0.9, weight_decay=0.01),
    "nesterov": dict(momentum=0.9, nesterov=True),
    "nesterov + weight decay": dict(momentum=0.9, nesterov=True, weight_decay=0.01),
}
ADAM = {
    "adam": dict(),
    "adam + L2": dict(weight_decay=0.01),
    "adamw": dict(weight_decay=0.01, decoupled=True),
    "adamw, no decay": dict(decoupled=True),
}


def state(rng, n=N, k=3):
    return [rng.standard_normal(n).astype(np.float32) for _ in range(k)]


def readonly(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


@pytest.mark.parametrize("impl", [ops, R], ids=["native", "reference"])
@pytest.mark.parametrize("kw", list(SGD.values()), ids=list(SGD))
def test_sgd_out_of_place_equals_in_place(rng, isa, threads, impl, kw):
    p, g, v = state(rng)
    v = np.abs(v) if kw.get("momentum") else v
    ip, iv = p.copy(), v.copy()
    impl.sgd_step(ip, g, 0.1, velocity=iv, **kw)
    p0, v0, g0 = readonly(p.copy(), v.copy(), g.copy())
    po, vo = np.full_like(p, np.nan), np.full_like(v, np.nan)
    impl.sgd_step(p0, g0, 0.1, velocity=v0, param_out=po, velocity_out=vo, **kw)
    np.testing.assert_array_equal(po, ip)
    np.testing.assert_array_equal(vo, iv)  # momentum 0: velocity's unchanged value
    np.testing.assert_array_equal(p0, p)
    np.testing.assert_array_equal(v0, v)
    np.testing.assert_array_equal(g0, g)
    # param out of place, velocity in place (and the other way round)
    p1, v1 = p.copy(), v.copy()
    po1 = np.empty_like(p)
    impl.sgd_step(readonly(p1)[0], g, 0.1, velocity=v1, param_out=po1, **kw)
    np.testing.assert_array_equal(po1, ip)
    np.testing.assert_array_equal(v1, iv)
    np.testing.assert_array_equal(p1, p)
    if kw.get("momentum"):
        p2, v2, vo2 = p.copy(), v.copy(), np.empty_like(v)
        impl.sgd_step(p2, g, 0.1, velocity=readonly(v2)[0], velocity_out=vo2, **kw)
        np.testing.assert_array_equal(p2, ip)
        np.testing.assert_array_equal(vo2, iv)
        np.testing.assert_array_equal(v2, v)
    # an output that is its input is in place
    p3, v3 = p.copy(), v.copy()
    impl.sgd_step(p3, g, 0.1, velocity=v3, param_out=p3, velocity_out=v3, **kw)
    np.testing.assert_array_equal(p3, ip)
    np.testing.assert_array_equal(v3, iv)


@pytest.mark.parametrize("impl", [ops, R], ids=["native", "reference"])
@pytest.mark.parametrize("kw", list(ADAM.values()), ids=list(ADAM))
def test_adam_out_of_place_equals_in_place(rng, isa, threads, impl, kw):
    p, g, m = state(rng)
    v = np.abs(state(rng, k=1)[0])
    ip, im, iv = p.copy(), m.copy(), v.copy()
    impl.adam_step(ip, g, im, iv, 1e-3, 7, **kw)
    p0, g0, m0, v0 = readonly(p.copy(), g.copy(), m.copy(), v.copy())
    po, mo, vo = (np.full_like(p, np.nan) for _ in range(3))
    impl.adam_step(p0, g0, m0, v0, 1e-3, 7, param_out=po, m_out=mo, v_out=vo, **kw)
    for got, want in ((po, ip), (mo, im), (vo, iv), (p0, p), (g0, g), (m0, m), (v0, v)):
        np.testing.assert_array_equal(got, want)
    # only param out of place: m and v in place
    m1, v1, po1 = m.copy(), v.copy(), np.empty_like(p)
    impl.adam_step(readonly(p.copy())[0], g, m1, v1, 1e-3, 7, param_out=po1, **kw)
    for got, want in ((po1, ip), (m1, im), (v1, iv)):
        np.testing.assert_array_equal(got, want)
    # outputs that are their inputs
    p3, m3, v3 = p.copy(), m.copy(), v.copy()
    impl.adam_step(p3, g, m3, v3, 1e-3, 7, param_out=p3, m_out=m3, v_out=v3, **kw)
    for got, want in ((p3, ip), (m3, im), (v3, iv)):
        np.testing.assert_array_equal(got, want)


def test_native_equals_reference_out_of_place(rng):
    p, g, v = state(rng, n=1000)
    outs = [(np.empty_like(p), np.empty_like(p)) for _ in range(2)]
    for impl, (po, vo) in zip((ops, R), outs):
        impl.sgd_step(p, g, 0.1, velocity=v, momentum=0.9, nesterov=True, param_out=po, velocity_out=vo)
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-6, atol=1e-7)


def _sgd(p, g, v, **kw):
    ops.sgd_step(p, g, 0.1, velocity=v, momentum=0.9, **kw)


def _adam(p, g, m, v, **kw):
    ops.adam_step(p, g, m, v, 1e-3, 1, **kw)


@pytest.mark.parametrize("why, call, exc, match", [
    ("velocity_out needs velocity",
     lambda p, g, v, b: ops.sgd_step(p, g, 0.1, velocity_out=v), ValueError, "velocity_out requires velocity"),
    ("param_out of another shape", lambda p, g, v, b: _sgd(p, g, v, param_out=np.zeros(7, np.float32)),
     ValueError, "param_out has shape"),
    ("param_out float64", lambda p, g, v, b: _sgd(p, g, v, param_out=np.zeros(8)), TypeError, "param_out"),
    ("param_out a list", lambda p, g, v, b: _sgd(p, g, v, param_out=[0.0] * 8), TypeError, "param_out"),
    ("param_out strided", lambda p, g, v, b: _sgd(p, g, v, param_out=np.zeros(16, np.float32)[::2]),
     ValueError, "param_out must be C-contiguous"),
    ("param_out read-only", lambda p, g, v, b: _sgd(p, g, v, param_out=readonly(np.zeros(8, np.float32))[0]),
     ValueError, "param_out is read-only"),
    ("param_out partly over param", lambda p, g, v, b: _sgd(b[0:8], g, v, param_out=b[4:12]),
     ValueError, "param_out partly overlaps param"),
    ("param_out is grad", lambda p, g, v, b: _sgd(p, g, v, param_out=g), ValueError, "param_out overlaps grad"),
    ("param_out is velocity", lambda p, g, v, b: _sgd(p, g, v, param_out=v), ValueError,
     "param_out overlaps velocity"),
    ("velocity_out is param", lambda p, g, v, b: _sgd(p, g, v, velocity_out=p), ValueError,
     "velocity_out overlaps param"),
    ("velocity_out partly over velocity", lambda p, g, v, b: _sgd(p, g, b[0:8], velocity_out=b[2:10]),
     ValueError, "velocity_out partly overlaps velocity"),
    ("param_out and velocity_out the same", lambda p, g, v, b: _sgd(p, g, v, param_out=b[:8], velocity_out=b[:8]),
     ValueError, "overlaps"),
    ("read-only param in place", lambda p, g, v, b: _sgd(readonly(p.copy())[0], g, v), ValueError,
     "param is read-only"),
    ("m_out of another shape", lambda p, g, v, b: _adam(p, g, v, b[:8], m_out=np.zeros(9, np.float32)),
     ValueError, "m_out has shape"),
    ("v_out is m", lambda p, g, v, b: _adam(p, g, v, b[:8], v_out=v), ValueError, "v_out overlaps m"),
    ("m_out is grad", lambda p, g, v, b: _adam(p, g, v, b[:8], m_out=g), ValueError, "m_out overlaps grad"),
    ("v_out partly over v", lambda p, g, v, b: _adam(p, g, v, b[0:8], v_out=b[1:9]), ValueError,
     "v_out partly overlaps v"),
    ("param_out is m_out", lambda p, g, v, b: _adam(p, g, v, b[:8], param_out=b[16:24], m_out=b[16:24]),
     ValueError, "overlaps"),
    ("read-only m in place", lambda p, g, v, b: _adam(p, g, readonly(v.copy())[0], b[:8]), ValueError,
     "m is read-only"),
])
def test_bad_outputs_are_rejected(why, call, exc, match):
    p, g, v = (np.ones(8, np.float32) for _ in range(3))
    b = np.zeros(32, np.float32)
    before = (p.copy(), g.copy(), v.copy(), b.copy())
    with pytest.raises(exc, match=match):
        call(p, g, v, b)
    for x, x0 in zip((p, g, v, b), before):  # nothing written
        np.testing.assert_array_equal(x, x0)
