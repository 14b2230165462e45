"""lamina.nn: every layer's backward by finite differences (float64, numpy backend), whole
models, the Sequential container, fusion, frozen parameters, native vs numpy agreement."""
import numpy as np
import pytest
from nn_helpers import assert_close, clone, gradcheck_layer, gradcheck_model, params_of

import lamina
from lamina import losses, nn, optim


@pytest.fixture(autouse=True)
def _seeded():
    lamina.seed(1234)


def away_from_zero(rng, shape, margin=0.05):
    """Random values with |x| >= margin, so kinks (ReLU at 0) are not crossed by the differences."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin + x, x)


def distinct(rng, shape):
    """Values far apart from each other, so max-pool windows have no near-ties."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1 + rng.uniform(-0.01, 0.01, shape)


# -- layer gradient checks -------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_dense_gradcheck(rng, bias):
    gradcheck_layer(nn.Dense(5, 3, bias=bias), rng.standard_normal((4, 5)), rng)


def test_dense_gradcheck_3d_input(rng):
    gradcheck_layer(nn.Dense(4, 3), rng.standard_normal((2, 3, 4)), rng)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3), dict(kernel_size=3, padding=1), dict(kernel_size=(2, 3), stride=2, padding=(1, 0)),
    dict(kernel_size=2, dilation=2), dict(kernel_size=1), dict(kernel_size=3, bias=False),
])
def test_conv2d_gradcheck(rng, kw):
    gradcheck_layer(nn.Conv2D(2, 3, **kw), rng.standard_normal((2, 2, 6, 5)), rng)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3), stride=1)])
def test_maxpool_gradcheck(rng, kw):
    gradcheck_layer(nn.MaxPool2D(**kw), distinct(rng, (2, 2, 6, 7)), rng)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3), stride=1)])
def test_avgpool_gradcheck(rng, kw):
    gradcheck_layer(nn.AvgPool2D(**kw), rng.standard_normal((2, 2, 6, 7)), rng)


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.LeakyReLU(0.1), nn.Sigmoid(), nn.Tanh(), nn.Softmax(), nn.Flatten()],
                         ids=lambda l: type(l).__name__)
def test_activation_gradcheck(rng, layer):
    gradcheck_layer(layer, away_from_zero(rng, (3, 2, 4)), rng)


def test_softmax_axis_gradcheck(rng):
    gradcheck_layer(nn.Softmax(axis=1), rng.standard_normal((3, 4, 2)), rng)


def test_dropout_gradcheck_fixed_mask(rng):
    layer = nn.Dropout(0.4, seed=7)

    def same_mask():
        layer.calls = 0  # the same seed, hence the same mask, at every evaluation
    gradcheck_layer(layer, rng.standard_normal((4, 6)), rng, training=True, before_forward=same_mask)
    mask = layer._mask
    assert (mask == 0).any() and (mask > 0).any()  # (the mask's encoding is the kernel's business)


def test_dropout_inference_is_identity_and_masks_change(rng):
    layer = nn.Dropout(0.5, seed=3).to("numpy")
    x = rng.standard_normal((8, 16)).astype(np.float32)
    assert layer.forward(x) is x
    a = layer.forward(x, training=True).copy()
    b = layer.forward(x, training=True).copy()
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match="p"):
        nn.Dropout(1.0)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_rnn_gradcheck(rng, nonlinearity, return_sequences):
    layer = nn.RNN(3, 4, nonlinearity=nonlinearity, return_sequences=return_sequences)
    if nonlinearity == "relu":  # keep pre-activations away from the kink at 0
        layer.bias.data[...] = 0.5
    x = rng.standard_normal((2, 5, 3)) * 0.5
    gradcheck_layer(layer, x, rng, rtol=1e-4, atol=1e-6)


def test_rnn_matches_explicit_recurrence(rng):
    layer = nn.RNN(3, 4, return_sequences=True).to("numpy")
    layer.bias.data[...] = rng.standard_normal(4)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    h = np.zeros((2, 4))
    expected = []
    for t in range(5):
        h = np.tanh(x[:, t] @ layer.weight_ih.data.T + h @ layer.weight_hh.data.T + layer.bias.data)
        expected.append(h)
    assert_close(layer.forward(x), np.stack(expected, 1), 1e-5, 1e-6)
    last = nn.RNN(3, 4).to("numpy")
    for n in ("weight_ih", "weight_hh", "bias"):
        getattr(last, n).data = getattr(layer, n).data
    assert_close(last.forward(x), expected[-1], 1e-5, 1e-6)


