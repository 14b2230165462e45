"""The layer contract, all of it, on layers defined here: forward, backward (checked by finite
differences), get_config / from_config and get_state / set_state through a save and a load,
and the optional fusion protocol of lamina.nn.fusion (a custom layer fused with the built-in
ReLU and with a custom activation, a layer without the protocol run unfused, an override below
a fused method turning the fusion off)."""
import os

import numpy as np
import pytest
from nn_helpers import assert_close, gradcheck_model

import lamina
from lamina import losses, nn
from lamina.nn import fusion


@nn.register_layer
class ScaledDense(nn.Layer):
    """y = s * x W^T (no bias), with the fusion protocol's producer side: ``forward_fused``
    applies the activation in the GEMM's write-back (relu(s z) = s relu(z) for s > 0)."""

    _param_names = ("weight",)
    fusable_activations = ("relu",)

    def __init__(self, in_features, out_features, scale=1.0):
        super().__init__()
        self.in_features, self.out_features, self.scale = in_features, out_features, float(scale)
        self.weight = nn.Parameter(nn.layers.init_weight("he", (out_features, in_features)), "weight")
        self.calls = {"forward": 0, "fused": 0}

    def forward(self, x, training=False):
        self.calls["forward"] += 1
        return self._run(x, None)

    def forward_fused(self, x, training, activation):
        self.calls["fused"] += 1
        return self._run(x, activation)

    def _run(self, x, activation):
        be = self.be
        self._x = x  # (N, in)
        w = be.scale(self.weight.data, self.scale)  # s W: (out, in)
        return be.linear(x, w, None, activation=activation)  # (N, out)

    def _backward(self, grad, need_input_grad):
        be = self.be
        if self.weight.trainable:  # dC/dW = s grad^T x: (out, in)
            self.weight.accumulate_grad(be.scale(be.matmul(grad, self._x, trans_a=True), self.scale))
        if not need_input_grad:
            return None
        return be.scale(be.matmul(grad, self.weight.data), self.scale)  # dC/dx = s grad W: (N, in)

    def output_shape(self, input_shape):
        return (self.out_features,)

    def get_config(self):
        # saved under other names than the constructor's: from_config maps them back
        return {"inputs": self.in_features, "outputs": self.out_features, "scale": self.scale}

    @classmethod
    def from_config(cls, config):
        return cls(config["inputs"], config["outputs"], config["scale"])


@nn.register_layer
class CountingReLU(nn.Layer):
    """A ReLU of its own with the protocol's activation side, and state that is saved: how many
    forwards it has seen (``get_state`` / ``set_state``)."""

    activation_name = "relu"

    def __init__(self):
        super().__init__()
        self.seen, self.after_fusion = 0, 0

    def forward(self, x, training=False):
        self.seen += 1
        self._y = self.be.relu(x)
        return self._y

    def forward_after_fusion(self, y, training=False):
        self.seen += 1
        self.after_fusion += 1
        self._y = y
        return y

    def _backward(self, grad, need_input_grad):
        return self.be.relu_backward(grad, self._y) if need_input_grad else None

    def get_state(self):
        return {"seen": self.seen}

    def set_state(self, state):
        self.seen = int(state["seen"])


@nn.register_layer
class Shift(nn.Layer):
    """y = x + b: a layer with none of the fusion protocol (it must run as it is)."""

    _param_names = ("bias",)

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.bias = nn.Parameter(np.linspace(-0.5, 0.5, n).astype(np.float32), "bias")

    def forward(self, x, training=False):
        be = self.be
        ones = be.asarray(np.ones((x.shape[0], 1), x.dtype))
        self._ones = ones
        return be.add(x, be.matmul(ones, self.bias.data.reshape(1, self.n)))

    def _backward(self, grad, need_input_grad):
        be = self.be
        if self.bias.trainable:  # dC/db = 1^T grad: (n,)
            self.bias.accumulate_grad(be.matmul(self._ones, grad, trans_a=True).reshape(self.n))
        return grad if need_input_grad else None

    def get_config(self):
        return {"n": self.n}


def _model(scale=2.0, activation=None):
    return nn.Sequential(Shift(4), ScaledDense(4, 6, scale), activation or nn.ReLU(), ScaledDense(6, 3, 0.5))


def _modes(model):
    return [mode for _, mode, _ in model.plan().steps]


