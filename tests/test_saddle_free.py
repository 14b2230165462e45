"""lamina.optim.SaddleFreeNewton: the step against its formula, saddles (Newton attracted,
saddle-free Newton repelled), the line search, the argument checks, networks on every kind of
backend, fit with a closure-driven optimiser, checkpoints, and the saddle_free experiment."""
import json

import numpy as np
import pytest

import lamina
from lamina import nn, optim
from lamina.diagnostics import lanczos, tridiagonal
from lamina.nn import Parameter
from lamina.optim import SaddleFreeNewton

from wrapped_backend import Wrapped, register


# -- exact little problems: one 'model' = one Parameter, the closure computes f and grad exactly ---------
class Problem:
    """f and its gradient at a Parameter's values; counts closure calls."""

    def __init__(self, f, grad, w0, backend="numpy"):
        self.f, self.gradf = f, grad
        self.p = Parameter(np.array(w0, dtype=np.float64), backend=backend)
        self.calls = 0

    def closure(self):
        self.p.zero_grad()
        w = self.p.numpy()
        self.p.grad = np.asarray(self.gradf(w), dtype=np.float64)
        self.calls += 1
        return float(self.f(w))

    @property
    def w(self):
        return self.p.numpy()


def saddle_problem():
    # f(x, y) = x^2/2 - y^2/2 + y^4/4: a saddle at the origin, minima at (0, +-1), f = -1/4
    return Problem(lambda w: w[0] ** 2 / 2 - w[1] ** 2 / 2 + w[1] ** 4 / 4,
                   lambda w: np.array([w[0], -w[1] + w[1] ** 3]), [0.5, 1e-3])


def quadratic(H, b, w0):
    return Problem(lambda w: 0.5 * w @ H @ w + b @ w, lambda w: H @ w + b, w0)


def abs_inverse(H, damping=0.0):
    lam, U = np.linalg.eigh(H)
    return U @ np.diag(1.0 / (np.abs(lam) + damping)) @ U.T


@pytest.fixture
def indefinite(rng):
    """A 6x6 symmetric H with known eigenvalues (two negative), b, w0."""
    lam = np.array([-3.0, -0.5, 0.2, 1.0, 2.0, 7.0])
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    return Q @ np.diag(lam) @ Q.T, rng.standard_normal(6), rng.standard_normal(6)


def test_newton_converges_to_the_saddle_and_saddle_free_newton_to_a_minimum():
    newton = saddle_problem()
    opt = SaddleFreeNewton([newton.p], damping=0.0, krylov_dim=2, curvature="signed", line_search=False)
    for _ in range(30):
        opt.step(newton.closure)
    x, y = newton.w
    assert abs(x) < 1e-8 and abs(y) < 1e-8  # attracted by the saddle at the origin
    sfn = saddle_problem()
    opt = SaddleFreeNewton([sfn.p])  # the defaults (k is clipped to the 2 parameters)
    reached = None
    for i in range(30):
        opt.step(sfn.closure)
        x, y = sfn.w
        if abs(x) < 1e-6 and abs(abs(y) - 1) < 1e-6:
            reached = i + 1
            break
    assert reached is not None, f"saddle-free Newton ended at {sfn.w}"
    assert sfn.f(sfn.w) == pytest.approx(-0.25)
    # the escape along the negative-curvature direction doubles y each step, as the theory says
    first = saddle_problem()
    SaddleFreeNewton([first.p], damping=0.0).step(first.closure)
    assert first.w[1] == pytest.approx(2e-3, rel=1e-3)


