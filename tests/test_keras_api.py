"""The Keras-style training API keeps its word: compile's settings stick, a second fit continues
the same optimiser, history keys and evaluate's results are Keras's, and every name a user may
pass is listed in the error for an unknown one."""
import numpy as np
import pytest

import lamina
from lamina import init, losses, nn, optim


def _data(n=64, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5).astype(np.int64)  # 3 learnable classes
    return X, y


def _model(seed=0, classes=3):
    lamina.seed(seed)
    return nn.Sequential(nn.Dense(4, 16), nn.ReLU(), nn.Dense(16, classes))


def _weights(model):
    return [np.array(p.data) for p in model.parameters()]


def _assert_same_weights(a, b):
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(wa, wb)


def _assert_different_weights(a, b):
    assert any(not np.array_equal(wa, wb) for wa, wb in zip(_weights(a), _weights(b)))


FIT = dict(batch_size=16, shuffle=False, verbose=0)


def test_fit_uses_the_compiled_optimizer():
    X, y = _data()
    a, b, c = _model(), _model(), _model()
    opt = optim.Adam(a.parameters(), lr=0.01)
    a.compile(optimizer=opt, loss="cross_entropy")
    a.fit(X, y, epochs=2, **FIT)
    b.fit(X, y, epochs=2, optimizer=optim.Adam(b.parameters(), lr=0.01), **FIT)
    c.fit(X, y, epochs=2, **FIT)  # the defaults: SGD(lr=0.01)
    assert a.optimizer is opt and opt.state  # Adam's moments exist: it took the steps
    _assert_same_weights(a, b)
    _assert_different_weights(a, c)


def test_fit_and_evaluate_use_the_compiled_loss():
    X, y = _data()
    Y = np.eye(3, dtype=np.float32)[y]  # MSE against one-hot rows: cross-entropy would refuse them
    model = _model()
    model.compile(optimizer=optim.SGD(model.parameters(), lr=0.05), loss="mse")
    hist = model.fit(X, Y, epochs=3, **FIT)
    assert isinstance(model.loss, losses.MSE)
    lval, acc = model.evaluate(X, Y)
    expected, _ = losses.MSE()(model.predict(X), Y)
    assert lval == pytest.approx(expected, rel=1e-6)
    assert acc == pytest.approx(np.mean(model.predict(X).argmax(1) == y))
    assert hist["loss"][-1] < hist["loss"][0]


def test_evaluate_with_a_loss_for_one_call_keeps_the_compiled_one():
    X, y = _data()
    model = _model().compile("sgd", "bce")
    model.evaluate(X, np.eye(3, dtype=np.float32)[y], loss="mse")
    assert isinstance(model.loss, losses.BinaryCrossEntropy)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
    lambda ps: optim.Adam(ps, lr=0.01),
], ids=["sgd_momentum", "adam"])
def test_a_second_fit_continues_the_optimizer(make):
    X, y = _data()
    a, b = _model(), _model()
    a.compile(make(a.parameters()))
    b.compile(make(b.parameters()))
    sched_a, sched_b = optim.StepLR(a.optimizer, 1, gamma=0.5), optim.StepLR(b.optimizer, 1, gamma=0.5)
    a.fit(X, y, epochs=1, callbacks=[sched_a], **FIT)
    a.fit(X, y, epochs=1, callbacks=[sched_a], **FIT)
    b.fit(X, y, epochs=2, callbacks=[sched_b], **FIT)
    _assert_same_weights(a, b)
    assert a.optimizer.lr == b.optimizer.lr == pytest.approx(make(a.parameters()).lr * 0.25)


def test_defaults_are_compiled_once():
    X, y = _data()
    model = _model()
    model.fit(X, y, epochs=1, **FIT)
    first = model.optimizer
    assert isinstance(first, optim.SGD) and first.lr == 0.01 and isinstance(model.loss, losses.CrossEntropy)
    model.fit(X, y, epochs=1, **FIT)
    assert model.optimizer is first
    model.train_step(X[:16], y[:16])
    assert model.optimizer is first


def test_an_optimizer_given_to_fit_replaces_the_compiled_one():
    X, y = _data()
    model = _model().compile("adam", "cross_entropy")
    compiled_loss = model.loss
    sgd = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.fit(X, y, epochs=1, optimizer=sgd, **FIT)
    assert model.optimizer is sgd and model.loss is compiled_loss
    model.fit(X, y, epochs=1, **FIT)
    assert model.optimizer is sgd
    with pytest.raises(ValueError, match="one-hot"):
        model.fit(X, np.eye(3, dtype=np.float32)[y], epochs=1, **FIT)  # still cross-entropy
    model.fit(X, np.eye(3, dtype=np.float32)[y], epochs=1, loss="mse", **FIT)
    assert model.optimizer is sgd and isinstance(model.loss, losses.MSE)