# -- whole models --------------------------------------------------------------------------------------
def small_cnn():
    return nn.Sequential(nn.Conv2D(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Conv2D(3, 4, 2),
                         nn.Tanh(), nn.AvgPool2D(2), nn.Flatten(), nn.Dense(4, 5), nn.ReLU(), nn.Dense(5, 3))


def test_cnn_model_gradcheck_cross_entropy(rng):
    model = small_cnn()
    x = distinct(rng, (3, 1, 6, 6)) / 5
    for layer in model:  # biases away from zero keep ReLU inputs off the kink
        if getattr(layer, "bias", None) is not None:
            layer.bias.data[...] = 0.3
    gradcheck_model(model, losses.CrossEntropy(), x, np.array([0, 2, 1]), rtol=1e-4, atol=1e-6)


def test_mlp_model_gradcheck_mse_and_dropout(rng):
    model = nn.Sequential(nn.Dense(4, 6), nn.Sigmoid(), nn.Dropout(0.3, seed=5), nn.Dense(6, 2))
    drop = model[2]
    x = rng.standard_normal((5, 4))
    target = rng.standard_normal((5, 2))
    model.to("numpy").astype(np.float64)

    def loss():
        drop.calls = 0
        with lamina.use_backend("numpy"):
            return losses.MSE()(model.forward(x, training=True), target)[0]
    from nn_helpers import numeric_grad
    drop.calls = 0
    with lamina.use_backend("numpy"):
        _, g = losses.MSE()(model.forward(x, training=True), target)
    model.zero_grad()
    model.backward(g)
    for name, p in model.named_parameters():
        assert_close(p.grad.copy(), numeric_grad(loss, p.data), 1e-5, 1e-7, name)


def test_sigmoid_bce_model_gradcheck(rng):
    model = nn.Sequential(nn.Dense(3, 4), nn.LeakyReLU(0.2), nn.Dense(4, 2), nn.Sigmoid())
    x = rng.standard_normal((4, 3))
    gradcheck_model(model, losses.BinaryCrossEntropy(), x, rng.integers(0, 2, (4, 2)).astype(np.float64))


def test_rnn_model_gradcheck(rng):
    model = nn.Sequential(nn.RNN(2, 3, return_sequences=True), nn.RNN(3, 4), nn.Dense(4, 3))
    gradcheck_model(model, losses.CrossEntropy(), rng.standard_normal((2, 4, 2)), np.array([1, 2]), rtol=1e-4, atol=1e-6)


# -- fusion, workspace, container --------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_fused_relu_equals_unfused(rng, backend):
    model = nn.Sequential(nn.Dense(6, 5), nn.ReLU(), nn.Dense(5, 3)).to(backend)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    g = rng.standard_normal((4, 3)).astype(np.float32)
    y = model.forward(x)
    model.zero_grad()
    dx = model.backward(g)
    grads = [p.grad.copy() for p in model.parameters()]
    # The same layers one by one (no fusion).
    h = model[0].forward(x)
    y2 = model[2].forward(model[1].forward(h))
    np.testing.assert_array_equal(y, y2)
    model.zero_grad()
    dx2 = model[0].backward(model[1].backward(model[2].backward(g)))
    np.testing.assert_array_equal(dx, dx2)
    for a, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(a, p.grad)


def test_slice_shares_layers_and_does_not_fuse_across_its_end(rng):
    model = nn.Sequential(nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2))
    head = model[:1]
    assert isinstance(head, nn.Sequential) and head[0] is model[0] and len(model[1:]) == 2
    x = rng.standard_normal((5, 4)).astype(np.float32)
    z = head.forward(x)
    assert (z < 0).any(), "model[:1] must return the Dense output before the ReLU"
    np.testing.assert_allclose(model[:2].forward(x), np.maximum(z, 0), rtol=1e-6)
    assert model[-1] is model[2]


def test_forward_returns_fresh_array(rng):
    model = nn.Sequential(nn.Dense(4, 3))
    a = model.forward(rng.standard_normal((2, 4)).astype(np.float32))
    a_copy = a.copy()
    model.forward(rng.standard_normal((2, 4)).astype(np.float32))
    np.testing.assert_array_equal(a, a_copy)


def test_container_protocol_and_summary():
    model = lamina.models.lenet5()
    assert len(model) == 12 and list(model)[0] is model[0]
    assert sum(p.size for p in model.parameters()) == 61706
    text = model.summary((1, 28, 28), print_fn=None)
    assert "Total params: 61,706" in text and "(16, 5, 5)" in text and "(6, 28, 28)" in text
    model[0].freeze()
    assert "Non-trainable params: 156" in model.summary((1, 28, 28), print_fn=None)
    mlp = nn.Sequential(nn.Dense(784, 100), nn.ReLU(), nn.Dense(100, 10))
    assert "(100,)" in mlp.summary(print_fn=None)  # the input shape comes from the first Dense
    with pytest.raises(TypeError, match="item 1"):
        nn.Sequential(nn.ReLU(), "relu")


def test_parameter_grad_semantics(rng):
    layer = nn.Dense(3, 2)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    g = rng.standard_normal((4, 2)).astype(np.float32)
    layer.forward(x)
    layer.zero_grad()
    layer.backward(g)
    once = layer.weight.grad.copy()
    layer.backward(g)  # accumulates
    np.testing.assert_allclose(layer.weight.grad, 2 * once, rtol=1e-6)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()
    with pytest.raises(ValueError, match="shape"):
        layer.weight.grad = np.zeros(5)


