"""Training faults: after a non-finite loss, fit restores the weights and the
optimiser's whole state (velocities, Adam moments, step counts) from before the update that led
to it, without copying the parameters on every step."""
import numpy as np
import pytest
import wrapped_backend

import lamina
from lamina import nn, optim
from lamina.models import mlp


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n)


def _host_state(opt, model):
    sd = opt.state_dict(model.parameters())
    return {i: {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in st.items()}
            for i, st in sd["state"].items()}


class Sabotage:
    """Snapshots weights and optimiser state at the end of batch `at - 1` (= what the update of
    batch `at` starts from), then, after batch `at`, puts an inf into a weight so that the next
    loss is not finite."""

    def __init__(self, at, opt):
        self.at, self.opt, self.snapshot = at, opt, None

    def set_model(self, model):
        self.model = model

    def on_batch_end(self, batch, logs):
        if batch == self.at - 1:
            self.snapshot = ([p.numpy() for p in self.model.parameters()], _host_state(self.opt, self.model))
        if batch == self.at:
            w = self.model[-1].weight
            host = w.numpy()
            host[0, 0] = np.inf
            w.assign(host)


@pytest.mark.parametrize("backend", ["native", "numpy", "wrapped"])
@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    lambda ps: optim.SGD(ps, lr=0.05),
    lambda ps: optim.Adam(ps, lr=1e-3, weight_decay=1e-4),
    lambda ps: optim.AdamW(ps, lr=1e-3),
], ids=["sgd-nesterov", "sgd", "adam", "adamw"])
def test_a_non_finite_loss_restores_weights_and_optimiser_state(backend, make_opt):
    if backend == "wrapped":
        wrapped_backend.register()
    X, y = _data()
    lamina.seed(1)
    model = mlp(784, (16,)).to(backend)
    if backend == "numpy":
        model.astype(np.float64)
    opt = make_opt(model.parameters())
    spy = Sabotage(5, opt)
    with pytest.raises(nn.NonFiniteLossError) as e:
        model.fit(X, y, epochs=3, batch_size=8, optimizer=opt, callbacks=[spy], seed=0, verbose=0)
    assert (e.value.epoch, e.value.batch) == (1, 7)
    weights, state = spy.snapshot
    for a, b in zip([p.numpy() for p in model.parameters()], weights):
        np.testing.assert_array_equal(a, b)
    now = _host_state(opt, model)
    assert now.keys() == state.keys()
    for i in state:
        for k, v in state[i].items():
            np.testing.assert_array_equal(now[i][k], v)  # velocities, moments, step counts
    # training can go on from there with the same optimiser
    model[-1].weight.assign(np.zeros(model[-1].weight.shape))
    model.fit(X, y, epochs=1, batch_size=8, optimizer=opt, seed=0, verbose=0)


def test_fit_keeps_each_parameter_in_its_own_arrays():
    X, y = _data()
    model = mlp(784, (16,))
    arrays = [p.data for p in model.parameters()]
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for steps in (3, 4):  # an odd and an even number of swaps
        model.fit(X[: 8 * steps], y[: 8 * steps], epochs=1, batch_size=8, optimizer=opt, verbose=0)
        assert all(p.data is a for p, a in zip(model.parameters(), arrays))
    velocities = [opt.state[p]["velocity"] for p in model.parameters()]
    model.fit(X[:24], y[:24], epochs=1, batch_size=8, optimizer=opt, verbose=0)
    assert all(opt.state[p]["velocity"] is v for p, v in zip(model.parameters(), velocities))


def test_fit_does_not_copy_the_parameters_every_step():
    be = wrapped_backend.register("wrapped-count")
    calls = []
    real = be.copy

    def counting_copy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    be.copy = counting_copy
    try:
        X, y = _data(128)
        model = mlp(784, (16,)).to("wrapped-count")
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        model.fit(X, y, epochs=2, batch_size=8, optimizer=opt, verbose=0)  # 32 steps
    finally:
        be.copy = real
    n_arrays = 2 * len(model.parameters())  # parameter + velocity, settled once at the end
    assert len(calls) <= n_arrays, f"{len(calls)} copies for 32 steps"


def test_undo_brings_back_the_step_before():
    p = nn.Parameter(np.arange(6, dtype=np.float32))
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.ones(6, np.float32)
    opt.step(keep_previous=True)
    before = (p.numpy(), opt.state[p]["m"].copy(), opt.state[p]["step"])
    p.grad = np.full(6, 2.0, np.float32)
    opt.step(keep_previous=True)
    opt.undo()
    np.testing.assert_array_equal(p.numpy(), before[0])
    np.testing.assert_array_equal(opt.state[p]["m"], before[1])
    assert opt.state[p]["step"] == before[2] == 1
    opt.undo()  # a second undo does nothing
    assert opt.state[p]["step"] == 1
    opt.drop_previous()
    np.testing.assert_array_equal(p.numpy(), before[0])
