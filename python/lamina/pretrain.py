"""Greedy layer-wise pretraining: the talk's loop, unsupervised (autoencoders) or supervised.

A layer stack is read as a sequence of *blocks*: a layer with parameters (Dense, Conv2D, ...)
together with the element-wise layers right after it (activations, Dropout). Parameter-free
layers between blocks (Flatten, pooling) are fixed transforms applied to the data between one
block's training and the next. For ``[Flatten, Dense, Sigmoid, Dense, Sigmoid]`` the blocks are
``[Dense, Sigmoid]`` twice; for ``[Conv2D, ReLU, MaxPool2D, Conv2D, ReLU]`` they are
``[Conv2D, ReLU]`` twice, with the pooling applied between them.

- ``greedy_autoencoder``: for each block k, train it as the encoder of an autoencoder (with a
  temporary decoder: Dense back to the input size, or for Conv2D a convolution back to the
  input shape, after nearest-neighbour upsampling when the encoder strides) to reconstruct its
  input X_k (from a corrupted copy when ``noise`` > 0: a denoising autoencoder, Vincent et al.
  2008); then X_{k+1} = block_k(X_k) and move on. Unsupervised: it can use unlabeled data.
- ``greedy_supervised`` (Bengio et al. 2007): train block 1 with a temporary output layer on the
  labels; keep block 1, feed its output to block 2 with a fresh output layer; and so on.

Both train the caller's layer objects in place and return them, ready for a Sequential.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._workflows import layers_of, make_optimizer, model_dtype, predict


def _is_elementwise(layer):
    from .nn import Dropout, LeakyReLU, ReLU, Sigmoid, Tanh

    return isinstance(layer, (ReLU, LeakyReLU, Sigmoid, Tanh, Dropout))


def split_blocks(layers):
    """The layers (a Sequential or a list) cut into pretraining units, in order: a list of
    ("block", [a layer with parameters, the element-wise layers after it]) and ("fixed",
    [layers without parameters, e.g. pooling]) pairs.

    Example:

        >>> from lamina import models, pretrain
        >>> [(kind, len(layers)) for kind, layers in pretrain.split_blocks(models.mlp(hidden=(50, 20)))]
        [('fixed', 1), ('block', 2), ('block', 2), ('block', 1)]
    """
    segments = []
    for layer in layers_of(layers):
        if layer.parameters():
            segments.append(("block", [layer]))
        elif _is_elementwise(layer) and segments and segments[-1][0] == "block":
            segments[-1][1].append(layer)
        elif segments and segments[-1][0] == "fixed":
            segments[-1][1].append(layer)
        else:
            segments.append(("fixed", [layer]))
    return segments


# -- decoders --------------------------------------------------------------------------------
def _upsample_layer_class():
    from .nn import Layer, register_layer
    from .nn.layers import LAYER_TYPES

    if "Upsample2D" in LAYER_TYPES:
        return LAYER_TYPES["Upsample2D"]

    @register_layer
    class Upsample2D(Layer):
        """Nearest-neighbour upsampling by an integer factor: (N, C, H, W) -> (N, C, sH, sW).
        Used by the temporary decoders of convolutional autoencoders (not a hot path)."""

        def __init__(self, scale=2):
            super().__init__()
            self.scale = int(scale)
            if self.scale < 1:
                raise ValueError(f"Upsample2D scale must be >= 1, got {scale!r}")

        def forward(self, x, training=False):
            return self._be().upsample_nearest2d(x, self.scale)

        def _backward(self, grad, need_input_grad):
            if not need_input_grad:
                return None
            # each input pixel fed an s x s block: its gradient is the block's sum
            return self._be().upsample_nearest2d_backward(grad, self.scale)

        def output_shape(self, input_shape):
            C, H, W = input_shape
            return (C, H * self.scale, W * self.scale)

        def get_config(self):
            return {"scale": self.scale}

    return Upsample2D


def Upsample2D(scale=2):  # noqa: N802  (a layer constructor)
    """Nearest-neighbour upsampling layer (N, C, H, W) -> (N, C, scale*H, scale*W), any
    float dtype of the backend, no parameters (the convolutional decoders' unpooling);
    registered, so a saved model containing it loads.

    Example:

        >>> import numpy as np
        >>> from lamina import pretrain
        >>> pretrain.Upsample2D(2).forward(np.ones((1, 3, 4, 4), np.float32)).shape
        (1, 3, 8, 8)
    """
    return _upsample_layer_class()(scale)


def _output_activation(X, decoder_activation):
    from .nn import Sigmoid

    if decoder_activation == "auto":
        lo, hi = float(np.min(X)), float(np.max(X))
        return [Sigmoid()] if lo >= 0.0 and hi <= 1.0 else []
    if decoder_activation in (None, "linear"):
        return []
    if decoder_activation == "sigmoid":
        return [Sigmoid()]
    if callable(decoder_activation):
        return [decoder_activation()]
    raise ValueError(f"decoder_activation must be 'auto', 'sigmoid', 'linear' or a layer factory, "
                     f"got {decoder_activation!r}")


def make_decoder(encoder_layer, input_shape, output_shape, decoder_activation="auto", X=None):
    """Temporary decoder layers mapping the block's output (``output_shape``, no batch dim) back
    to ``input_shape``. Dense -> Dense(out, in). Conv2D with stride 1 -> a convolution with
    padding k - 1 - p (the transposed convolution's shape); with stride s > 1 -> nearest
    upsampling by s, then a convolution whose kernel (k or k + 1) and padding restore the shape.

    Example:

        >>> from lamina import nn, pretrain
        >>> pretrain.make_decoder(nn.Dense(4, 3), (4,), (3,))
        [Dense(in_features=3, out_features=4, bias=True)]
    """
    from .nn import Conv2D, Dense

    acts = _output_activation(X, decoder_activation) if X is not None else []
    if isinstance(encoder_layer, Dense):
        return [Dense(encoder_layer.out_features, encoder_layer.in_features, init="xavier")] + acts
    if isinstance(encoder_layer, Conv2D):
        C, H, W = input_shape
        O, Ho, Wo = output_shape
        (kh, kw), (sh, sw) = encoder_layer.kernel_size, encoder_layer.stride
        ph, pw = encoder_layer.padding
        if encoder_layer.dilation != (1, 1):
            raise ValueError("greedy_autoencoder: dilated Conv2D encoders are not supported")
        if (sh, sw) == (1, 1):
            return [Conv2D(O, C, (kh, kw), padding=(kh - 1 - ph, kw - 1 - pw), init="xavier")] + acts
        if sh != sw:
            raise ValueError("greedy_autoencoder: a strided Conv2D encoder needs equal strides")

        def fit_dim(target, up, k):
            for kk in (k, k + 1):
                pad2 = target - up + kk - 1
                if pad2 >= 0 and pad2 % 2 == 0:
                    return kk, pad2 // 2
            raise ValueError(f"greedy_autoencoder: cannot build a decoder from {up} back to {target}")

        kkh, pph = fit_dim(H, sh * Ho, kh)
        kkw, ppw = fit_dim(W, sw * Wo, kw)
        return [Upsample2D(sh), Conv2D(O, C, (kkh, kkw), padding=(pph, ppw), init="xavier")] + acts
    raise ValueError(f"greedy_autoencoder: no decoder for {type(encoder_layer).__name__}; "
                     "pass decoder=callable(block, input_shape, output_shape) -> layers")


def _corrupt(X, noise, rng):
    """Masking noise: each input element is set to 0 with probability ``noise``."""
    keep = rng.random(X.shape, dtype=np.float32) >= noise
    return (X * keep).astype(X.dtype, copy=False)


# -- results ---------------------------------------------------------------------------------
class AutoencoderPretraining(NamedTuple):
    """``layers``: the pretrained layers (the caller's objects); ``history``: one dict per block
    with "block" (position), "type", "input_shape", "loss" (clean reconstruction MSE on the
    monitor set before training and after each epoch) and "train_loss" (per epoch).

    Example:

        >>> import numpy as np
        >>> from lamina import nn, pretrain
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> result = pretrain.greedy_autoencoder(nn.Sequential(nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2)), X, epochs=1,
        ...                                     monitor_size=32)
        >>> len(result.layers), len(result.history), sorted(result.history[0])[:3]
        (3, 2, ['block', 'input_shape', 'loss'])
    """

    layers: list
    history: list

    def model(self, *extra_layers):
        """A Sequential of the pretrained layers (the same objects, not copies) followed by
        ``extra_layers`` (e.g. a classifier head to fine-tune).

        Example:

            >>> from lamina import nn, pretrain
            >>> result = pretrain.AutoencoderPretraining(layers=[nn.Dense(4, 3), nn.ReLU()], history=[])
            >>> len(result.model(nn.Dense(3, 2)))
            3
        """
        from .nn import Sequential

        return Sequential(*self.layers, *extra_layers)


class SupervisedPretraining(NamedTuple):
    """``layers``: the pretrained stack; ``head``: the output layers of the last stage; ``history``:
    one dict per block with "loss" and "accuracy" per epoch of that stage.

    Example:

        >>> import numpy as np
        >>> from lamina import nn, pretrain
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> result = pretrain.greedy_supervised([nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 3), nn.ReLU()], X, y,
        ...                                     num_classes=2, epochs=1)
        >>> len(result.layers), len(result.head), len(result.history)
        (4, 1, 2)
    """

    layers: list
    head: list
    history: list

    def model(self):
        """A Sequential of the pretrained stack and the last stage's head (the same layer
        objects): the trained classifier.

        Example:

            >>> from lamina import nn, pretrain
            >>> result = pretrain.SupervisedPretraining(layers=[nn.Dense(4, 3), nn.ReLU()], head=[nn.Dense(3, 2)], history=[])
            >>> len(result.model())
            3
        """
        from .nn import Sequential

        return Sequential(*self.layers, *self.head)


def _iterate_blocks(layers, X, batch_size):
    """Yields (segment_index, block_layers, X_k) for each block, with X_k the block's input;
    after the caller trains the block the generator maps X_k through it (and through the
    fixed layers that follow) to get the next block's input."""
    segments = split_blocks(layers)
    X_cur = X
    for si, (kind, seg) in enumerate(segments):
        if kind == "fixed":
            if any(k == "block" for k, _ in segments[si + 1:]):
                X_cur = predict(seg, X_cur, batch_size)
            continue
        yield si, seg, X_cur
        if any(k == "block" for k, _ in segments[si + 1:]):
            X_cur = predict(seg, X_cur, batch_size)


