"""The per-step caches of Sequential (parameters, first trainable layer) and the optimisers'
lean paths follow every change: replaced parameters and layers, frozen layers, and fit's last
update ending in the parameters' own arrays without copies."""
import numpy as np

from lamina import nn, optim
from lamina.nn.parameter import Parameter


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Dense(12, 8), nn.ReLU(), nn.Dense(8, 3))


def _ids(ps):
    return [id(p) for p in ps]


def test_parameters_follow_replaced_parameters_and_layers():
    m = _mlp()
    assert _ids(m.parameters()) == _ids(p for _, p in m.named_parameters())
    m.layers[3].bias = Parameter(np.zeros(3, np.float32), "bias")
    assert _ids(m.parameters()) == _ids(p for _, p in m.named_parameters())
    m.layers[3].bias = None
    assert len(m.parameters()) == 3
    m.layers[1] = nn.Dense(12, 8)
    assert _ids(m.parameters()) == _ids(p for _, p in m.named_parameters())
    m.add(nn.Dense(3, 2))
    assert _ids(m.parameters()) == _ids(p for _, p in m.named_parameters())
    shared = m.layers[1]
    m.layers.insert(2, shared)  # a shared layer counts once
    assert _ids(m.parameters()) == _ids(p for _, p in m.named_parameters())
    lst = m.parameters()
    lst.clear()  # a new list each call
    assert m.parameters()


def test_zero_grad_and_first_trainable_follow_changes():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 12)).astype(np.float32), rng.integers(0, 3, 8)
    m = _mlp()
    m.compile(optim.SGD(m.parameters(), lr=0.1, momentum=0.9), "cross_entropy")
    m.train_step(X, y)
    assert m._first_trainable() == 1
    m.layers[1].freeze()
    assert m._first_trainable() == 3
    w = m.layers[1].weight.numpy()
    m.train_step(X, y)
    np.testing.assert_array_equal(m.layers[1].weight.numpy(), w)
    m.layers[1].unfreeze()
    assert m._first_trainable() == 1
    new = Parameter(np.ones((3, 8), np.float32), "weight")
    m.layers[3].weight = new
    m.zero_grad()
    assert new.grad_is_zero


def test_fit_settles_without_copies_and_matches_plain_steps():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((40, 12)).astype(np.float32), rng.integers(0, 3, 40)
    for make in (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9), lambda ps: optim.SGD(ps, lr=0.05),
                 lambda ps: optim.Adam(ps, lr=1e-2)):
        for steps in (3, 4):
            a, b = _mlp(), _mlp()
            for p, q in zip(a.parameters(), b.parameters()):
                q.assign(p.data)
            arrays = [p.data for p in a.parameters()]
            oa, ob = make(a.parameters()), make(b.parameters())
            a.fit(X[: 8 * steps], y[: 8 * steps], epochs=2, batch_size=8, optimizer=oa, shuffle=False, verbose=0)
            assert all(p.data is arr for p, arr in zip(a.parameters(), arrays))
            assert not oa._spares and not oa._home and not oa._settle
            b.compile(ob, "cross_entropy")
            for _ in range(2):
                for lo in range(0, 8 * steps, 8):
                    b.train_step(X[lo:lo + 8], y[lo:lo + 8])
            for p, q in zip(a.parameters(), b.parameters()):
                np.testing.assert_array_equal(p.numpy(), q.numpy())
            for p, q in zip(a.parameters(), b.parameters()):
                for k, v in oa.state.get(p, {}).items():
                    np.testing.assert_array_equal(np.asarray(v), np.asarray(ob.state[q][k]))
            # kept steps after fit are undoable again (the settle flag does not linger)
            oa.step(keep_previous=True)
            before = [p.numpy() for p in a.parameters()]
            a.layers[3].weight.grad = np.ones((3, 8), np.float32)
            oa.step(keep_previous=True)
            oa.undo()
            for p, v in zip(a.parameters(), before):
                np.testing.assert_array_equal(p.numpy(), v)
            oa.drop_previous()
