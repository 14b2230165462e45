"""SaddleFreeNewton's account of a step (``last_step``: every field, on a quadratic whose Hessian
is known), a rejected line search, and the messages of its errors."""
import math

import numpy as np
import pytest

from lamina import nn, optim


def _quadratic():
    p = nn.Parameter(np.array([1.0, 1.0]))  # f(w) = (w0^2 + 4 w1^2) / 2: H = diag(1, 4)

    def closure():
        w = p.numpy()
        p.grad = np.array([w[0], 4 * w[1]])
        return 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
    return p, closure


def test_last_step_describes_an_accepted_step():
    p, closure = _quadratic()
    opt = optim.SaddleFreeNewton([p], krylov_dim=2, damping=1e-3)
    assert opt.step(closure) == 2.5
    d = -np.array([1 / 1.001, 4 / 4.001])  # -(|H| + damping)^-1 g with g = (1, 4)
    np.testing.assert_allclose(p.numpy(), 1 + d, rtol=1e-6, atol=1e-9)
    info = opt.last_step
    assert set(info) == {"loss", "grad_norm", "new_loss", "step_length", "accepted", "trials", "ritz_values",
                         "slope", "step_norm", "closure_calls"}
    assert info["loss"] == 2.5 and info["grad_norm"] == pytest.approx(math.sqrt(17), rel=1e-12)
    np.testing.assert_allclose(info["ritz_values"], [1.0, 4.0], rtol=1e-6)
    assert info["slope"] == pytest.approx(float(np.dot([1.0, 4.0], d)), rel=1e-6)
    assert info["step_norm"] == pytest.approx(float(np.linalg.norm(d)), rel=1e-6)
    w = p.numpy()
    assert info["new_loss"] == pytest.approx(0.5 * (w[0] ** 2 + 4 * w[1] ** 2), rel=1e-9)
    assert (info["step_length"], info["accepted"], info["trials"]) == (1.0, True, 1)
    assert info["closure_calls"] == 1 + 2 * 2 + 1 == opt.closure_calls  # 1 + 2k + the trials


def test_last_step_of_a_rejected_line_search():
    p, closure = _quadratic()
    opt = optim.SaddleFreeNewton([p], krylov_dim=2, lr=10.0, max_backtracks=1)
    opt.step(closure)  # t = 10 and t = 5 both overshoot
    info = opt.last_step
    np.testing.assert_array_equal(p.numpy(), [1.0, 1.0])
    assert (info["accepted"], info["step_length"], info["trials"], info["new_loss"]) == (False, 0.0, 2, 2.5)
    assert info["closure_calls"] == 1 + 4 + 2


def test_nothing_to_step_returns_the_loss_and_no_account():
    q = nn.Parameter(np.ones(2))
    q.trainable = False
    opt = optim.SaddleFreeNewton([q])
    assert opt.step(lambda: 3) == 3.0 and type(opt.step(lambda: 3)) is float
    assert opt.last_step is None
    opt.undo()  # nothing kept


def test_errors_say_what_went_wrong():
    p, _ = _quadratic()
    opt = optim.SaddleFreeNewton([p], krylov_dim=2)
    with pytest.raises(TypeError, match=r"^SaddleFreeNewton\.step needs a closure: step\(closure\), where closure\(\) "
                                        r"zeroes the gradients, runs forward and backward, and returns the loss$"):
        opt.step()

    def text():
        p.grad = np.ones(2)
        return "x"
    with pytest.raises(TypeError, match=r"^the closure must return the loss as a number, got str$"):
        opt.step(text)

    def nan_gradient():
        p.grad = np.array([np.nan, 1.0])
        return 1.0
    with pytest.raises(FloatingPointError, match=r"^SaddleFreeNewton: the closure returned a non-finite gradient at "
                                                 r"the current parameters; nothing was changed$"):
        opt.step(nan_gradient)
    np.testing.assert_array_equal(p.numpy(), [1.0, 1.0])


@pytest.mark.parametrize("lr_scale", [1.0, 0.5])
def test_without_line_search_the_exact_newton_step_scaled_by_lr_scale(lr_scale):
    p, closure = _quadratic()
    p.lr_scale = lr_scale
    opt = optim.SaddleFreeNewton([p], krylov_dim=2, line_search=False, damping=0.0)
    opt.step(closure)
    # damping 0, k = 2 = the parameter count: -|H|^-1 g = -w, times the parameter's lr_scale
    np.testing.assert_allclose(p.numpy(), [1 - lr_scale, 1 - lr_scale], atol=1e-9)
    info = opt.last_step
    assert (info["step_length"], info["accepted"], info["trials"], info["new_loss"]) == (1.0, True, 0, None)
    assert info["closure_calls"] == 1 + 2 * 2
    assert info["slope"] == pytest.approx(-5.0 * lr_scale, rel=1e-9)
    assert info["step_norm"] == pytest.approx(math.sqrt(2) * lr_scale, rel=1e-9)