def test_one_step_with_k_equal_to_the_dimension_is_minus_abs_h_inverse_g(indefinite):
    H, b, w0 = indefinite
    prob = quadratic(H, b, w0)
    g = H @ w0 + b
    opt = SaddleFreeNewton([prob.p], lr=1.0, damping=0.0, krylov_dim=6, line_search=False)
    opt.step(prob.closure)
    np.testing.assert_allclose(prob.w - w0, -abs_inverse(H) @ g, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.sort(opt.last_step["ritz_values"]), np.sort(np.linalg.eigvalsh(H)), atol=1e-7)
    # closure calls: one gradient + two per Hessian-vector product, no line search
    assert opt.last_step["closure_calls"] == prob.calls == 1 + 2 * 6 and opt.closure_calls == 13
    # damping: |lambda| + damping; Newton (signed): -H^-1 g
    for damping in (0.5, 1e3):
        prob = quadratic(H, b, w0)
        SaddleFreeNewton([prob.p], damping=damping, krylov_dim=6, line_search=False).step(prob.closure)
        np.testing.assert_allclose(prob.w - w0, -abs_inverse(H, damping) @ g, rtol=1e-7, atol=1e-10)
    # large damping: gradient descent with lr 1/damping, to within max|lambda| / damping
    assert np.linalg.norm(prob.w - w0 + g / 1e3) < 0.01 * np.linalg.norm(g / 1e3)
    prob = quadratic(H, b, w0)
    SaddleFreeNewton([prob.p], damping=0.0, krylov_dim=6, line_search=False, curvature="signed").step(prob.closure)
    np.testing.assert_allclose(prob.w, -np.linalg.solve(H, b), rtol=1e-7, atol=1e-9)  # Newton: the critical point


def test_with_k_below_the_dimension_the_step_lies_in_the_krylov_subspace(indefinite):
    H, b, w0 = indefinite
    g = H @ w0 + b
    for k in (1, 2, 4):
        prob = quadratic(H, b, w0)
        opt = SaddleFreeNewton([prob.p], damping=0.1, krylov_dim=k, line_search=False, lr=0.7)
        opt.step(prob.closure)
        d = prob.w - w0
        K = np.stack([np.linalg.matrix_power(H, i) @ g for i in range(k)], axis=1)
        Q, _ = np.linalg.qr(K)
        assert np.linalg.norm(d - Q @ (Q.T @ d)) < 1e-8 * np.linalg.norm(d)
        # the same step from an independent basis of the subspace: the formula, rotation invariant
        lam, U = np.linalg.eigh(Q.T @ H @ Q)
        expected = -0.7 * Q @ U @ ((U.T @ Q.T @ g) / (np.abs(lam) + 0.1))
        np.testing.assert_allclose(d, expected, rtol=1e-6, atol=1e-10)
        assert prob.calls == 1 + 2 * k
        assert opt.last_step["slope"] < 0  # a descent direction


def test_lanczos_from_a_start_vector_returns_its_basis(indefinite, rng):
    H, b, _ = indefinite
    a, bt, V = lanczos(lambda v: H @ v, 6, 4, v0=b, return_basis=True)
    np.testing.assert_allclose(V @ V.T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(V[0], b / np.linalg.norm(b), atol=1e-14)
    np.testing.assert_allclose(V @ H @ V.T, tridiagonal(a, bt), atol=1e-10)
    with pytest.raises(ValueError, match="start vector"):
        lanczos(lambda v: H @ v, 6, 3, v0=np.zeros(6))
    # without v0 the result is the one hessian_spectrum always had (a seeded random start)
    a2, b2 = lanczos(lambda v: H @ v, 6, 6, seed=3)
    np.testing.assert_allclose(np.linalg.eigvalsh(tridiagonal(a2, b2)), np.linalg.eigvalsh(H), atol=1e-10)


def test_line_search_halves_the_step_until_armijo_holds():
    # f = w^4 / 4 from w = 1: the Newton step (to 2/3) is accepted; from a damped point the full step overshoots
    prob = Problem(lambda w: np.sum(w ** 4) / 4, lambda w: w ** 3, [1.0])
    opt = SaddleFreeNewton([prob.p], damping=0.0, krylov_dim=1)
    f0 = opt.step(prob.closure)
    assert f0 == 0.25 and opt.last_step["step_length"] == 1.0 and opt.last_step["trials"] == 1
    np.testing.assert_allclose(prob.w, [2 / 3], rtol=1e-8)
    assert opt.last_step["new_loss"] == pytest.approx((2 / 3) ** 4 / 4)
    # lr = 16 overshoots: steps of length 16 and 8 are rejected, 4 is accepted
    prob = Problem(lambda w: np.sum(w ** 4) / 4, lambda w: w ** 3, [1.0])
    opt = SaddleFreeNewton([prob.p], lr=16.0, damping=0.0, krylov_dim=1)
    opt.step(prob.closure)
    info = opt.last_step
    assert info["trials"] == 3 and info["step_length"] == 4.0 and info["accepted"]
    np.testing.assert_allclose(prob.w, [1 - 4 / 3], rtol=1e-8)
    assert info["new_loss"] <= info["loss"] + 1e-4 * info["step_length"] * info["slope"]
    assert prob.calls == 1 + 2 + 3 == info["closure_calls"]
    # no acceptable length within max_backtracks: the parameters stay where they were
    prob = Problem(lambda w: np.sum(w ** 4) / 4, lambda w: w ** 3, [1.0])
    opt = SaddleFreeNewton([prob.p], lr=16.0, damping=0.0, krylov_dim=1, max_backtracks=1)
    opt.step(prob.closure)
    assert not opt.last_step["accepted"] and opt.last_step["trials"] == 2 and prob.w[0] == 1.0
    # a trial point with a non-finite loss is a rejection, not an error
    prob = Problem(lambda w: np.inf if w[0] < 0.5 else np.sum(w ** 4) / 4, lambda w: w ** 3, [1.0])
    opt = SaddleFreeNewton([prob.p], lr=4.0, damping=0.0, krylov_dim=1)
    opt.step(prob.closure)
    assert opt.last_step["accepted"] and opt.last_step["step_length"] == 1.0
    # at a critical point nothing moves and the step costs one closure call
    prob = Problem(lambda w: np.sum(w ** 2), lambda w: 2 * w, [0.0, 0.0])
    opt = SaddleFreeNewton([prob.p])
    opt.step(prob.closure)
    assert prob.calls == 1 and np.all(prob.w == 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"krylov_dim": 0}, "krylov_dim"), ({"krylov_dim": -3}, "krylov_dim"), ({"krylov_dim": 2.5}, "krylov_dim"),
    ({"damping": -1e-3}, "damping"), ({"damping": float("nan")}, "damping"), ({"lr": 0.0}, "lr"),
    ({"lr": float("inf")}, "lr"), ({"eps": 0.0}, "eps"), ({"max_backtracks": -1}, "max_backtracks"),
    ({"curvature": "abs"}, "curvature"), ({"line_search": "yes"}, "line_search")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SaddleFreeNewton([Parameter(np.zeros(2))], **kwargs)


