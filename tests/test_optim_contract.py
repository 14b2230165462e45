"""The optimisers against their formulas and their documented checks, without PyTorch: Adam and
AdamW with every hyperparameter away from its default, the bounds of betas, state_dict and
load_state_dict (explicit parameter lists, index bounds, dtypes, tuples, messages), and the
argument checks of SaddleFreeNewton."""
import numpy as np
import pytest

from lamina import init, nn, optim


def _adam_reference(w, grads, lr, b1, b2, eps, wd, decoupled):
    """PyTorch's Adam / AdamW in float64."""
    w = w.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if decoupled:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        w = w - lr * mhat / (np.sqrt(vhat) + eps)
    return w


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_adam_uses_every_hyperparameter(rng, backend, cls):
    w0 = rng.standard_normal((3, 5)).astype(np.float32)
    grads = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(4)]
    kw = dict(lr=0.05, betas=(0.7, 0.95), eps=0.3, weight_decay=0.2)
    p = nn.Parameter(w0.copy())
    opt = cls([p], backend=backend, **kw)
    for g in grads:
        p.grad = g
        opt.step()
    want = _adam_reference(w0, grads, 0.05, 0.7, 0.95, 0.3, 0.2, decoupled=cls is optim.AdamW)
    np.testing.assert_allclose(p.numpy(), want, rtol=2e-5, atol=2e-6)


def test_adam_defaults_and_backend():
    opt = optim.Adam(nn.Dense(3, 2).parameters())
    g = opt.param_groups[0]
    assert (g["lr"], g["betas"], g["eps"], g["weight_decay"]) == (1e-3, (0.9, 0.999), 1e-8, 0.0)
    assert opt.backend is None
    assert optim.Adam(nn.Dense(3, 2).parameters(), backend="numpy").backend.name == "numpy"


@pytest.mark.parametrize("kw", [dict(eps=-1e-8), dict(weight_decay=-0.1)])
def test_adam_negative_eps_or_weight_decay_is_rejected(kw):
    with pytest.raises(ValueError, match=r"^eps and weight_decay must be >= 0$"):
        optim.Adam(nn.Dense(3, 2).parameters(), **kw)


def test_adam_betas_of_zero_are_allowed_and_one_is_not():
    ps = nn.Dense(3, 2).parameters()
    optim.Adam(ps, betas=(0.0, 0.0))
    for betas in [(1.0, 0.9), (0.9, 1.0), (-0.1, 0.9)]:
        with pytest.raises(ValueError, match=r"^betas must be in \[0, 1\)"):
            optim.Adam(ps, betas=betas)


def _stepped_sgd(rng, momentum=0.9):
    ps = [nn.Parameter(rng.standard_normal(s).astype(np.float32), f"p{i}") for i, s in enumerate([(2, 3), (3,)])]
    opt = optim.SGD(ps, lr=0.1, momentum=momentum)
    for p in ps:
        p.grad = np.ones(p.shape, np.float32)
    opt.step()
    return ps, opt


def test_state_dict_indexes_the_parameters_given(rng):
    ps, opt = _stepped_sgd(rng)
    sd = opt.state_dict(params=[ps[1], ps[0]])
    assert sd["param_groups"][0]["params"] == [1, 0]
    assert sd["state"][0]["velocity"].shape == (3,) and sd["state"][1]["velocity"].shape == (2, 3)
    with pytest.raises(ValueError, match=r"^the optimiser holds parameters that are not in the model$"):
        opt.state_dict(params=[ps[0]])


def test_load_state_dict_maps_indices_to_the_parameters_given(rng):
    ps, opt = _stepped_sgd(rng)
    sd = opt.state_dict(params=[ps[1], ps[0]])
    fresh = optim.SGD(ps, lr=0.1, momentum=0.9)
    fresh.load_state_dict(sd, params=[ps[1], ps[0]])
    for p in ps:
        np.testing.assert_array_equal(fresh.state[p]["velocity"], opt.state[p]["velocity"])


def test_load_state_dict_bad_states_are_named(rng):
    ps, opt = _stepped_sgd(rng)
    sd = opt.state_dict()
    fresh = optim.SGD(ps, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"^state is for Adam, not SGD$"):
        fresh.load_state_dict({**sd, "type": "Adam"})
    with pytest.raises(ValueError, match=r"^optimizer state has a different number of param groups$"):
        fresh.load_state_dict({**sd, "param_groups": sd["param_groups"] * 2})
    with pytest.raises(ValueError, match=r"^optimizer state names parameter 2, but there are 2$"):
        fresh.load_state_dict({**sd, "state": {2: sd["state"][0]}})
    untyped = {k: v for k, v in sd.items() if k != "type"}
    fresh.load_state_dict(untyped)  # a state without a type is taken as this optimiser's
    np.testing.assert_array_equal(fresh.state[ps[0]]["velocity"], opt.state[ps[0]]["velocity"])


