"""lamina's element-wise, row, loss, optimiser and pooling kernels against torch.nn.functional /
torch.optim, where PyTorch happens to be installed (it is never a lamina dependency)."""
import numpy as np
import pytest

from lamina import ops

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _t(a, grad=False):
    return torch.tensor(a, requires_grad=grad)


def _fwd_bwd(fn, x, g):
    xt = _t(x, True)
    y = fn(xt)
    y.backward(_t(g))
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "leaky_relu"])
def test_activations(rng, name):
    x = (rng.standard_normal((37, 29)) * 4).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    tfn = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
           "leaky_relu": lambda t: F.leaky_relu(t, 0.1)}[name]
    ty, tgx = _fwd_bwd(tfn, x, g)
    kw = {"slope": 0.1} if name == "leaky_relu" else {}
    y = getattr(ops, name)(x, **kw)
    gx = getattr(ops, name + "_backward")(g, x if name in ("relu", "leaky_relu") else y, **kw)
    np.testing.assert_allclose(y, ty, rtol=3e-7, atol=1e-7)
    # 1 - y^2 cancels near |y| = 1: a one-ulp difference in y is ~2^-23 |g| there
    np.testing.assert_allclose(gx, tgx, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,axis", [((8, 33), -1), ((8, 33), 0), ((3, 4, 5), 1)])
def test_softmax_log_softmax(rng, shape, axis):
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    np.testing.assert_allclose(ops.softmax(x, axis=axis), F.softmax(_t(x), dim=axis).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ops.log_softmax(x, axis=axis), F.log_softmax(_t(x), dim=axis).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_softmax_cross_entropy(rng):
    logits = (rng.standard_normal((16, 10)) * 3).astype(np.float32)
    labels = rng.integers(0, 10, size=16)
    lt = _t(logits, True)
    tl = F.cross_entropy(lt, torch.tensor(labels))
    tl.backward()
    loss, grad = ops.softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(tl.item(), rel=1e-5)
    np.testing.assert_allclose(grad, lt.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_mse(rng):
    a = rng.standard_normal((12, 5)).astype(np.float32)
    y = rng.standard_normal((12, 5)).astype(np.float32)
    at = _t(a, True)
    tl = F.mse_loss(at, _t(y), reduction="sum") / (2 * a.shape[0])
    tl.backward()
    loss, grad = ops.mse(a, y)
    assert loss == pytest.approx(tl.item(), rel=1e-6)
    np.testing.assert_allclose(grad, at.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_binary_cross_entropy(rng):
    p = rng.uniform(0.01, 0.99, (9, 7)).astype(np.float32)
    t = rng.uniform(0, 1, (9, 7)).astype(np.float32)
    pt = _t(p, True)
    tl = F.binary_cross_entropy(pt, _t(t))
    tl.backward()
    loss, grad = ops.binary_cross_entropy(p, t)
    assert loss == pytest.approx(tl.item(), rel=1e-5)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("momentum,weight_decay,nesterov", [(0.0, 0.0, False), (0.0, 0.01, False),
                                                            (0.9, 0.0, False), (0.9, 0.01, False),
                                                            (0.8, 0.01, True)])
def test_sgd_step_against_torch_optim(rng, momentum, weight_decay, nesterov):
    p0 = rng.standard_normal((7, 13)).astype(np.float32)
    grads = [rng.standard_normal(p0.shape).astype(np.float32) for _ in range(4)]
    tp = torch.nn.Parameter(_t(p0.copy()))
    opt = torch.optim.SGD([tp], lr=0.05, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    p, v = p0.copy(), np.zeros_like(p0)
    for g in grads:
        tp.grad = _t(g)
        opt.step()
        ops.sgd_step(p, g, 0.05, v if momentum else None, momentum=momentum, weight_decay=weight_decay,
                     nesterov=nesterov)
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-6, atol=1e-6)
    if momentum:
        np.testing.assert_allclose(v, opt.state[tp]["momentum_buffer"].numpy(), rtol=1e-6, atol=1e-6)


POOL_CASES = [((2, 3, 24, 24), 2, None, 0), ((2, 3, 7, 9), 3, 2, 1), ((1, 2, 6, 8), (2, 3), (1, 2), (1, 1)),
              ((2, 2, 5, 5), 5, None, 2), ((1, 1, 9, 9), 2, 3, 0)]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool2d(rng, case):
    shape, k, s, p = case
    x = rng.integers(-3, 4, size=shape).astype(np.float32)  # ties: both must pick the same cell
    x.reshape(-1)[::11] = -np.inf
    xt = _t(x, True)
    ty, tidx = F.max_pool2d(xt, k, s, p, return_indices=True)
    g = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(_t(g))
    y, idx = ops.max_pool2d(x, k, s, p)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    np.testing.assert_allclose(ops.max_pool2d_backward(g, idx, x.shape), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_avg_pool2d(rng, case):
    shape, k, s, p = case
    x = rng.standard_normal(shape).astype(np.float32)
    xt = _t(x, True)
    ty = F.avg_pool2d(xt, k, s, p)  # count_include_pad=True by default
    g = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(_t(g))
    np.testing.assert_allclose(ops.avg_pool2d(x, k, s, p), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.avg_pool2d_backward(g, x.shape, k, s, p), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_dropout_scaling_matches_torch_convention(rng):
    # masks differ (different generators); the kept units are scaled by 1 / (1 - p) in both
    x = rng.standard_normal(10_000).astype(np.float32)
    y, mask = ops.dropout(x, 0.3, 5)
    ty = F.dropout(_t(x), 0.3, training=True).numpy()
    kept = ty != 0
    np.testing.assert_allclose(ty[kept], x[kept] / np.float32(0.7), rtol=1e-6)
    np.testing.assert_allclose(y[mask == 1], x[mask == 1] / np.float32(0.7), rtol=1e-6)
