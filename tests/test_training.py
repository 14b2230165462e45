"""Sequential.fit / evaluate / predict: history, callbacks, progress output, the non-finite
loss guard, LeNet-5 on the bundled MNIST split, an RNN on a sequence task."""
import numpy as np
import pytest
from nn_helpers import clone, params_of

import lamina
from lamina import datasets, losses, models, nn, optim


@pytest.fixture(autouse=True)
def _seeded():
    lamina.seed(2024)


def blobs(rng, n=120, k=3, d=4):
    centers = rng.standard_normal((k, d)) * 4
    y = rng.integers(0, k, n)
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


def test_fit_history_evaluate_predict(rng):
    X, y = blobs(rng)
    model = nn.Sequential(nn.Dense(4, 16), nn.ReLU(), nn.Dense(16, 3))
    hist = model.fit(X, y, epochs=4, batch_size=16, optimizer=optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                     validation_data=(X[:30], y[:30]), seed=0, verbose=0)
    assert hist.epochs == [1, 2, 3, 4] and hist.history is hist
    for key in ("loss", "accuracy", "time", "images_per_s", "lr", "val_loss", "val_accuracy"):
        assert len(hist[key]) == 4, key
    assert hist["loss"][-1] < hist["loss"][0] and hist["accuracy"][-1] > 0.9
    loss, acc = model.evaluate(X, y)
    assert acc > 0.9 and loss < 0.5
    out = model.predict(X, batch_size=7)
    assert out.shape == (120, 3)
    np.testing.assert_allclose(out, model.forward(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.predict(X[:1]).argmax(1), model.forward(X[:1]).argmax(1))


def test_fit_accepts_names_and_regression_losses(rng):
    X = rng.standard_normal((64, 3)).astype(np.float32)
    t = (X @ np.array([[1.0], [-2.0], [0.5]], np.float32))
    model = nn.Sequential(nn.Dense(3, 1))
    hist = model.fit(X, t, epochs=40, batch_size=16, optimizer=optim.get("adam", model.parameters(), lr=0.05),
                     loss="mse", verbose=0)
    assert hist["loss"][-1] < 0.01 * hist["loss"][0] and hist["accuracy"][-1] is None
    assert isinstance(model.optimizer, optim.Adam)
    model.fit(X, t, epochs=1, optimizer="sgd", loss=losses.MSE(), verbose=0)
    assert isinstance(model.optimizer, optim.SGD) and model.optimizer.lr == 0.01


def test_shuffle_seed_reproducible_and_no_shuffle(rng):
    X, y = blobs(rng)
    a = nn.Sequential(nn.Dense(4, 8), nn.Tanh(), nn.Dense(8, 3))
    b, c = clone(a), clone(a)
    for m in (a, b):
        m.fit(X, y, epochs=2, batch_size=10, optimizer=optim.SGD(m.parameters(), lr=0.1), seed=5, verbose=0)
    for p, q in zip(params_of(a), params_of(b)):
        np.testing.assert_array_equal(p, q)
    # shuffle=False visits the batches in order: compare with an explicit loop.
    opt = optim.SGD(c.parameters(), lr=0.1)
    d = clone(c)
    c.fit(X, y, epochs=1, batch_size=50, optimizer=opt, shuffle=False, verbose=0)
    opt_d = optim.SGD(d.parameters(), lr=0.1)
    for lo in range(0, 120, 50):
        out = d.forward(X[lo:lo + 50], training=True)
        _, g = losses.CrossEntropy()(out, y[lo:lo + 50])
        d.zero_grad()
        d.backward(g)
        opt_d.step()
    for p, q in zip(params_of(c), params_of(d)):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)


def test_callbacks_and_stop_training(rng):
    X, y = blobs(rng)
    model = nn.Sequential(nn.Dense(4, 3))
    opt = optim.SGD(model.parameters(), lr=0.1)
    seen = []

    class Stopper:
        def set_model(self, m):
            self.model = m

        def on_batch_end(self, batch, logs):
            seen.append(("batch", batch))

        def on_epoch_end(self, epoch, logs):
            seen.append(("epoch", epoch, round(logs["lr"], 6)))
            if epoch == 1:
                self.model.stop_training = True

    calls = []
    hist = model.fit(X, y, epochs=5, batch_size=60, optimizer=opt, verbose=0,
                     callbacks=[optim.StepLR(opt, 1, 0.5), Stopper(), lambda e, logs: calls.append(e)])
    assert len(hist["loss"]) == 2 and calls == [0, 1]
    assert seen == [("batch", 0), ("batch", 1), ("epoch", 0, 0.1), ("batch", 0), ("batch", 1), ("epoch", 1, 0.05)]