def test_bad_closures_get_clear_errors_and_change_nothing():
    p = Parameter(np.array([1.0, 2.0]), backend="numpy")
    opt = SaddleFreeNewton([p])
    with pytest.raises(TypeError, match="closure"):
        opt.step()

    def nan_loss():
        p.zero_grad()
        p.grad = np.ones(2)
        return float("nan")

    with pytest.raises(FloatingPointError, match=r"non-finite loss \(nan\).*nothing was changed"):
        opt.step(nan_loss)
    np.testing.assert_array_equal(p.numpy(), [1.0, 2.0])

    def nan_away_from_here():  # finite at the current point, not next to it
        w = p.numpy()
        p.zero_grad()
        p.grad = w if np.all(w == [1.0, 2.0]) else np.full(2, np.nan)
        return float(w @ w)

    with pytest.raises(FloatingPointError, match="Hessian-vector product"):
        opt.step(nan_away_from_here)
    np.testing.assert_array_equal(p.numpy(), [1.0, 2.0])
    with pytest.raises(TypeError, match="number"):
        opt.step(lambda: "a loss")
    with pytest.raises(ValueError, match="param groups"):
        SaddleFreeNewton([{"params": [p]}, {"params": [Parameter(np.zeros(1))], "damping": 1.0}])


# -- networks ----------------------------------------------------------------------------------------------
def _data(rng, n=120, d=6, k=3):
    X = rng.standard_normal((n, d))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return X, y


def _net(dtype=np.float32, backend=None, seed=1):
    lamina.seed(seed)
    model = nn.Sequential(nn.Dense(6, 8), nn.Tanh(), nn.Dense(8, 3))
    model.astype(dtype)
    if backend is not None:
        model.to(backend)
    return model


def _closure(model, X, y):
    from lamina.losses import CrossEntropy

    loss = CrossEntropy()
    be = model._be()
    dtype = model.dtype
    xb = be.asarray(np.ascontiguousarray(X, dtype=dtype))
    t = loss.prepare_target(y, dtype)

    def closure():
        model.zero_grad()
        out = model._forward(xb, True)
        value, grad = loss(out, t, backend=be)
        model.backward(grad)
        return value

    return closure


@pytest.mark.parametrize("dtype, backend", [(np.float64, "numpy"), (np.float32, "numpy"), (np.float32, "native"),
                                            (np.float64, "wrapped"), (np.float32, "wrapped")])
