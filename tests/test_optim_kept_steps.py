"""A step that keeps the previous arrays (step(keep_previous=True), what fit takes) computes
exactly what a plain step does, for every SGD variant (nesterov, weight decay, lr 1) and Adam,
and drop_previous leaves the values in the parameters' own arrays; plus the optimiser base's
own checks (empty list, group names, the backend argument)."""
import numpy as np
import pytest

from lamina import nn, optim

SGD_KW = [dict(lr=1.0), dict(lr=0.1, weight_decay=0.2), dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
          dict(lr=0.1, momentum=0.5)]


def _run(make, keep, rng_seed=3, steps=3):
    rng = np.random.default_rng(rng_seed)
    ps = [nn.Parameter(rng.standard_normal(s).astype(np.float32)) for s in [(3, 4), (4,)]]
    own = [p.data for p in ps]
    opt = make(ps)
    for _ in range(steps):
        for p in ps:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        opt.step(keep_previous=True) if keep else opt.step()
    if keep:
        opt.drop_previous()
        assert all(p.data is a for p, a in zip(ps, own))
    return [p.numpy().copy() for p in ps]


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("kw", SGD_KW, ids=str)
def test_kept_sgd_steps_equal_plain_steps(backend, kw):
    make = lambda ps: optim.SGD(ps, backend=backend, **kw)  # noqa: E731
    for a, b in zip(_run(make, True), _run(make, False)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_kept_adam_steps_equal_plain_steps(cls):
    make = lambda ps: cls(ps, lr=0.1, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.1)  # noqa: E731
    for a, b in zip(_run(make, True), _run(make, False)):
        np.testing.assert_array_equal(a, b)


def test_plain_sgd_with_lr_one_steps():
    p = nn.Parameter(np.ones(3, np.float32))
    p.grad = np.full(3, 0.25, np.float32)
    optim.SGD([p], lr=1.0).step()
    np.testing.assert_array_equal(p.numpy(), np.full(3, 0.75, np.float32))


def test_optimizer_base_checks():
    with pytest.raises(ValueError, match=r"^optimizer got an empty parameter list$"):
        optim.SGD([])
    d = nn.Dense(3, 2)
    opt = optim.SGD([{"params": [d.weight], "name": "weights"}, {"params": [d.bias]}], lr=0.1)
    assert opt.param_groups[0]["name"] == "weights"
    with pytest.raises(ValueError, match=r"^unknown option\(s\) \['betas'\] for SGD$"):
        optim.SGD([{"params": [d.weight], "betas": (0.9, 0.9)}])
    assert optim.SGD(d.parameters(), backend="numpy").backend.name == "numpy"
    assert optim.SGD(d.parameters()).backend is None