def test_progress_output(rng, capsys):
    X, y = blobs(rng, n=20)
    model = nn.Sequential(nn.Dense(4, 3))
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(X, y, epochs=2, batch_size=8, verbose=1)  # not a terminal: one line per epoch, no bar
    out, err = capsys.readouterr()
    assert out.count("epoch ") == 2 and "loss" in out and "img/s" in out and err == ""


def test_progress_bar_on_a_terminal(rng, monkeypatch, capsys):
    from lamina import training
    monkeypatch.setattr(training, "_isatty", lambda stream: True)
    X, y = blobs(rng, n=20)
    nn.Sequential(nn.Dense(4, 3)).fit(X, y, epochs=1, batch_size=8, verbose=1)
    out, err = capsys.readouterr()
    assert "epoch 1/1" in err and "3/3" in err and out == ""


def test_non_finite_loss_stops_and_keeps_last_good_weights(rng):
    X, y = blobs(rng, n=40)
    X[25] = np.nan  # in the third batch of 10
    model = nn.Sequential(nn.Dense(4, 8), nn.ReLU(), nn.Dense(8, 3))
    ref = clone(model)
    with pytest.raises(nn.NonFiniteLossError, match=r"epoch 1, batch 3 of 4") as info:
        model.fit(X, y, epochs=2, batch_size=10, shuffle=False, verbose=0,
                  optimizer=optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    assert info.value.epoch == 1 and info.value.batch == 3 and np.isnan(info.value.loss)
    # The weights are those before the update that preceded the bad batch: one step of training.
    ref.fit(X[:10], y[:10], epochs=1, batch_size=10, shuffle=False, verbose=0,
            optimizer=optim.SGD(ref.parameters(), lr=0.1, momentum=0.9))
    for p, q in zip(params_of(model), params_of(ref)):
        np.testing.assert_array_equal(p, q)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_leaves_finite_weights(rng):
    X, y = blobs(rng, n=64)
    X *= 10
    model = nn.Sequential(nn.Dense(4, 3))  # linear + MSE: the gradient grows with the weights
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        model.fit(X, np.eye(3, dtype=np.float32)[y], epochs=200, batch_size=8, loss="mse",
                  optimizer=optim.SGD(model.parameters(), lr=1.0, momentum=0.9), seed=0, verbose=0)
    assert all(np.isfinite(p).all() for p in params_of(model))


def test_fit_input_validation(rng):
    model = nn.Sequential(nn.Dense(4, 3))
    X, y = blobs(rng, n=10)
    with pytest.raises(ValueError, match="samples"):
        model.fit(X, y[:5], verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(X, y, batch_size=0, verbose=0)


def test_rnn_learns_majority_of_a_sequence(rng):
    # Sequences of 7 values in {-1, +1}: is the sum positive? Chance is 50%.
    n, T = 1200, 7
    X = rng.choice([-1.0, 1.0], size=(n, T, 1)).astype(np.float32)
    X += rng.normal(0, 0.1, X.shape).astype(np.float32)
    y = (X.sum(axis=(1, 2)) > 0).astype(np.int64)
    model = nn.Sequential(nn.RNN(1, 16), nn.Dense(16, 2))
    model.fit(X[:1000], y[:1000], epochs=15, batch_size=32, optimizer=optim.Adam(model.parameters(), lr=0.01),
              seed=0, verbose=0)
    _, acc = model.evaluate(X[1000:], y[1000:])
    assert acc > 0.85, acc


@pytest.mark.slow
def test_lenet5_reaches_97_percent_on_bundled_split():
    """LeNet-5, SGD momentum 0.9, lr 0.05 with a cosine schedule, batch 64, 5 epochs on the
    first 8,000 bundled images; tested on the last 2,000 (the only long test of the suite)."""
    X, y = datasets.load_mnist()
    Xtr, Xte, ytr, yte = datasets.train_test_split(X, y, test_size=2000, shuffle=False)
    lamina.seed(0)
    model = models.lenet5()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.fit(Xtr, ytr, epochs=5, batch_size=64, optimizer=opt, callbacks=[optim.CosineLR(opt, 5)], seed=0, verbose=0)
    _, acc = model.evaluate(Xte, yte)
    assert acc >= 0.97, acc
