"""sgd_step through opcheck: every implementation against the reference over several steps for
every variant (every CPU path and thread count, every registered backend), the PyTorch
first-step convention, in-place semantics, bad inputs."""
import numpy as np
import pytest

import opcheck
from lamina import ops, reference as ref

SHAPES = [(1,), (15,), (16,), (33,), (3, 5), (2, 3, 17), (0,), (400, 301)]
VARIANTS = [  # momentum, weight_decay, nesterov
    (0.0, 0.0, False), (0.0, 0.01, False), (0.9, 0.0, False), (0.9, 0.05, False), (0.9, 0.0, True),
    (0.5, 0.01, True)]


# in place on param (0) and velocity (3); returns None
SGD_STEP = opcheck.Op("sgd_step", inplace=(0, 3), close=opcheck.allclose(rtol=1e-5, atol=1e-6))


@pytest.mark.parametrize("target", opcheck.targets(SGD_STEP))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("momentum,weight_decay,nesterov", VARIANTS)
def test_matches_reference(target, rng, shape, momentum, weight_decay, nesterov):
    p = rng.standard_normal(shape).astype(np.float32)
    v = np.zeros(shape, np.float32) if momentum else None
    steps = [(p, rng.standard_normal(shape).astype(np.float32), 0.1, v) for _ in range(3)]
    opcheck.check(target, SGD_STEP, steps, dict(momentum=momentum, weight_decay=weight_decay, nesterov=nesterov))


def test_first_step_velocity_equals_g(rng):
    p = rng.standard_normal(50).astype(np.float32)
    g = rng.standard_normal(50).astype(np.float32)
    p0 = p.copy()
    v = np.zeros_like(p)
    ops.sgd_step(p, g, 0.5, v, momentum=0.9, weight_decay=0.1)
    np.testing.assert_allclose(v, g + np.float32(0.1) * p0, rtol=1e-6)
    np.testing.assert_allclose(p, p0 - np.float32(0.5) * v, rtol=1e-6, atol=1e-7)


def test_plain_sgd_and_velocity_untouched_without_momentum(rng):
    p = rng.standard_normal(40).astype(np.float32)
    g = rng.standard_normal(40).astype(np.float32)
    want = p - np.float32(0.01) * g
    v = np.full(40, 7.0, np.float32)
    ops.sgd_step(p, g, 0.01, v)
    np.testing.assert_allclose(p, want, rtol=1e-6)
    assert np.all(v == 7.0)


def test_lr_zero_leaves_param(rng):
    p = rng.standard_normal(20).astype(np.float32)
    p0 = p.copy()
    ops.sgd_step(p, rng.standard_normal(20).astype(np.float32), 0.0)
    np.testing.assert_array_equal(p, p0)


def test_bad_inputs():
    p = np.zeros((3, 4), np.float32)
    g = np.zeros((3, 4), np.float32)
    v = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"\bgrad\b"):
        ops.sgd_step(p, np.zeros((4, 3), np.float32), 0.1)
    with pytest.raises(ValueError, match=r"\bvelocity\b"):
        ops.sgd_step(p, g, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"\bvelocity\b"):
        ops.sgd_step(p, g, 0.1, np.zeros(12, np.float32), momentum=0.9)
    with pytest.raises(ValueError, match=r"\bnesterov\b"):
        ops.sgd_step(p, g, 0.1, v, nesterov=True)
    with pytest.raises(ValueError, match=r"\bnesterov\b"):
        ref.sgd_step(p, g, 0.1, v, nesterov=True)
    for name in ("lr", "momentum", "weight_decay"):
        kw = dict(lr=0.1, momentum=0.5, weight_decay=0.0)
        kw[name] = -0.1
        with pytest.raises(ValueError, match=name):
            ops.sgd_step(p, g, velocity=v, **kw)
        kw[name] = float("nan")
        with pytest.raises(ValueError, match=name):
            ops.sgd_step(p, g, velocity=v, **kw)
    with pytest.raises(TypeError, match=r"\blr\b"):
        ops.sgd_step(p, g, "0.1")
    ro = p.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"\bparam\b"):
        ops.sgd_step(ro, g, 0.1)
    vro = v.copy()
    vro.flags.writeable = False
    with pytest.raises(ValueError, match=r"\bvelocity\b"):
        ops.sgd_step(p, g, 0.1, vro, momentum=0.9)
    with pytest.raises(ValueError, match=r"\bparam\b"):
        ops.sgd_step(np.zeros((3, 8), np.float32)[:, ::2], g, 0.1)
    with pytest.raises(ValueError, match=r"\bvelocity\b"):
        ops.sgd_step(p, g, 0.1, np.zeros((3, 8), np.float32)[:, ::2], momentum=0.9)
    with pytest.raises(TypeError, match=r"\bgrad\b"):
        ops.sgd_step(p, g.astype(np.float64), 0.1)
    with pytest.raises(TypeError, match=r"\bvelocity\b"):
        ops.sgd_step(p, g, 0.1, v.astype(np.float64), momentum=0.9)
    with pytest.raises(ValueError, match=r"\boverlaps\b"):
        ops.sgd_step(p, p, 0.1)
    with pytest.raises(ValueError, match=r"\boverlaps\b"):
        ops.sgd_step(p, g, 0.1, p, momentum=0.9)
    with pytest.raises(ValueError, match=r"\boverlaps\b"):
        ops.sgd_step(p, g, 0.1, g, momentum=0.9)


# ---- adam_step ---------------------------------------------------------------------------------

ADAM_VARIANTS = [  # weight_decay, decoupled
    (0.0, False), (0.1, False), (0.1, True), (0.0, True)]