def test_a_small_network_trains_and_counts_its_closure_calls(rng, dtype, backend):
    if backend == "wrapped":
        register()
    X, y = _data(rng)
    model = _net(dtype, backend)
    opt = SaddleFreeNewton(model.parameters(), krylov_dim=8)
    closure = _closure(model, X, y)
    losses = [opt.step(closure) for _ in range(6)]
    final = closure()
    assert final < 0.7 * losses[0] and all(b <= a + 1e-6 for a, b in zip(losses, losses[1:]))
    assert opt.steps == 6 and opt.closure_calls >= 6 * (1 + 2 * 8 + 1)
    assert opt.closure_calls_per_step == opt.closure_calls / 6 and opt.closure_calls_per_step >= 18
    for p in model.parameters():
        assert p.dtype == dtype
        if backend == "wrapped":
            assert isinstance(p.data, Wrapped)


def test_closure_calls_are_the_sum_of_each_steps(rng):
    X, y = _data(rng)
    model = _net(np.float64, "numpy")
    opt = SaddleFreeNewton(model.parameters(), krylov_dim=5)
    closure = _closure(model, X, y)
    counted = [0]

    def counting():
        counted[0] += 1
        return closure()

    per_step = []
    for _ in range(4):
        opt.step(counting)
        per_step.append(opt.last_step["closure_calls"])
        assert per_step[-1] == 1 + 2 * 5 + opt.last_step["trials"]
    assert sum(per_step) == opt.closure_calls == counted[0]


def test_float64_steps_match_the_exact_formula_on_a_network(rng):
    """k = P on a tiny float64 network: the step is -|H|^-1 g with H from diagnostics.exact_hessian."""
    from lamina.diagnostics import exact_hessian

    X, y = _data(rng, n=40)
    lamina.seed(2)
    model = nn.Sequential(nn.Dense(6, 2), nn.Tanh(), nn.Dense(2, 3)).astype(np.float64).to("numpy")
    P = sum(p.size for p in model.parameters())
    w0 = np.concatenate([p.numpy().ravel() for p in model.parameters()])
    H = exact_hessian(model, X, y)
    closure = _closure(model, X, y)
    closure()
    g = np.concatenate([p.grad.ravel() for p in model.parameters()])
    opt = SaddleFreeNewton(model.parameters(), damping=1e-2, krylov_dim=P, line_search=False)
    opt.step(closure)
    w1 = np.concatenate([p.numpy().ravel() for p in model.parameters()])
    np.testing.assert_allclose(w1 - w0, -abs_inverse(H, 1e-2) @ g, rtol=1e-5, atol=1e-8)


def test_frozen_parameters_and_lr_scale(rng):
    X, y = _data(rng)
    model = _net(np.float64, "numpy")
    model[0].freeze()
    frozen = [p.numpy() for p in model[0].parameters()]
    model[2].bias.lr_scale = 0.0
    bias = model[2].bias.numpy()
    opt = SaddleFreeNewton(model.parameters(), krylov_dim=4)
    opt.step(_closure(model, X, y))
    for p, v in zip(model[0].parameters(), frozen):
        np.testing.assert_array_equal(p.numpy(), v)
    np.testing.assert_array_equal(model[2].bias.numpy(), bias)
    assert not np.array_equal(model[2].weight.numpy(), _net(np.float64, "numpy")[2].weight.numpy())


# -- fit and train_step ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["native", "wrapped"])
def test_fit_with_saddle_free_newton(rng, backend):
    if backend == "wrapped":
        register()
    X, y = _data(rng, n=150)
    X = X.astype(np.float32)
    model = _net(np.float32, backend)
    opt = SaddleFreeNewton(model.parameters(), krylov_dim=6)
    hist = model.fit(X, y, epochs=5, batch_size=len(X), optimizer=opt, verbose=0)
    assert opt.steps == 5 and len(hist["loss"]) == 5
    assert hist["loss"][-1] < 0.7 * hist["loss"][0]
    assert all(0 <= a <= 1 for a in hist["accuracy"]) and hist["accuracy"][-1] > hist["accuracy"][0]
    # the logged loss is the one at the weights before each step (as for SGD): the first is the start's
    fresh = _net(np.float32, backend)
    assert hist["loss"][0] == pytest.approx(fresh.evaluate(X, y)[0], rel=1e-5)
    # large minibatches: one step per batch
    opt2 = SaddleFreeNewton(model.parameters(), krylov_dim=3)
    model.fit(X, y, epochs=1, batch_size=50, optimizer=opt2, verbose=0, seed=0)
    assert opt2.steps == 3
    # by name
    model.compile("saddlefreenewton")
    assert isinstance(model.optimizer, SaddleFreeNewton)


