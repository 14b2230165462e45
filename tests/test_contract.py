"""The backend contract, exercised by a backend defined outside lamina (tests/wrapped_backend.py):
its arrays are not ndarrays, have no arithmetic and refuse implicit conversion, so any place
where the model layer, a loss, an optimiser, fit or a workflow touches a backend array with
NumPy or Python operators fails here."""
import inspect
import threading

import numpy as np
import pytest
import wrapped_backend
from wrapped_backend import Wrapped

import lamina
from lamina import backend, diagnostics, losses, nn, optim, reference
from lamina.models import mlp


@pytest.fixture(scope="module")
def wrapped():
    return wrapped_backend.register()


def _lenet_tanh_dropout():
    return nn.Sequential(
        nn.Conv2D(1, 6, 5, padding=2), nn.Tanh(), nn.MaxPool2D(2),
        nn.Conv2D(6, 16, 5), nn.ReLU(), nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dense(400, 120), nn.ReLU(), nn.Dropout(0.3, seed=3),
        nn.Dense(120, 84), nn.Tanh(),
        nn.Dense(84, 10),
    )


def _rnn():
    return nn.Sequential(nn.RNN(7, 9, return_sequences=True), nn.RNN(9, 8, nonlinearity="relu"),
                         nn.Dense(8, 10))


MODELS = {
    "lenet5": (_lenet_tanh_dropout, (1, 28, 28)),
    "mlp": (lambda: mlp(784, (32, 16)), (1, 28, 28)),
    "rnn": (_rnn, (5, 7)),
}


def _data(shape, n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + shape).astype(np.float32), rng.integers(0, 10, n)


def _weights(model):
    return [p.numpy() for p in model.parameters()]


# -- the contract itself --------------------------------------------------------------------
def test_the_wrapped_arrays_refuse_numpy():
    a = Wrapped(np.ones(3, np.float32))
    with pytest.raises(TypeError):
        np.asarray(a)
    with pytest.raises(TypeError):
        a * 2
    with pytest.raises(TypeError):
        np.sum(a)
    with pytest.raises(TypeError):
        a[np.array([0, 1])]  # fancy indexing is not basic slicing


def test_register_a_duck_typed_backend(wrapped):
    assert not isinstance(wrapped, backend.Backend)
    assert "wrapped" in backend.available() and backend.get_backend("wrapped") is wrapped
    assert backend.backend_of(wrapped.zeros((2,), np.float32)) is wrapped
    with pytest.raises(ValueError, match="already registered"):
        backend.register_backend(wrapped_backend.WrappedBackend("wrapped"))

    class Half:
        name, device, dtypes = "half", "cpu", (np.float32,)
        empty = zeros = asarray = to_numpy = staticmethod(lambda *a, **k: None)
    with pytest.raises(TypeError, match="lacks .*matmul"):
        backend.register_backend(Half())
    with pytest.raises(ValueError, match="unknown backend 'cuda9'"):
        backend.get_backend("cuda9")


def test_every_backend_has_every_kernel_with_the_reference_signature(wrapped):
    for name in backend.available():
        be = backend.get_backend(name)
        for attr in backend.ATTRIBUTES + backend.ARRAY_FUNCTIONS:
            assert hasattr(be, attr), (name, attr)
        for k in backend.KERNELS:
            assert callable(getattr(be, k)), (name, k)
            if name != "native":  # native: compared from pybind11's own metadata in test_signatures.py
                assert inspect.signature(getattr(be, k)) == inspect.signature(getattr(reference, k)), (name, k)
    assert backend.get_backend("native").device == "cpu"


def test_parameters_move_and_come_back(wrapped):
    layer = nn.Dense(3, 2)
    w0 = layer.weight.numpy()
    layer.to("wrapped")
    assert isinstance(layer.weight.data, Wrapped) and isinstance(layer.weight.grad, Wrapped)
    np.testing.assert_array_equal(layer.weight.numpy(), w0)
    layer.to(None)
    assert isinstance(layer.weight.data, np.ndarray)
    np.testing.assert_array_equal(layer.weight.data, w0)


# -- models train on it step for step like the numpy backend --------------------------------
@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_models_train_on_the_wrapped_backend_like_on_numpy(wrapped, name, opt):
    make, shape = MODELS[name]
    X, y = _data(shape)
    runs = []
    for be in ("numpy", "wrapped"):
        lamina.seed(7)
        model = make().to(be)
        o = optim.SGD(model.parameters(), lr=0.05, momentum=0.9) if opt == "sgd" else \
            optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
        hist = model.fit(X, y, epochs=2, batch_size=16, optimizer=o, seed=1, verbose=0)
        runs.append((hist["loss"], hist["accuracy"], _weights(model), model.evaluate(X, y), model.predict(X)))
    (l1, a1, w1, e1, p1), (l2, a2, w2, e2, p2) = runs
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    assert a1 == a2
    for u, v in zip(w1, w2):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(e1[0], e2[0], rtol=1e-6)
    assert e1[1] == e2[1]
    assert isinstance(p2, np.ndarray)
    np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-6)


