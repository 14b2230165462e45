"""nn.LSTM and nn.GRU: PyTorch parity (torch.nn.LSTM / GRU with batch_first=True and the same
weights: outputs, input and parameter gradients, on the native and numpy backends), float64
finite differences through time, save/load, PyTorch's load_state_dict reading the weights, a
device-like backend, the missing-kernel error, training through fit, and summary()."""
import numpy as np
import pytest

import lamina
import wrapped_backend
from lamina import losses, nn
from nn_helpers import gradcheck_layer, gradcheck_model

torch = pytest.importorskip("torch")

KERNELS = ("lstm_cell", "lstm_cell_backward", "gru_cell", "gru_cell_backward")
LAYERS = {"LSTM": (nn.LSTM, torch.nn.LSTM), "GRU": (nn.GRU, torch.nn.GRU)}
PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _close(got, want, rtol=1e-5, what=""):
    want = np.asarray(want, np.float64)
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=rtol * scale, err_msg=what)


def _torch_twin(layer, tcls):
    """torch.nn.<LSTM|GRU>(batch_first=True, float64) with the lamina layer's weights."""
    t = tcls(layer.input_size, layer.hidden_size, batch_first=True, bias=layer.bias_ih is not None).double()
    sd = {f"{n}_l0": torch.tensor(p.numpy(), dtype=torch.float64) for n, p in layer.named_parameters()}
    t.load_state_dict(sd, strict=True)
    return t


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (1, 1, 2, 3), (8, 12, 7, 17), (16, 4, 33, 32)], ids=str)
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_matches_torch(rng, backend, kind, shape, return_sequences, bias):
    N, T, F, H = shape
    cls, tcls = LAYERS[kind]
    layer = cls(F, H, return_sequences=return_sequences, bias=bias).to(backend)
    theirs = _torch_twin(layer, tcls)
    x = rng.standard_normal((N, T, F)).astype(np.float32)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    seq, _ = theirs(tx)
    ty = seq if return_sequences else seq[:, -1]
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(g, dtype=torch.float64))
    be = layer._be()
    y = layer.forward(be.asarray(x), training=True)
    _close(be.to_numpy(y), ty.detach().numpy(), what="output")
    layer.zero_grad()
    dx = layer.backward(be.asarray(g))
    _close(be.to_numpy(dx), tx.grad.numpy(), what="dC/dx")
    for n, p in layer.named_parameters():
        _close(be.to_numpy(p.grad), getattr(theirs, f"{n}_l0").grad.numpy(), what=f"dC/d{n}")
    assert layer.weight_ih.shape == (layer._gates * H, F) and layer.weight_hh.shape == (layer._gates * H, H)


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_gradcheck_float64(rng, kind, return_sequences):
    layer = LAYERS[kind][0](3, 4, return_sequences=return_sequences)
    gradcheck_layer(layer, rng.standard_normal((2, 5, 3)), rng, rtol=1e-5, atol=1e-8)


def test_stacked_model_gradcheck(rng):
    model = nn.Sequential(nn.GRU(2, 3, return_sequences=True), nn.LSTM(3, 4), nn.Dense(4, 3))
    gradcheck_model(model, losses.CrossEntropy(), rng.standard_normal((3, 4, 2)), np.array([1, 2, 0]),
                    rtol=1e-5, atol=1e-8)


def test_gradients_accumulate_over_two_backwards(rng):
    layer = nn.LSTM(3, 4).to("numpy").astype(np.float64)
    x = rng.standard_normal((2, 3, 3))
    g = rng.standard_normal((2, 4))
    layer.forward(x)
    layer.zero_grad()
    layer.backward(g)
    once = layer.weight_hh.grad.copy()
    layer.forward(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight_hh.grad, 2 * once, rtol=1e-12)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_save_load_and_torch_reads_the_weights(rng, tmp_path, kind):
    cls, tcls = LAYERS[kind]
    model = nn.Sequential(cls(4, 6), nn.Dense(6, 2))
    x = rng.standard_normal((5, 7, 4)).astype(np.float32)
    model.fit(x, rng.integers(0, 2, 5), epochs=2, batch_size=5, optimizer="adam", loss="cross_entropy", verbose=0)
    path = tmp_path / "rnn.safetensors"
    lamina.save(model, path)
    loaded = lamina.load(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    # PyTorch's module reads the file's tensors once "_l0" names the layer
    from safetensors.torch import load_file
    sd = load_file(str(path))
    t = tcls(4, 6, batch_first=True)
    t.load_state_dict({f"{k.split('.', 1)[1]}_l0": v for k, v in sd.items() if k.startswith("0.")}, strict=True)
    with torch.no_grad():
        h = t(torch.tensor(x))[0][:, -1].numpy()
    _close(model[0].forward(x), h)


@pytest.fixture
def device_backend():
    be = wrapped_backend.register_with("wrapped_rnn", KERNELS)
    try:
        yield be
    finally:
        lamina.backend.unregister_backend("wrapped_rnn")


@pytest.mark.parametrize("kind", list(LAYERS))
def test_trains_on_a_device_backend_as_on_numpy(rng, device_backend, kind):
    cls = LAYERS[kind][0]
    x = rng.standard_normal((6, 4, 3)).astype(np.float32)
    y = rng.integers(0, 2, 6)
    lamina.init.seed(3)
    a = nn.Sequential(cls(3, 5, return_sequences=True), cls(5, 4), nn.Dense(4, 2)).to("numpy")
    lamina.init.seed(3)
    b = nn.Sequential(cls(3, 5, return_sequences=True), cls(5, 4), nn.Dense(4, 2)).to("wrapped_rnn")
    for m in (a, b):
        m.fit(x, y, epochs=3, batch_size=3, optimizer="sgd", loss="cross_entropy", verbose=0, shuffle=False)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6, atol=1e-7)


def test_a_backend_without_the_kernels_is_a_clear_error():
    wrapped_backend.register()
    be = lamina.get_backend("wrapped")
    x = be.asarray(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(NotImplementedError, match="LSTM needs the kernel 'lstm_cell'"):
        nn.LSTM(4, 5).to("wrapped").forward(x)
    with pytest.raises(NotImplementedError, match="GRU needs the kernel 'gru_cell'"):
        nn.GRU(4, 5).to("wrapped").forward(x)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_learns_a_long_range_dependency(rng, kind):
    """The class is the sign of the first of 12 steps; each layer learns it on the native backend."""
    x = rng.standard_normal((256, 12, 1)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int64)
    lamina.init.seed(0)
    model = nn.Sequential(LAYERS[kind][0](1, 16), nn.Dense(16, 2))
    model.fit(x, y, epochs=30, batch_size=32, optimizer=lamina.optim.Adam(model.parameters(), lr=0.01),
              loss="cross_entropy", verbose=0)
    assert model.evaluate(x, y)[1] > 0.9


def test_summary_and_bad_input():
    model = nn.Sequential(nn.LSTM(3, 4, return_sequences=True), nn.GRU(4, 5), nn.Dense(5, 2))
    text = model.summary((7, 3), print_fn=None)
    assert "LSTM" in text and "(7, 4)" in text and "GRU" in text and "(5,)" in text
    assert f"Total params: {4 * 4 * (3 + 4 + 2) + 3 * 5 * (4 + 5 + 2) + 12:,}" in text
    with pytest.raises(ValueError, match=r"LSTM expects input \(N, T, 3\)"):
        nn.LSTM(3, 4).forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="sizes must be >= 1"):
        nn.GRU(0, 4)