def greedy_autoencoder(layers, X, epochs=5, lr=1e-3, batch_size=32, noise=0.0, optimizer="adam",
                       momentum=0.9, decoder=None, decoder_activation="auto", loss="mse",
                       monitor_size=2000, seed=0, verbose=0):
    """Unsupervised greedy layer-wise pretraining of ``layers`` (a list or a Sequential) on X.

    For each block: Sequential(block, decoder) is trained with ``loss`` (MSE, the talk's
    1/(2n) convention) to reconstruct the block's input, from a masked copy (each element zeroed
    with probability ``noise``, redrawn every epoch) when ``noise`` > 0. ``optimizer``: a name
    ("sgd" with ``momentum``, "adam") or a factory params -> Optimizer, made fresh for each
    block with rate ``lr``. ``decoder``: optional callable (block_layers, input_shape,
    output_shape) -> decoder layers. ``decoder_activation``: "auto" (a Sigmoid when the block's
    input lies in [0, 1], else linear), "sigmoid", "linear". Reconstruction loss is measured on
    the first ``monitor_size`` samples (clean input) before training and after every epoch.

    Returns AutoencoderPretraining(layers, history) (a named tuple).

    Example:

        >>> import numpy as np
        >>> from lamina import nn, pretrain
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> layers = [nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2)]
        >>> result = pretrain.greedy_autoencoder(layers, X, epochs=2, monitor_size=32)
        >>> result.layers[0] is layers[0], [len(h["loss"]) for h in result.history]   # before + after each epoch
        (True, [3, 3])
    """
    from . import losses
    from .nn import Sequential

    layers = layers_of(layers)
    dtype = model_dtype(Sequential(*layers))
    X = np.ascontiguousarray(X, dtype=dtype)
    loss_fn = losses.get(loss)
    rng = np.random.default_rng(seed)
    history = []
    for bi, (si, block, Xk) in enumerate(_iterate_blocks(layers, X, max(batch_size, 256))):
        in_shape = Xk.shape[1:]
        out_shape = predict(block, Xk[:1]).shape[1:]
        if decoder is not None:
            dec = list(decoder(block, in_shape, out_shape))
        else:
            dec = make_decoder(block[0], in_shape, out_shape, decoder_activation, X=Xk)
        dec_out = predict(dec, predict(block, Xk[:1])).shape[1:]
        if dec_out != in_shape:
            raise ValueError(f"greedy_autoencoder: the decoder of block {bi} maps {out_shape} to {dec_out}, "
                             f"not back to the input shape {in_shape}")
        for layer in dec:
            layer.astype(dtype)
        ae = Sequential(*block, *dec)
        opt = make_optimizer(optimizer, ae.parameters(), lr, momentum)
        monitor = Xk[:monitor_size]
        rec = [ae.evaluate(monitor, monitor, loss=loss_fn)[0]]
        train_loss = []
        for epoch in range(int(epochs)):
            Xin = _corrupt(Xk, noise, rng) if noise > 0 else Xk
            h = ae.fit(Xin, Xk, epochs=1, batch_size=batch_size, optimizer=opt, loss=loss_fn,
                       seed=int(rng.integers(2**31)), verbose=0)
            train_loss.append(h["loss"][-1])
            rec.append(ae.evaluate(monitor, monitor, loss=loss_fn)[0])
            if verbose:
                print(f"greedy_autoencoder: block {bi} ({type(block[0]).__name__}) epoch {epoch + 1}/{epochs}: "
                      f"reconstruction loss {rec[-1]:.5f}", flush=True)
        history.append({"block": bi, "type": type(block[0]).__name__, "input_shape": list(in_shape),
                        "output_shape": list(out_shape), "loss": rec, "train_loss": train_loss})
    return AutoencoderPretraining(layers, history)


