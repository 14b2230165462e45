"""lamina.pretrain: greedy layer-wise pretraining (autoencoders, supervised)."""
import numpy as np
import pytest

import lamina
from lamina.nn import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid, Tanh
from lamina.pretrain import Upsample2D, greedy_autoencoder, greedy_supervised, make_decoder, split_blocks


@pytest.fixture(scope="module")
def digits():
    X, y = lamina.datasets.load_mnist()
    return X[:400], y[:400]


def test_split_blocks():
    layers = [Flatten(), Dense(4, 3), Sigmoid(), Dropout(0.1), Dense(3, 2), ReLU(), MaxPool2D(2), Flatten(),
              Dense(2, 2)]
    segs = split_blocks(layers)
    kinds = [(k, [type(x).__name__ for x in seg]) for k, seg in segs]
    assert kinds == [("fixed", ["Flatten"]), ("block", ["Dense", "Sigmoid", "Dropout"]),
                     ("block", ["Dense", "ReLU"]), ("fixed", ["MaxPool2D", "Flatten"]), ("block", ["Dense"])]


def test_autoencoder_lowers_reconstruction_loss_layer_by_layer(digits):
    X = digits[0].reshape(len(digits[0]), -1)
    lamina.seed(0)
    layers = [Dense(784, 32, init="xavier"), Sigmoid(), Dense(32, 16, init="xavier"), Sigmoid(),
              Dense(16, 8, init="xavier"), Tanh()]
    w0 = [layer.weight.data.copy() for layer in layers[::2]]
    res = greedy_autoencoder(layers, X, epochs=3, lr=3e-3, batch_size=32, seed=0)
    assert res.layers == layers and all(a is b for a, b in zip(res.layers, layers))
    assert len(res.history) == 3
    for h in res.history:
        assert len(h["loss"]) == 4 and len(h["train_loss"]) == 3
        assert all(np.isfinite(h["loss"]))
        assert h["loss"][-1] < 0.9 * h["loss"][0], h  # reconstruction improved for every layer
    assert [h["input_shape"] for h in res.history] == [[784], [32], [16]]
    for layer, w in zip(layers[::2], w0):
        assert not np.array_equal(layer.weight.data, w)
    model = res.model(Dense(8, 10))
    assert model.predict(X[:5]).shape == (5, 10)


def test_denoising_autoencoder_and_sgd(digits):
    X = digits[0].reshape(len(digits[0]), -1)
    lamina.seed(1)
    layers = [Dense(784, 16, init="xavier"), Sigmoid()]
    res = greedy_autoencoder(layers, X, epochs=2, noise=0.3, optimizer="sgd", lr=0.002, momentum=0.9, seed=2)
    h = res.history[0]
    assert h["loss"][-1] < h["loss"][0]


def test_conv_autoencoder_decoders_restore_the_shape(digits):
    X = digits[0][:64]
    lamina.seed(0)
    layers = [Conv2D(1, 4, 5), ReLU(), MaxPool2D(2), Conv2D(4, 6, 3, stride=2, padding=1), Tanh(),
              Conv2D(6, 4, 3, padding=1), Sigmoid()]
    res = greedy_autoencoder(layers, X, epochs=2, lr=3e-3, batch_size=16, seed=0)
    shapes = [(h["input_shape"], h["output_shape"]) for h in res.history]
    assert shapes == [([1, 28, 28], [4, 24, 24]), ([4, 12, 12], [6, 6, 6]), ([6, 6, 6], [4, 6, 6])]
    for h in res.history:
        assert h["loss"][-1] < h["loss"][0], h
    model = Sequential(*res.layers, Flatten(), Dense(144, 10))
    assert model.predict(X[:3]).shape == (3, 10)


@pytest.mark.parametrize("k,s,p,H", [(5, 1, 0, 28), (3, 1, 1, 9), (3, 2, 0, 13), (4, 2, 1, 12), (5, 3, 2, 17)])
def test_make_decoder_shapes(rng, k, s, p, H):
    enc = Conv2D(2, 3, k, stride=s, padding=p)
    out = enc.output_shape((2, H, H))
    dec = make_decoder(enc, (2, H, H), out)
    x = rng.random((2, 2, H, H), dtype=np.float32)
    assert Sequential(enc, *dec).predict(x).shape == x.shape


def test_upsample_backward_is_the_block_sum(rng):
    up = Upsample2D(2).to("numpy")  # float64: the reference kernels
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float64)
    y = up.forward(x)
    assert y.shape == (1, 2, 6, 6) and np.array_equal(y[0, 1, 4:6, 2:4], np.full((2, 2), x[0, 1, 2, 1]))
    g = rng.standard_normal(y.shape)
    gx = up.backward(g)
    assert np.allclose(gx[0, 0, 1, 2], g[0, 0, 2:4, 4:6].sum())
    # adjoint: <up(x), g> == <x, up^T(g)>
    assert np.isclose((y * g).sum(), (x * gx).sum())


def test_greedy_supervised(digits):
    X, y = digits
    Xf = X.reshape(len(X), -1)
    lamina.seed(0)
    layers = [Dense(784, 32, init="xavier"), Sigmoid(), Dense(32, 16, init="xavier"), Sigmoid()]
    res = greedy_supervised(layers, Xf, y, 10, epochs=4, lr=0.1, batch_size=16, seed=0)
    layers_out, head, history = res
    assert layers_out == layers and len(head) == 1 and isinstance(head[0], Dense)
    assert head[0].in_features == 16 and head[0].out_features == 10
    assert len(history) == 2
    for h in history:
        assert h["loss"][-1] < h["loss"][0]
    acc = res.model().evaluate(Xf, y)[1]
    assert acc > 0.5  # well above chance on the training images


def test_greedy_supervised_conv_stack(digits):
    X, y = digits
    lamina.seed(0)
    layers = [Conv2D(1, 4, 5), ReLU(), MaxPool2D(2), Conv2D(4, 4, 3), ReLU(), MaxPool2D(2)]
    res = greedy_supervised(layers, X[:128], y[:128], 10, epochs=1, lr=0.05, batch_size=32, seed=0)
    assert [type(x).__name__ for x in res.head] == ["Flatten", "Dense"]
    assert res.head[1].in_features == 4 * 5 * 5
    assert res.model().predict(X[:2]).shape == (2, 10)


def test_custom_decoder_shape_mismatch_raises(digits):
    X = digits[0].reshape(len(digits[0]), -1)[:32]
    with pytest.raises(ValueError, match="decoder"):
        greedy_autoencoder([Dense(784, 8)], X, epochs=1, decoder=lambda block, i, o: [Dense(8, 5)])
