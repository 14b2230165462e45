"""A custom layer: forward, backward and the cache between them, as the talk derives backprop.

``TiedAutoencoder`` maps x (N, F) to relu(x W^T) W, with ONE weight W (H, F) used twice (the
decoder is the encoder's transpose). Its backward is written out by hand, every product a
kernel of the layer's backend (so it runs on "native", "numpy" or any registered backend),
checked against finite differences, trained with fit, then saved and loaded like a built-in.

    python examples/custom_layer.py
"""
import os
import tempfile

import numpy as np

import lamina
from lamina import nn, optim


@nn.register_layer  # lets lamina.load rebuild it by its class name
class TiedAutoencoder(nn.Layer):
    _param_names = ("weight",)  # the attributes that hold Parameters

    def __init__(self, features, hidden):
        super().__init__()
        self.features, self.hidden = int(features), int(hidden)
        rng = np.random.default_rng(0)
        w = rng.normal(0, (1 / features) ** 0.5, (hidden, features)).astype(np.float32)
        self.weight = nn.Parameter(w, "weight")

    def forward(self, x, training=False):
        be = self._be()                                       # the backend: every operation is a kernel
        w = self.weight.data
        self._x = x                                           # cache for the backward: x (N, F)
        self._h = be.linear(x, w, activation="relu")          # h = relu(x W^T): (N, H)
        return be.matmul(self._h, w)                          # y = h W: (N, F)

    def _backward(self, grad, need_input_grad):
        """grad = dC/dy (N, F). Returns dC/dx (N, F) when asked; adds dC/dW (H, F) to weight.grad."""
        be = self._be()
        w = self.weight.data
        dh = be.matmul(grad, w, trans_b=True)                 # dC/dh = g W^T: (N, H)
        dz = be.relu_backward(dh, self._h)                    # through the ReLU: zero where h = 0
        if self.weight.trainable:
            # W is used twice, so its gradient has two terms: h^T g (decoder) + dz^T x (encoder).
            self.weight.accumulate_grad(be.matmul(self._h, grad, trans_a=True))
            self.weight.accumulate_grad(be.matmul(dz, self._x, trans_a=True))
        return be.matmul(dz, w) if need_input_grad else None  # dC/dx = dz W: (N, F)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):  # what save() stores and load() passes back to __init__
        return {"features": self.features, "hidden": self.hidden}


# 1. The gradient against central finite differences, in float64 on the NumPy backend.
layer = TiedAutoencoder(6, 4).to("numpy").astype(np.float64)
rng = np.random.default_rng(1)
x, g = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
layer.zero_grad()
layer.forward(x, training=True)
dx = layer.backward(g)
analytic = np.array(layer.weight.grad)
eps, numeric = 1e-6, np.zeros_like(analytic)
for idx in np.ndindex(*analytic.shape):
    w = layer.weight.data
    w[idx] += eps
    up = float(np.sum(layer.forward(x) * g))
    w[idx] -= 2 * eps
    down = float(np.sum(layer.forward(x) * g))
    w[idx] += eps
    numeric[idx] = (up - down) / (2 * eps)
print(f"dC/dW: largest difference from finite differences {np.max(np.abs(analytic - numeric)):.2e}")

# 2. Train it as an autoencoder of MNIST digits with fit (the MSE loss against the input).
X = lamina.datasets.load_mnist()[0][:1000 if os.environ.get("LAMINA_FAST") == "1" else 8000].reshape(-1, 784)
model = nn.Sequential(TiedAutoencoder(784, 64))
history = model.fit(X, X, epochs=3, batch_size=32, loss="mse",
                    optimizer=optim.Adam(model.parameters(), lr=1e-3), seed=0, verbose=0)
print("reconstruction loss per epoch: " + ", ".join(f"{v:.3f}" for v in history["loss"]))

# 3. Saved and loaded like any built-in layer.
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "tied.safetensors")
    lamina.save(model, path)
    again = lamina.load(path)
print(f"loaded: {again[0]!r}; same outputs: {np.array_equal(again.predict(X[:10]), model.predict(X[:10]))}")