def test_a_custom_layer_is_fused_with_the_builtin_relu_and_gives_the_unfused_results():
    model = _model()
    assert _modes(model) == [fusion.PLAIN, fusion.FUSE_ACTIVATION, fusion.FUSED_ACTIVATION, fusion.PLAIN]
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    fused = model.predict(x)
    assert model[1].calls == {"forward": 0, "fused": 1}
    # the same layers one by one: nothing fused
    unfused = x
    for layer in model.layers:
        unfused = np.array(layer.forward(unfused))
    assert model[1].calls == {"forward": 1, "fused": 1}
    np.testing.assert_allclose(fused, unfused, rtol=1e-6, atol=1e-6)


def test_a_custom_activation_takes_the_fused_output():
    model = _model(activation=CountingReLU())
    assert _modes(model)[1:3] == [fusion.FUSE_ACTIVATION, fusion.FUSED_ACTIVATION]
    model.predict(np.ones((3, 4), np.float32))
    assert (model[2].seen, model[2].after_fusion) == (1, 1)


def test_a_layer_without_the_protocol_runs_unfused():
    model = nn.Sequential(Shift(4), nn.ReLU(), Shift(4))
    assert _modes(model) == [fusion.PLAIN, fusion.PLAIN, fusion.PLAIN]
    assert model.plan().through_activation == frozenset()


def test_an_override_below_the_fused_method_turns_the_fusion_off():
    class LoudDense(nn.Dense):  # its own forward: forward_fused (from Dense) would bypass it
        def forward(self, x, training=False):
            return super().forward(x, training)

    class QuietDense(nn.Dense):  # nothing overridden: fused as Dense is
        pass

    assert _modes(nn.Sequential(LoudDense(3, 2), nn.ReLU()))[0] == fusion.PLAIN
    assert _modes(nn.Sequential(QuietDense(3, 2), nn.ReLU()))[0] == fusion.FUSE_ACTIVATION
    assert _modes(nn.Sequential(nn.Dense(3, 2), nn.ReLU()))[0] == fusion.FUSE_ACTIVATION


def test_the_fused_custom_model_has_the_finite_difference_gradients(rng):
    # float64 on the numpy backend, every parameter and the input, through the fused plan
    model = _model()
    assert _modes(model)[1] == fusion.FUSE_ACTIVATION
    x = rng.standard_normal((3, 4))
    gradcheck_model(model, lambda out, t: losses.get("mse")(out, t), x, rng.standard_normal((3, 3)))


def test_the_parameter_gradients_alone_match_the_full_backward(rng):
    model = _model().to("numpy").astype(np.float64)
    x, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 3))
    model.forward(x, training=True)
    model.zero_grad()
    model.backward(g)
    full = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    assert model.backward(g, need_input_grad=False) is None
    for a, b in zip(full, [p.grad for p in model.parameters()]):
        assert_close(b, a, 1e-12, 1e-12, "parameter gradient")


def test_config_and_state_go_through_a_file_and_back(tmp_path):
    lamina.seed(1)
    model = _model(activation=CountingReLU())
    model[3].weight.lr_scale = 0.25
    model[0].bias.trainable = False
    x = np.random.default_rng(2).standard_normal((4, 4)).astype(np.float32)
    expected = model.predict(x)  # (one forward: CountingReLU.seen == 1)
    path = os.path.join(tmp_path, "custom.safetensors")
    lamina.save(model, path)
    entry = lamina.io.layer_to_entry(model[1])
    assert entry["config"] == {"inputs": 4, "outputs": 6, "scale": 2.0}
    loaded = lamina.load(path)
    assert [type(layer) for layer in loaded] == [Shift, ScaledDense, CountingReLU, ScaledDense]
    assert loaded[2].seen == 1 and loaded[1].scale == 2.0
    assert loaded[3].weight.lr_scale == 0.25 and not loaded[0].bias.trainable
    np.testing.assert_array_equal(loaded.predict(x), expected)


def test_an_unregistered_custom_layer_cannot_be_saved(tmp_path):
    class Unregistered(Shift):
        pass

    with pytest.raises(ValueError, match="not registered"):
        lamina.save(nn.Sequential(Unregistered(2)), os.path.join(tmp_path, "x.safetensors"))


def test_a_custom_layer_trains_in_fit():
    lamina.seed(4)
    model = _model()
    X = np.random.default_rng(3).standard_normal((64, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    h = model.fit(X, y, epochs=8, batch_size=16, optimizer="adam", verbose=0, seed=0)
    assert h["loss"][-1] < h["loss"][0]
    assert model[1].calls["fused"] > 0 and model[1].calls["forward"] == 0
