"""Optimiser and schedule defaults and edges: the documented default hyperparameters, the
smallest valid schedule lengths, the backend argument of AdamW, and undo after undo."""
import math

import numpy as np
import pytest

import lamina
from lamina import nn, optim


def _opt(lr=1.0):
    return optim.SGD(nn.Dense(3, 2).parameters(), lr=lr)


def test_cosine_with_t_max_one_goes_to_eta_min_in_one_epoch():
    opt = _opt(1.0)
    sched = optim.CosineLR(opt, T_max=1, eta_min=0.1)
    assert opt.lr == pytest.approx(1.0)
    sched.step()
    assert opt.lr == pytest.approx(0.1)
    sched.step()
    assert opt.lr == pytest.approx(0.1)  # constant at eta_min after T_max epochs


@pytest.mark.parametrize("t_max", [0, -3])
def test_cosine_rejects_t_max_below_one_naming_it(t_max):
    with pytest.raises(ValueError, match=rf"\bT_max\b must be >= 1, got {t_max}\b"):
        optim.CosineLR(_opt(), T_max=t_max)


def test_cosine_defaults_to_eta_min_zero():
    opt = _opt(0.5)
    sched = optim.CosineLR(opt, T_max=2)
    assert sched.get_config() == {"T_max": 2, "eta_min": 0.0}
    sched.step()
    sched.step()
    assert opt.lr == 0.0


def test_cosine_halfway_and_eta_min():
    opt = _opt(0.5)
    sched = optim.CosineLR(opt, T_max=6, eta_min=0.1)
    assert sched.get_config() == {"T_max": 6, "eta_min": 0.1}
    for _ in range(3):
        sched.step()
    assert opt.lr == pytest.approx(0.1 + 0.4 * (1 + math.cos(math.pi / 2)) / 2)


def test_step_lr_defaults_to_a_tenth_every_step_size():
    opt = _opt(1.0)
    sched = optim.StepLR(opt, step_size=2)
    assert sched.get_config() == {"step_size": 2, "gamma": 0.1}
    for _ in range(4):
        sched.step()
    assert opt.lr == pytest.approx(0.01)


def test_adamw_defaults_are_pytorchs():
    opt = optim.AdamW(nn.Dense(3, 2).parameters())
    g = opt.param_groups[0]
    assert (g["lr"], g["betas"], g["eps"], g["weight_decay"]) == (1e-3, (0.9, 0.999), 1e-8, 1e-2)
    assert opt.backend is None


def test_adamw_runs_on_the_backend_it_is_given():
    p = nn.Parameter(np.ones((2, 3), np.float32))
    p.grad = np.full((2, 3), 0.5, np.float32)
    opt = optim.AdamW([p], lr=0.1, weight_decay=0.5, backend="numpy")
    assert opt.backend is lamina.get_backend("numpy")
    opt.step()
    # decoupled decay, then Adam's first step of lr * sign(g): 1 * (1 - 0.05) - 0.1
    np.testing.assert_allclose(p.numpy(), np.full((2, 3), 0.85), rtol=1e-6)


def _quadratic():
    p = nn.Parameter(np.array([1.0, 1.0]))  # f(w) = (w0^2 + 4 w1^2) / 2

    def closure():
        w = p.numpy()
        p.grad = np.array([w[0], 4 * w[1]])
        return 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
    return p, closure


def test_saddle_free_newton_second_undo_does_nothing():
    p, closure = _quadratic()
    opt = optim.SaddleFreeNewton([p], krylov_dim=2)
    opt.step(closure, keep_previous=True)
    assert not np.array_equal(p.numpy(), [1.0, 1.0])
    opt.undo()
    np.testing.assert_array_equal(p.numpy(), [1.0, 1.0])
    opt.step(closure, keep_previous=True)
    moved = p.numpy().copy()
    opt.undo()
    opt.undo()  # nothing kept any more
    np.testing.assert_array_equal(p.numpy(), [1.0, 1.0])
    assert not np.array_equal(moved, [1.0, 1.0])


def test_saddle_free_newton_undo_after_drop_previous_does_nothing():
    p, closure = _quadratic()
    opt = optim.SaddleFreeNewton([p], krylov_dim=2)
    opt.step(closure, keep_previous=True)
    moved = p.numpy().copy()
    opt.drop_previous()
    opt.undo()
    np.testing.assert_array_equal(p.numpy(), moved)
