"""Ready-made models: LeNet-5 and the MLP of the benchmarks and the ``lamina train`` command."""
from __future__ import annotations

from .nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential


def lenet5(num_classes=10, in_channels=1):
    """LeNet-5 for 28x28 inputs (ReLU, max-pool): conv 6@5x5 pad 2, ReLU, maxpool 2, conv 16@5x5,
    ReLU, maxpool 2, dense 400-120-84-num_classes (61,706 parameters for 10 classes)."""
    return Sequential(
        Conv2D(in_channels, 6, 5, padding=2), ReLU(), MaxPool2D(2),
        Conv2D(6, 16, 5), ReLU(), MaxPool2D(2),
        Flatten(),
        Dense(400, 120), ReLU(),
        Dense(120, 84), ReLU(),
        Dense(84, num_classes),
    )


def mlp(in_features=784, hidden=(100,), num_classes=10):
    """Flatten, then Dense + ReLU per hidden size, then Dense to num_classes (784-100-10 by default)."""
    if isinstance(hidden, int):
        hidden = (hidden,)
    layers, n = [Flatten()], in_features
    for h in hidden:
        layers += [Dense(n, h), ReLU()]
        n = h
    layers.append(Dense(n, num_classes))
    return Sequential(*layers)


MODELS = {"lenet5": lenet5, "mlp": mlp}
