"""Training paths the everyday tests do not take: the conv gradients from the pooled gradient
(Conv2D + ReLU + MaxPool2D first in the model) with a stride and a dilation, the undo by copies
for an optimiser whose step cannot keep its previous arrays, and the closure step of a
second-order optimiser (training-mode forward, its errors)."""
import numpy as np
import pytest
from nn_helpers import clone, params_of

import lamina
from lamina import losses, nn, optim


def _grads(model):
    be = lamina.get_backend(model.parameters()[0].be.name)
    return [np.array(be.to_numpy(p.grad)) for p in model.parameters()]


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("conv", [dict(stride=2), dict(dilation=2), dict(stride=2, dilation=2, padding=1)],
                         ids=["stride", "dilation", "both"])
def test_conv_gradients_from_the_pool_match_the_plain_backward(rng, backend, conv):
    # train_step wants no input gradient: the first Conv2D + ReLU + MaxPool2D takes its
    # gradients from the pooled gradient; backward() wants dC/dx and runs the plain path.
    s, d, pad = conv.get("stride", 1), conv.get("dilation", 1), conv.get("padding", 0)
    h = (18 + 2 * pad - 2 * d - 1) // s + 1  # the conv's output height and width (3 x 3 kernel)
    lamina.seed(4)
    model = nn.Sequential(nn.Conv2D(2, 3, 3, **conv), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Dense(3 * (h // 2) ** 2, 2)).to(backend)
    x = rng.standard_normal((5, 2, 18, 18)).astype(np.float32)
    y = rng.integers(0, 2, 5)
    model.compile(optim.SGD(model.parameters(), lr=0.0), "cross_entropy")  # lr 0: no update
    model.train_step(x, y)
    pooled = _grads(model)
    model.zero_grad()
    _, g = losses.CrossEntropy()(model.forward(x, training=True), y)
    model.backward(g)
    for a, b in zip(pooled, _grads(model)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


class StepOnlySGD(optim.SGD):
    """An optimiser whose step cannot keep the previous arrays (no keep_previous)."""

    def step(self):
        super().step()


def test_non_finite_loss_restores_the_weights_from_copies(rng):
    X = rng.standard_normal((40, 4)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    X[25] = np.nan  # in the third batch of 10
    lamina.seed(2)
    model = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 3))
    ref = clone(model)
    with pytest.raises(nn.NonFiniteLossError, match=r"epoch 1, batch 3 of 4") as info:
        model.fit(X, y, epochs=1, batch_size=10, shuffle=False, verbose=0,
                  optimizer=StepOnlySGD(model.parameters(), lr=0.5))
    assert np.isnan(info.value.loss)
    # the weights from before the update that led to the bad loss: one step of training
    ref.fit(X[:10], y[:10], epochs=1, batch_size=10, shuffle=False, verbose=0,
            optimizer=optim.SGD(ref.parameters(), lr=0.5))
    for p, q in zip(params_of(model), params_of(ref)):
        np.testing.assert_array_equal(p, q)


def _bn_model():
    lamina.seed(7)
    return nn.Sequential(nn.Dense(4, 3), nn.BatchNorm1D(3)).to("numpy").astype(np.float64)


def test_closure_step_runs_the_forward_in_training_mode(rng):
    x = rng.standard_normal((16, 4)) * 3 + 1
    y = rng.standard_normal((16, 3))
    model = _bn_model()
    want = np.array(model.forward(x, training=True))  # batch statistics, not the running ones
    evaluation = np.array(model.forward(x, training=False))
    model = _bn_model()
    model.compile(optim.SaddleFreeNewton(model.parameters(), krylov_dim=2), "mse")
    lval, out = model.train_step(x, y)
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-12)
    assert not np.allclose(want, evaluation)
    assert lval == pytest.approx(losses.MSE()(want, y)[0], rel=1e-12)


def test_closure_step_errors_say_what_happened(rng):
    model = _bn_model()
    model.compile(optim.SaddleFreeNewton(model.parameters(), krylov_dim=2), "mse")
    x = np.full((4, 4), np.nan)
    with pytest.raises(nn.NonFiniteLossError, match=r"^non-finite loss \(nan\)$") as info:
        model.train_step(x, np.zeros((4, 3)))
    assert np.isnan(info.value.loss)

    class Idle(optim.SaddleFreeNewton):
        def step(self, closure, keep_previous=False):
            pass

    model.compile(Idle(model.parameters()), "mse")
    with pytest.raises(RuntimeError, match=r"^Idle\.step\(closure\) never called the closure$"):
        model.train_step(np.ones((4, 4)), np.zeros((4, 3)))
