"""Vanishing gradients: in a deep sigmoid network started from N(0, 1) weights, the first layers
learn much more slowly than the last (the talk's "speed of learning", ||dC/db|| per layer).

Two 784-30-30-30-30-10 networks on MNIST: sigmoid with N(0, 1) weights and biases, and ReLU
with He initialisation. The gradient norm of every layer is recorded on a fixed probe set before
training and after every epoch (diagnostics.GradientNormRecorder), printed, and plotted to
vanishing_gradients.png (with matplotlib).

    python examples/vanishing_gradients.py
    LAMINA_FAST=1 python examples/vanishing_gradients.py
"""
import os

import lamina
from lamina import nn, optim
from lamina.datasets import load_mnist, train_test_split
from lamina.diagnostics import GradientNormRecorder

FAST = os.environ.get("LAMINA_FAST") == "1"
N_TRAIN, EPOCHS = (1000, 2) if FAST else (8000, 8)

X, y = load_mnist()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=2000, shuffle=False)
X_train, y_train = X_train[:N_TRAIN].reshape(N_TRAIN, -1), y_train[:N_TRAIN]   # (N, 784)
X_test = X_test.reshape(len(X_test), -1)


def network(activation, weight_init, bias_init):
    sizes = [784, 30, 30, 30, 30, 10]
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Dense(n_in, n_out, init=weight_init, bias_init=bias_init))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


recorders = {}
for name, activation, w_init, b_init in [("sigmoid, N(0,1)", nn.Sigmoid, "normal", "normal"),
                                          ("ReLU, He", nn.ReLU, "he", "zeros")]:
    lamina.seed(0)
    model = network(activation, w_init, b_init)
    rec = GradientNormRecorder(X_train[:500], y_train[:500])
    model.fit(X_train, y_train, epochs=EPOCHS, batch_size=10, optimizer=optim.SGD(model.parameters(), lr=0.1),
              callbacks=[rec], seed=0, verbose=0)
    recorders[name] = rec
    norms = [row["bias"] for row in rec.records[0]["layers"]]
    print(f"{name}: test accuracy {model.evaluate(X_test, y_test)[1]:.1%}")
    print("  ||dC/db|| per layer at initialisation: " + ", ".join(f"{v:.4f}" for v in norms))
    print(f"  hidden 1 / hidden 4: {norms[0] / norms[3]:.3f}  (1 = equal speed; much less: the first layer lags)")

try:
    from lamina import plot
    plot.gradient_norms(recorders, path="vanishing_gradients.png")
    print("wrote vanishing_gradients.png")
except ImportError:
    print("(matplotlib is not installed: no plot)")