def test_train_step_uses_the_compiled_optimizer():
    X, y = _data()
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    model.compile(opt)
    model.train_step(X[:16], y[:16])
    model.train_step(X[16:32], y[16:32])
    assert {st["step"] for st in opt.state.values()} == {2}


def test_history_has_kerass_keys():
    X, y = _data()
    hist = _model().fit(X, y, epochs=3, validation_data=(X[:8], y[:8]), **FIT)
    assert hist.history is hist
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(hist.history[key]) == 3 and all(isinstance(v, float) for v in hist.history[key])
    assert hist.epochs == [1, 2, 3]


def test_validation_split_holds_out_the_last_samples():
    X, y = _data()
    a, b = _model(), _model()
    ha = a.fit(X, y, epochs=2, validation_split=0.25, **FIT)
    hb = b.fit(X[:48], y[:48], epochs=2, validation_data=(X[48:], y[48:]), **FIT)
    assert ha["val_loss"] == hb["val_loss"] and ha["loss"] == hb["loss"]
    _assert_same_weights(a, b)
    with pytest.raises(ValueError, match="validation_split"):
        a.fit(X, y, validation_split=1.0, **FIT)
    with pytest.raises(ValueError, match="not both"):
        a.fit(X, y, validation_split=0.5, validation_data=(X, y), **FIT)


def test_verbose_takes_kerass_auto_and_nothing_else(capsys):
    X, y = _data()
    _model().fit(X, y, epochs=2, batch_size=16, verbose="auto")  # stderr is no terminal here: a line per epoch
    assert capsys.readouterr().out.count("epoch ") == 2
    with pytest.raises(ValueError, match="verbose"):
        _model().fit(X, y, verbose="loud")


def test_fit_takes_its_options_by_name():
    # Keras's third positional argument is batch_size, lamina's was epochs: neither is guessed.
    X, y = _data()
    with pytest.raises(TypeError):
        _model().fit(X, y, 16, 1)


@pytest.mark.parametrize("call, listed", [
    (lambda: _model().compile(optimizer="rmsprop"), ["adam", "adamw", "sgd"]),
    (lambda: _model().compile(loss="hinge"), ["bce", "cross_entropy", "mse", "sparse_categorical_crossentropy"]),
    (lambda: _model().compile(metrics=["auc"]), ["accuracy"]),
    (lambda: _model().fit(*_data(), optimizer="rmsprop", verbose=0), ["adam", "sgd"]),
    (lambda: nn.Dense(2, 2, init="glorot_uniform"), ["he", "lecun", "orthogonal", "random_walk", "xavier"]),
    (lambda: init.get("kaiming_normal"), ["he", "kaiming"]),
    (lambda: nn.RNN(2, 3, nonlinearity="sigmoid"), ["tanh", "relu"]),
    (lambda: init.random_walk_gain(10, "sigmoid"), ["relu", "tanh", "linear"]),
    (lambda: _model().to("tpu"), ["native", "numpy"]),
], ids=["optimizer", "loss", "metric", "fit_optimizer", "initialiser", "init_get", "rnn_nonlinearity",
        "random_walk_nonlinearity", "backend"])
def test_unknown_names_list_the_known_ones(call, listed):
    with pytest.raises(ValueError) as info:
        call()
    for name in listed:
        assert repr(name) in str(info.value), (name, str(info.value))


def test_kerass_loss_names_and_metrics():
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(model.loss, losses.CrossEntropy)
    assert isinstance(losses.get("mean_squared_error"), losses.MSE)
    assert isinstance(losses.get("binary_crossentropy"), losses.BinaryCrossEntropy)


def test_a_keras_users_script(tmp_path):
    """compile, fit twice, evaluate, validation data, summary, save and load."""
    X, y = _data(n=256)
    Xv, yv = _data(n=64, seed=1)
    model = _model()
    model.compile(optimizer=optim.Adam(model.parameters(), lr=0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    h1 = model.fit(X, y, epochs=2, batch_size=32, validation_data=(Xv, yv), verbose=0, seed=0)
    h2 = model.fit(X, y, epochs=2, batch_size=32, validation_data=(Xv, yv), verbose=0, seed=1)
    assert h2["loss"][-1] < h1["loss"][0]
    loss, acc = model.evaluate(Xv, yv)
    assert loss == pytest.approx(h2["val_loss"][-1]) and acc == pytest.approx(h2["val_accuracy"][-1])
    assert acc > 0.8
    text = model.summary(print_fn=None)
    assert "Total params: 131" in text  # 4*16 + 16 + 16*3 + 3
    lamina.save(model, tmp_path / "m.safetensors")
    again = lamina.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(again.predict(Xv), model.predict(Xv))
    assert again.evaluate(Xv, yv) == (loss, acc)