def test_float64_on_the_wrapped_backend_and_data_already_there(wrapped):
    X, y = _data((1, 28, 28), n=32)
    model = mlp(784, (16,)).astype(np.float64).to("wrapped")
    Xd, yd = wrapped.asarray(X.astype(np.float64)), wrapped.asarray(y.astype(np.int64))
    ref = lamina.transfer.clone(model)
    h_dev = model.fit(Xd, yd, epochs=2, batch_size=8, seed=2, verbose=0)
    h_host = ref.fit(X, y, epochs=2, batch_size=8, seed=2, verbose=0)
    np.testing.assert_allclose(h_dev["loss"], h_host["loss"], rtol=1e-12)
    for u, v in zip(_weights(model), _weights(ref)):
        np.testing.assert_allclose(u, v, rtol=1e-12)
    assert model.evaluate(Xd, yd) == pytest.approx(ref.evaluate(X, y))


def test_save_load_and_checkpoints_on_the_wrapped_backend(wrapped, tmp_path):
    X, y = _data((1, 28, 28), n=32)
    lamina.seed(1)
    model = _lenet_tanh_dropout().to("wrapped")
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.fit(X, y, epochs=1, batch_size=16, optimizer=opt, seed=0, verbose=0)
    path = tmp_path / "m.safetensors"
    lamina.save(model, path, optimizer=opt, epoch=1)
    host = lamina.load(path)
    assert isinstance(host[0].weight.data, np.ndarray)
    np.testing.assert_allclose(host.predict(X), model.predict(X), rtol=1e-4, atol=1e-5)  # native vs reference
    back = lamina.load(path, backend="wrapped")
    assert isinstance(back[0].weight.data, Wrapped)
    ckpt = lamina.load_checkpoint(path, backend="wrapped")
    st = next(iter(ckpt.optimizer.state.values()))
    assert isinstance(st["velocity"], Wrapped)
    # resuming on the device continues exactly like the uninterrupted run
    model.fit(X, y, epochs=2, batch_size=16, optimizer=opt, seed=0, verbose=0, initial_epoch=1)
    ckpt.model.fit(X, y, epochs=2, batch_size=16, optimizer=ckpt.optimizer, seed=0, verbose=0, initial_epoch=1)
    for u, v in zip(_weights(model), _weights(ckpt.model)):
        np.testing.assert_array_equal(u, v)


def test_gradient_norms_and_mc_dropout_on_the_wrapped_backend(wrapped):
    X, y = _data((1, 28, 28), n=24)
    lamina.seed(2)
    model = _lenet_tanh_dropout()
    ref = lamina.transfer.clone(model).to("numpy")
    model.to("wrapped")
    rows, rows_ref = diagnostics.gradient_norms(model, X, y, batch_size=10), \
        diagnostics.gradient_norms(ref, X, y, batch_size=10)
    for a, b in zip(rows, rows_ref):
        assert a["layer"] == b["layer"]
        for k in ("weight", "bias", "relative"):
            assert a[k] == pytest.approx(b[k], rel=1e-6)
    mean, std = diagnostics.mc_dropout_predict(model, X, samples=3)
    mean_ref, std_ref = diagnostics.mc_dropout_predict(ref, X, samples=3)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(std, std_ref, rtol=1e-4, atol=1e-6)
    assert np.mean(std > 0) > 0.5  # the dropout layer was active in every sample


def test_a_nan_loss_restores_the_last_good_weights_on_the_wrapped_backend(wrapped):
    X, y = _data((1, 28, 28), n=32)
    model = mlp(784, (16,)).to("wrapped")
    opt = optim.SGD(model.parameters(), lr=1e6)  # diverges
    with pytest.raises(nn.NonFiniteLossError):
        model.fit(X, y, epochs=5, batch_size=8, optimizer=opt, seed=0, verbose=0)
    assert all(np.isfinite(w).all() for w in _weights(model))


# -- losses and optimisers follow their inputs ----------------------------------------------
def test_float64_model_on_numpy_needs_no_backend_arguments():
    X, y = _data((1, 28, 28), n=16)
    model = mlp(784, (8,)).to("numpy").astype(np.float64)
    model.fit(X.astype(np.float64), y, epochs=1, batch_size=8, optimizer=optim.SGD(model.parameters(), lr=0.1),
              loss=losses.CrossEntropy(), verbose=0)
    out = model.predict(X)
    assert out.dtype == np.float64
    loss, grad = losses.CrossEntropy()(out, y)  # float64 host arrays: the numpy backend
    assert grad.dtype == np.float64 and np.isfinite(loss)
    assert backend.current().name == "native"


def test_fit_leaves_the_default_backend_alone(wrapped):
    X, y = _data((1, 28, 28), n=16)
    seen = []

    class Spy:
        def on_batch_end(self, batch, logs):
            seen.append(backend.current().name)

    model = mlp(784, (8,)).to("wrapped")
    model.fit(X, y, epochs=1, batch_size=8, callbacks=[Spy()], verbose=0)
    model.evaluate(X, y)
    assert seen == ["native", "native"]


def test_two_models_on_two_backends_train_at_once_in_two_threads(wrapped):
    X, y = _data((1, 28, 28), n=64)

    def make(be):
        lamina.seed(11)
        return _lenet_tanh_dropout().to(be)

    def train(model):
        model.fit(X, y, epochs=2, batch_size=16, optimizer=optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                  seed=4, verbose=0)

    alone = [make("native"), make("wrapped")]
    for m in alone:
        train(m)
    together = [make("native"), make("wrapped")]
    errors = []

    def run(m):
        try:
            train(m)
        except BaseException as e:  # noqa: BLE001  (reported below)
            errors.append(e)
    threads = [threading.Thread(target=run, args=(m,)) for m in together]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for a, b in zip(alone, together):
        for u, v in zip(_weights(a), _weights(b)):
            np.testing.assert_array_equal(u, v)