def test_fit_with_saddle_free_newton_stops_on_a_non_finite_loss(rng):
    X, y = _data(rng, n=40)
    X = X.astype(np.float32)
    X[25] = np.nan  # in the third batch of 10
    model = _net(np.float32)
    ref = _net(np.float32)
    with pytest.raises(nn.NonFiniteLossError, match=r"epoch 1, batch 3 of 4"):
        model.fit(X, y, epochs=1, batch_size=10, shuffle=False, verbose=0,
                  optimizer=SaddleFreeNewton(model.parameters(), krylov_dim=3))
    # the weights are those before the update that preceded the bad batch: one step of training
    ref.fit(X[:10], y[:10], epochs=1, batch_size=10, shuffle=False, verbose=0,
            optimizer=SaddleFreeNewton(ref.parameters(), krylov_dim=3))
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_train_step_drives_any_closure_optimiser(rng):
    """train_step only needs requires_closure: the closure is evaluated at the current weights
    first, before_update runs after that first call, and (first loss, first output) come back."""
    X, y = _data(rng, n=20)
    model = _net(np.float64, "numpy")
    events = []

    class HalfStep(optim.Optimizer):
        defaults = {"lr": 0.5}
        requires_closure = True

        def step(self, closure):
            events.append(("call",))
            events.append(("loss", closure()))
            for p in self.params():
                p.assign(p.numpy() - self.lr * p.numpy())
            events.append(("call",))
            events.append(("loss", closure()))

    model.compile(HalfStep(model.parameters()), "cross_entropy")
    before = model.predict(X)
    lval, out = model.train_step(X, y, before_update=lambda: events.append(("before",)))
    assert [e[0] for e in events] == ["call", "before", "loss", "call", "loss"]
    assert lval == events[2][1] and lval != events[4][1]
    np.testing.assert_allclose(out, before, rtol=1e-12)  # the output at the weights before the step

    class Lazy(HalfStep):
        def step(self, closure):
            pass

    model.compile(Lazy(model.parameters()), "cross_entropy")
    with pytest.raises(RuntimeError, match="never called the closure"):
        model.train_step(X, y)


def test_checkpoint_keeps_the_optimiser(tmp_path, rng):
    X, y = _data(rng)
    model = _net(np.float32)
    opt = SaddleFreeNewton(model.parameters(), damping=0.05, krylov_dim=7, max_backtracks=4)
    model.fit(X.astype(np.float32), y, epochs=1, batch_size=len(X), optimizer=opt, verbose=0)
    lamina.save(model, tmp_path / "m.lamina", optimizer=opt, epoch=1)
    ckpt = lamina.load_checkpoint(tmp_path / "m.lamina")
    assert isinstance(ckpt.optimizer, SaddleFreeNewton)
    g = ckpt.optimizer.param_groups[0]
    assert (g["damping"], g["krylov_dim"], g["max_backtracks"], g["curvature"]) == (0.05, 7, 4, "absolute")


# -- the experiment ----------------------------------------------------------------------------------------
def test_experiment_fast_mode(tmp_path):
    pytest.importorskip("matplotlib")
    from lamina.experiments import saddle_free

    r = saddle_free.run(fast=True, out=str(tmp_path), verbose=False)
    methods = [row["method"] for row in r]
    assert methods == ["GD", "SGD + momentum 0.9 (batch 100)", "saddle-free Newton", "Newton (signed H)"]
    for row in r:
        assert np.isfinite(row["loss"]) and 0 <= row["index0"] <= 1 and 0 <= row["index"] <= 1
        assert row["passes"] >= r.settings["passes"]
    sfn, newton = r.rows[2], r.rows[3]
    assert sfn["calls"] == pytest.approx(1 + 2 * 20 + 1, abs=1.0) and newton["calls"] == 1 + 2 * 20
    assert r.rows[0]["index0"] > 0.05  # the start is a saddle
    doc = json.loads((tmp_path / "saddle_free.json").read_text())
    assert set(doc["data"]["curves"]) and len(doc["data"]["saddle_index"]) == 4
    for name in ("saddle_free_loss.png", "saddle_free_index.png", "saddle_free_spectra.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
