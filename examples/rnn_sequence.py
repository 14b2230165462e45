"""An Elman RNN (full backpropagation through time) on a sequence task: is the first number of a
noisy sequence larger than the last? The answer depends on both ends of the sequence, so the
network has to carry the first value through T steps of its hidden state.

Input x: (N, T, 1), the sequence; label: 1 if x[0] > x[T-1], else 0. RNN(1, 32) gives the last
hidden state h_T (N, 32), a Dense layer maps it to 2 logits.

    python examples/rnn_sequence.py
    LAMINA_FAST=1 python examples/rnn_sequence.py
"""
import os

import numpy as np

import lamina
from lamina import nn, optim

FAST = os.environ.get("LAMINA_FAST") == "1"
T = 10
N_TRAIN, EPOCHS = (2000, 5) if FAST else (8000, 20)


def make_data(n, rng):
    x = rng.uniform(-1, 1, (n, T, 1)).astype(np.float32)
    y = (x[:, 0, 0] > x[:, -1, 0]).astype(np.int64)
    return x, y


rng = np.random.default_rng(0)
X_train, y_train = make_data(N_TRAIN, rng)
X_test, y_test = make_data(2000, rng)

lamina.seed(0)
model = nn.Sequential(nn.RNN(1, 32, nonlinearity="tanh"), nn.Dense(32, 2))
model.compile(optimizer=optim.Adam(model.parameters(), lr=3e-3), loss="cross_entropy")
history = model.fit(X_train, y_train, epochs=EPOCHS, batch_size=32, validation_data=(X_test, y_test),
                    seed=0, verbose=0)
for epoch in range(0, EPOCHS, max(1, EPOCHS // 5)):
    print(f"epoch {epoch + 1:2d}: loss {history['loss'][epoch]:.4f}, "
          f"validation accuracy {history['val_accuracy'][epoch]:.1%}")
print(f"final: test accuracy {model.evaluate(X_test, y_test)[1]:.1%} (chance: 50%)")