def test_load_state_dict_converts_arrays_and_tuples(rng):
    p = nn.Parameter(np.ones(3, np.float32))
    p.grad = np.ones(3, np.float32)
    opt = optim.Adam([p], lr=0.1)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0] = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v) for k, v in sd["state"][0].items()}
    sd["param_groups"][0]["betas"] = [0.5, 0.6]  # as JSON would give it back
    fresh = optim.Adam([p])
    fresh.load_state_dict(sd)
    assert fresh.state[p]["m"].dtype == np.float32 and fresh.state[p]["v"].dtype == np.float32
    assert fresh.param_groups[0]["betas"] == (0.5, 0.6)


@pytest.mark.parametrize("kw,match", [
    (dict(lr=True), r"^lr must be a finite number > 0, got True$"),
    (dict(lr=0.0), r"^lr must be a finite number > 0, got 0\.0$"),
    (dict(damping=True), r"^damping must be a finite number >= 0, got True$"),
    (dict(damping=-1.0), r"^damping must be a finite number >= 0, got -1\.0$"),
    (dict(krylov_dim=0), r"^krylov_dim must be an integer >= 1, got 0$"),
    (dict(eps=True), r"^eps must be None or a finite number > 0, got True$"),
    (dict(eps=0.0), r"^eps must be None or a finite number > 0, got 0\.0$"),
    (dict(max_backtracks=True), r"^max_backtracks must be an integer >= 0, got True$"),
    (dict(max_backtracks=-1), r"^max_backtracks must be an integer >= 0, got -1$"),
    (dict(curvature="signed?"), r"^curvature must be one of"),
    (dict(line_search=1), r"^line_search must be True or False, got 1$"),
])
def test_saddle_free_newton_names_a_bad_argument(kw, match):
    with pytest.raises(ValueError, match=match):
        optim.SaddleFreeNewton(nn.Dense(3, 2).parameters(), **kw)


def test_saddle_free_newton_accepted_edges():
    ps = nn.Dense(3, 2).parameters()
    opt = optim.SaddleFreeNewton(ps, eps=1.5, max_backtracks=0, damping=0.0)
    assert opt.last_step is None and opt.closure_calls_per_step is None
    optim.SaddleFreeNewton(ps, eps=0.5)
    before = [p.numpy().copy() for p in ps]
    opt.undo()  # nothing kept yet: nothing to do
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p.numpy(), b)


def test_saddle_free_newton_groups_must_share_their_options():
    d = nn.Dense(3, 2)
    optim.SaddleFreeNewton([{"params": [d.weight]}, {"params": [d.bias]}])
    with pytest.raises(ValueError, match=r"^SaddleFreeNewton steps all its parameters as one vector: "
                                         r"its param groups must share their options$"):
        optim.SaddleFreeNewton([{"params": [d.weight]}, {"params": [d.bias], "damping": 0.1}])


def test_init_orthogonal_and_lsuv_follow_their_generator(rng):
    a = init.orthogonal((6, 4), rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, init.orthogonal((6, 4), rng=np.random.default_rng(3)))
    assert a.dtype == np.float32
    np.testing.assert_allclose(a.T @ a, np.eye(4), atol=1e-5)

    def lsuv_weights(seed):
        model = nn.Sequential(nn.Dense(8, 6), nn.ReLU(), nn.Dense(6, 3))
        init.lsuv(model, np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32), rng=seed)
        return [p.numpy() for p in model.parameters()]

    for x, y in zip(lsuv_weights(5), lsuv_weights(5)):
        np.testing.assert_array_equal(x, y)


def test_prepare_target_makes_the_dtype_asked():
    from lamina import losses
    y = losses.MSE().prepare_target(np.array([[1, 2]], np.int64), np.float32)
    assert y.dtype == np.float32 and y.flags.c_contiguous


@pytest.mark.parametrize("kw", [dict(lr=0.5), dict(lr=0.5, momentum=0.9)])
def test_a_step_after_zero_grad_uses_a_zero_gradient(kw):
    p = nn.Parameter(np.ones(3, np.float32))
    opt = optim.SGD([p], **kw)
    p.grad = np.full(3, 2.0, np.float32)
    opt.zero_grad()
    opt.step()
    np.testing.assert_array_equal(p.numpy(), np.ones(3, np.float32))