def _adam_torch_formula(p, grads, lr, b1, b2, eps, wd, decoupled):
    """PyTorch's single-tensor Adam / AdamW written out in float64, step by step."""
    p = p.astype(np.float64).copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if decoupled:
            p = p * (1 - lr * wd)
        elif wd != 0:
            g = g + wd * p
        m = m + (1 - b1) * (g - m)  # torch: exp_avg.lerp_(grad, 1 - beta1)
        v = v * b2 + (1 - b2) * g * g
        step_size = lr / (1 - b1**t)
        denom = np.sqrt(v) / np.sqrt(1 - b2**t) + eps
        p = p - step_size * m / denom
    return p, m, v


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("weight_decay,decoupled", ADAM_VARIANTS)
def test_adam_matches_formula_and_reference(isa, threads, rng, shape, weight_decay, decoupled):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(5)]
    want_p, want_m, want_v = _adam_torch_formula(p, grads, lr, b1, b2, eps, weight_decay, decoupled)
    m, v = np.zeros_like(p), np.zeros_like(p)
    rp, rm, rv = p.astype(np.float64), np.zeros(shape), np.zeros(shape)
    for t, g in enumerate(grads, start=1):
        kw = dict(beta1=b1, beta2=b2, eps=eps, weight_decay=weight_decay, decoupled=decoupled)
        assert ops.adam_step(p, g, m, v, lr, t, **kw) is None
        ref.adam_step(rp, g.astype(np.float64), rm, rv, lr, t, **kw)
    for got, want in ((p, want_p), (m, want_m), (v, want_v)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    for got, want in ((rp, want_p), (rm, want_m), (rv, want_v)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_adam_reference_float32_and_defaults(rng):
    p = rng.standard_normal(40).astype(np.float32)
    g = rng.standard_normal(40).astype(np.float32)
    p0 = p.copy()
    p2, m2, v2 = p.copy(), np.zeros_like(p), np.zeros_like(p)
    m, v = np.zeros_like(p), np.zeros_like(p)
    ref.adam_step(p, g, m, v, 0.001, 1)
    assert p.dtype == np.float32
    ops.adam_step(p2, g, m2, v2, 0.001, 1)
    np.testing.assert_allclose(p2, p, rtol=1e-6, atol=1e-7)
    # the first step moves every coordinate by lr * g / (|g| + eps) ~ lr * sign(g)
    np.testing.assert_allclose(p0 - p2, 0.001 * np.sign(g), rtol=1e-3)
    np.testing.assert_allclose(m2, 0.1 * g, rtol=1e-6)
    np.testing.assert_allclose(v2, 0.001 * g * g, rtol=1e-5)


@pytest.mark.parametrize("weight_decay,decoupled", ADAM_VARIANTS)
@pytest.mark.parametrize("betas,eps", [((0.9, 0.999), 1e-8), ((0.5, 0.9), 1e-3)])
def test_adam_matches_torch_optim(rng, weight_decay, decoupled, betas, eps):
    torch = pytest.importorskip("torch")
    shape, lr = (7, 33), 0.003
    p0 = rng.standard_normal(shape).astype(np.float32)
    tp = torch.nn.Parameter(torch.tensor(p0))
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = cls([tp], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t in range(1, 7):
        g = rng.standard_normal(shape).astype(np.float32)
        tp.grad = torch.tensor(g)
        opt.step()
        ops.adam_step(p, g, m, v, lr, t, beta1=betas[0], beta2=betas[1], eps=eps,
                      weight_decay=weight_decay, decoupled=decoupled)
    state = opt.state[tp]
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m, state["exp_avg"].numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(v, state["exp_avg_sq"].numpy(), rtol=1e-5, atol=1e-9)


def test_adam_bad_inputs():
    p = np.zeros((3, 4), np.float32)
    g, m, v = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for mod in (ops, ref):
        for step in (0, -3):
            with pytest.raises(ValueError, match=r"\bstep\b"):
                mod.adam_step(p, g, m, v, 0.1, step)
        with pytest.raises(TypeError, match=r"\bstep\b"):
            mod.adam_step(p, g, m, v, 0.1, 1.0)
        for name in ("grad", "m", "v"):
            args = dict(grad=g, m=m, v=v)
            args[name] = np.zeros((4, 3), np.float32)
            with pytest.raises(ValueError, match=name):
                mod.adam_step(p, args["grad"], args["m"], args["v"], 0.1, 1)
        for name, bad in (("lr", -0.1), ("eps", -1.0), ("weight_decay", -0.01), ("beta1", 1.0),
                          ("beta2", -0.1), ("lr", float("nan"))):
            with pytest.raises(ValueError, match=name):
                mod.adam_step(p, g, m, v, step=1, **{"lr": 0.1, name: bad})
    with pytest.raises(TypeError, match=r"\blr\b"):
        ops.adam_step(p, g, m, v, "0.1", 1)
    with pytest.raises(TypeError, match=r"\bm\b"):
        ops.adam_step(p, g, m.astype(np.float64), v, 0.1, 1)
    with pytest.raises(TypeError, match=r"\bgrad\b"):
        ops.adam_step(p, [0.0], m, v, 0.1, 1)
    ro = v.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"\bv\b"):
        ops.adam_step(p, g, m, ro, 0.1, 1)
    with pytest.raises(ValueError, match=r"\bparam\b"):
        ops.adam_step(np.zeros((3, 8), np.float32)[:, ::2], g, m, v, 0.1, 1)
    with pytest.raises(ValueError, match=r"\boverlaps?\b"):
        ops.adam_step(p, g, m, m, 0.1, 1)
    with pytest.raises(ValueError, match=r"\boverlaps?\b"):
        ops.adam_step(p, p, m, v, 0.1, 1)
