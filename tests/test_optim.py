"""lamina.optim: SGD/Adam against their formulas (and PyTorch when installed), frozen
parameters, per-parameter learning-rate scales, param groups, schedules, state round trip."""
import math

import numpy as np
import pytest

from lamina import optim
from lamina.nn import Parameter


def _params(rng, shapes=((3, 4), (4,))):
    return [Parameter(rng.standard_normal(s).astype(np.float32), f"p{i}") for i, s in enumerate(shapes)]


def _grads(rng, params, steps):
    return [[rng.standard_normal(p.shape).astype(np.float32) for p in params] for _ in range(steps)]


def _run(opt, params, grads):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = g
        opt.step()
    return [p.data.copy() for p in params]


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
                                dict(momentum=0.5, weight_decay=0.1), dict(weight_decay=0.01)])
def test_sgd_matches_formula(rng, backend, kw):
    params = _params(rng)
    init = [p.data.astype(np.float64) for p in params]
    grads = _grads(rng, params, 4)
    got = _run(optim.SGD(params, lr=0.1, backend=backend, **kw), params, grads)
    m, wd, nest = kw.get("momentum", 0), kw.get("weight_decay", 0), kw.get("nesterov", False)
    x, v = init, [np.zeros_like(a) for a in init]
    for gs in grads:
        for i, g in enumerate(gs):
            g = g + wd * x[i]
            if m:
                v[i] = m * v[i] + g
                g = g + m * v[i] if nest else v[i]
            x[i] = x[i] - 0.1 * g
    for a, b in zip(got, x):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _torch_run(torch_cls, kw, init, grads):
    torch = pytest.importorskip("torch")
    ts = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = torch_cls(ts, **kw)
    for gs in grads:
        for t, g in zip(ts, gs):
            t.grad = torch.tensor(g)
        opt.step()
    return [t.detach().numpy() for t in ts]


@pytest.mark.parametrize("kw", [dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)])
def test_sgd_matches_torch(rng, kw):
    torch = pytest.importorskip("torch")
    params = _params(rng)
    init = [p.data.copy() for p in params]
    grads = _grads(rng, params, 5)
    got = _run(optim.SGD(params, **kw), params, grads)
    for a, b in zip(got, _torch_run(torch.optim.SGD, kw, init, grads)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls,kw", [("Adam", dict(lr=0.01)), ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
                                    ("AdamW", dict(lr=0.01, weight_decay=0.1))])
def test_adam_matches_torch(rng, cls, kw):
    torch = pytest.importorskip("torch")
    params = _params(rng)
    init = [p.data.copy() for p in params]
    grads = _grads(rng, params, 6)
    got = _run(getattr(optim, cls)(params, **kw), params, grads)
    for a, b in zip(got, _torch_run(getattr(torch.optim, cls), kw, init, grads)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_adam_first_step_is_lr_times_sign(rng):
    p = Parameter(np.zeros(5, np.float32))
    p.grad = np.array([1, -2, 3, -4, 5], np.float32)
    optim.Adam([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, -0.1 * np.sign(p.grad), rtol=1e-5)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps, lr=0.1)])
def test_frozen_parameters_are_skipped(rng, make):
    params = _params(rng)
    params[0].trainable = False
    before = params[0].data.copy()
    opt = make(params)
    _run(opt, params, _grads(rng, params, 2))
    np.testing.assert_array_equal(params[0].data, before)
    assert params[0] not in opt.state and params[1] in opt.state


def test_lr_scale_and_param_groups(rng):
    a, b, c = _params(rng, ((4,), (4,), (4,)))
    init = [p.data.copy() for p in (a, b, c)]
    b.lr_scale = 0.5
    opt = optim.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.01}], lr=0.1)
    g = np.ones(4, np.float32)
    for p in (a, b, c):
        p.grad = g
    opt.step()
    np.testing.assert_allclose(a.data, init[0] - 0.1, rtol=1e-6)
    np.testing.assert_allclose(b.data, init[1] - 0.05, rtol=1e-6)
    np.testing.assert_allclose(c.data, init[2] - 0.01, rtol=1e-6)
    c.lr_scale = 0.0
    before = c.data.copy()
    opt.step()
    np.testing.assert_array_equal(c.data, before)
    with pytest.raises(ValueError, match="more than one group"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    with pytest.raises(ValueError, match="unknown option"):
        optim.SGD([{"params": [a], "betas": (0.9, 0.9)}], lr=0.1)


def test_bad_hyperparameters():
    p = [Parameter(np.zeros(2, np.float32))]
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(p, lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(p, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


def test_schedules():
    p = [Parameter(np.zeros(2, np.float32))]
    opt = optim.SGD(p, lr=1.0)
    s = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = [opt.lr]
    for _ in range(5):
        s.step()
        lrs.append(opt.lr)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    opt = optim.SGD(p, lr=1.0)
    c = optim.CosineLR(opt, T_max=4, eta_min=0.1)
    lrs = [opt.lr]
    for _ in range(5):
        c.on_epoch_end(0)
        lrs.append(opt.lr)
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * min(e, 4) / 4)) / 2 for e in range(6)]
    np.testing.assert_allclose(lrs, expected)
    resumed = optim.CosineLR(optim.SGD(p, lr=1.0), T_max=4, eta_min=0.1, last_epoch=2)
    assert resumed.get_last_lr() == pytest.approx([expected[3]])


def test_state_dict_round_trip(rng):
    params = _params(rng)
    opt = optim.Adam(params, lr=0.01)
    grads = _grads(rng, params, 3)
    _run(opt, params, grads[:2])
    sd = opt.state_dict()
    copies = [Parameter(p.data.copy()) for p in params]
    opt2 = optim.Adam(copies, lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.lr == 0.01
    a = _run(opt, params, grads[2:])
    b = _run(opt2, copies, grads[2:])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    sd["state"][0]["m"] = np.zeros(7)
    with pytest.raises(ValueError, match="shape"):
        opt2.load_state_dict(sd)
    with pytest.raises(ValueError, match="SGD"):
        optim.SGD(copies, lr=0.1).load_state_dict(opt.state_dict())


def test_step_lr_step_size_one_is_the_smallest():
    opt = optim.SGD([Parameter(np.zeros(2, np.float32))], lr=1.0)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)  # valid: a decay every epoch
    sched.step()
    assert opt.lr == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\bstep_size\b"):
        optim.StepLR(opt, step_size=0)