def test_frozen_parameters_get_no_gradient_and_no_update(rng):
    model = nn.Sequential(nn.Dense(4, 5), nn.ReLU(), nn.Dense(5, 3))
    model[0].freeze()
    model[2].bias.trainable = False
    before = params_of(model)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model.fit(x, y, epochs=2, batch_size=4, optimizer=optim.SGD(model.parameters(), lr=0.1, momentum=0.9), verbose=0)
    after = params_of(model)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[3], after[3])
    assert not np.array_equal(before[2], after[2])
    assert not model[0].weight.grad.any()  # no gradient work on the frozen layer


def test_layer_init_by_name_and_callable():
    d = nn.Dense(50, 40, init="orthogonal")
    np.testing.assert_allclose(d.weight.data @ d.weight.data.T, np.eye(40), atol=1e-5)
    c = nn.Conv2D(2, 3, 3, init=lambda shape, rng: np.full(shape, 0.5))
    assert (c.weight.data == 0.5).all() and c.weight.dtype == np.float32
    with pytest.raises(ValueError, match="unknown initialiser"):
        nn.Dense(2, 2, init="nope")


def test_bad_inputs_name_the_problem(rng):
    with pytest.raises(ValueError, match="input features"):
        nn.Dense(3, 2).forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="Conv2D expects"):
        nn.Conv2D(3, 2, 3).forward(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="RNN expects"):
        nn.RNN(3, 2).forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 2, nonlinearity="gelu")


# -- native vs numpy --------------------------------------------------------------------------------
def test_native_matches_numpy_on_models(rng, isa):
    for make, x, y in [
        (small_cnn, rng.standard_normal((4, 1, 6, 6)).astype(np.float32), rng.integers(0, 3, 4)),
        (lambda: nn.Sequential(nn.Flatten(), nn.Dense(12, 7), nn.ReLU(), nn.Dense(7, 3)),
         rng.standard_normal((5, 3, 4)).astype(np.float32), rng.integers(0, 3, 5)),
        (lambda: nn.Sequential(nn.RNN(3, 5, return_sequences=True), nn.RNN(5, 4, nonlinearity="relu"), nn.Dense(4, 3)),
         rng.standard_normal((3, 6, 3)).astype(np.float32), rng.integers(0, 3, 3)),
    ]:
        native = make().to("native")
        ref = clone(native).to("numpy")
        results = []
        for model, be in ((native, "native"), (ref, "numpy")):
            with lamina.use_backend(be):
                out = model.forward(x, training=True)
                loss, g = losses.CrossEntropy()(out, y)
                model.zero_grad()
                dx = model.backward(g)
            results.append((out, loss, dx, [p.grad.copy() for p in model.parameters()]))
        (o1, l1, d1, g1), (o2, l2, d2, g2) = results
        assert_close(o1, o2, 1e-4, 1e-5, "output")
        assert abs(l1 - l2) <= 1e-5 * max(1.0, abs(l2))
        assert_close(d1, d2, 1e-3, 1e-5, "dC/dx")
        for a, b in zip(g1, g2):
            assert_close(a, b, 1e-3, 1e-5, "parameter gradient")


def test_astype_float64_requires_numpy_backend(rng):
    model = nn.Sequential(nn.Dense(3, 2)).astype(np.float64)
    with pytest.raises(ValueError, match="float64"):
        model.fit(rng.standard_normal((4, 3)), np.array([0, 1, 0, 1]), verbose=0)
    model.to("numpy").fit(rng.standard_normal((4, 3)), np.array([0, 1, 0, 1]), verbose=0)
    assert model[0].weight.dtype == np.float64


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("pool", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=1)])
def test_relu_then_maxpool_backward_reordering_is_exact(rng, backend, pool):
    # Sequential differentiates ReLU -> MaxPool2D as (mask at the pooled size, unpool); check it
    # against the layers' own backward, one by one, including overlapping windows and zeros.
    model = nn.Sequential(nn.Conv2D(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2D(**pool), nn.Flatten()).to(backend)
    x = rng.standard_normal((2, 2, 7, 7)).astype(np.float32)
    x[0, :, :4, :4] = -5  # whole windows of zeros after the ReLU
    y = model.forward(x)
    g = rng.standard_normal(y.shape).astype(np.float32)
    model.zero_grad()
    dx = model.backward(g)
    grads = [p.grad.copy() for p in model.parameters()]
    h = model[2].forward(model[1].forward(model[0].forward(x)))
    model.zero_grad()
    dx2 = model[0].backward(model[1].backward(model[2].backward(model[3].backward(g))))
    np.testing.assert_array_equal(dx, dx2)
    for a, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(a, p.grad)