def greedy_supervised(layers, X, y, num_classes, epochs=5, lr=0.1, batch_size=32, optimizer="sgd",
                      momentum=0.9, loss="cross_entropy", head=None, seed=0, verbose=0):
    """Supervised greedy layer-wise pretraining (Bengio et al. 2007) of ``layers`` on (X, y).

    Stage k trains block k (plus the fixed layers after it, e.g. pooling) with a fresh output
    head on the labels, with the earlier blocks fixed (their output is precomputed: the
    stage sees only X_k). ``head``: optional callable (feature_shape, num_classes) -> layers;
    by default [Flatten()] (for image features) + Dense(features, num_classes). ``optimizer``
    as in greedy_autoencoder, made fresh for each stage.

    Returns SupervisedPretraining(layers, head, history): the stack and the last stage's head,
    so ``Sequential(*layers, *head)`` is the trained classifier.

    Example:

        >>> import numpy as np
        >>> from lamina import nn, pretrain
        >>> X = np.random.default_rng(0).random((64, 4), dtype=np.float32); y = (X.sum(1) > 2).astype(np.int64)
        >>> result = pretrain.greedy_supervised([nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 3), nn.ReLU()], X, y,
        ...                                     num_classes=2, epochs=1)
        >>> result.model().predict(X[:5]).shape
        (5, 2)
    """
    from . import losses
    from .nn import Dense, Flatten, Sequential

    layers = layers_of(layers)
    dtype = model_dtype(Sequential(*layers))
    X = np.ascontiguousarray(X, dtype=dtype)
    loss_fn = losses.get(loss)
    rng = np.random.default_rng(seed)
    segments = split_blocks(layers)
    history = []
    last_head = []
    X_cur = X
    bi = 0
    for si, (kind, seg) in enumerate(segments):
        more = any(k == "block" for k, _ in segments[si + 1:])
        if kind == "fixed":
            if bi == 0 and more:  # fixed layers before the first block: just map the data
                X_cur = predict(seg, X_cur, max(batch_size, 256))
            continue
        # the stage's trunk: this block plus the fixed layers after it, up to the next block
        trunk = list(seg)
        for kind2, seg2 in segments[si + 1:]:
            if kind2 == "block":
                break
            trunk += seg2
        feat_shape = predict(trunk, X_cur[:1]).shape[1:]
        if head is not None:
            hd = list(head(feat_shape, num_classes))
        else:
            hd = ([Flatten()] if len(feat_shape) > 1 else []) + [Dense(math.prod(feat_shape), num_classes,
                                                                        init="xavier")]
        for layer in hd:
            layer.astype(dtype)
        stage = Sequential(*trunk, *hd)
        opt = make_optimizer(optimizer, stage.parameters(), lr, momentum)
        h = stage.fit(X_cur, y, epochs=epochs, batch_size=batch_size, optimizer=opt, loss=loss_fn,
                      seed=int(rng.integers(2**31)), verbose=0)
        if verbose:
            print(f"greedy_supervised: block {bi} ({type(seg[0]).__name__}): loss {h['loss'][-1]:.4f}, "
                  f"accuracy {h['accuracy'][-1]}", flush=True)
        history.append({"block": bi, "type": type(seg[0]).__name__, "loss": list(h["loss"]),
                        "accuracy": list(h["accuracy"])})
        last_head = hd
        bi += 1
        if more:
            X_cur = predict(trunk, X_cur, max(batch_size, 256))
    return SupervisedPretraining(layers, last_head, history)


__all__ = ["greedy_autoencoder", "greedy_supervised", "split_blocks", "make_decoder", "Upsample2D",
           "AutoencoderPretraining", "SupervisedPretraining"]
