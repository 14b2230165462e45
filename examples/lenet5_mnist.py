"""LeNet-5 on MNIST: build it from layers, train with fit, evaluate, save, load and predict.

    python examples/lenet5_mnist.py                 # the bundled 10,000-image sample, 10 epochs
    python examples/lenet5_mnist.py --data DIR      # full MNIST / Fashion-MNIST IDX files in DIR
    LAMINA_FAST=1 python examples/lenet5_mnist.py   # 1 epoch on 2,000 images (what CI runs)

Prints the per-epoch log, the test accuracy, a confusion count of the most confused digits, and
saves lenet5.safetensors and (with matplotlib) lenet5_curves.png in the current folder.
"""
import argparse
import os

import numpy as np

import lamina
from lamina import nn, optim
from lamina.datasets import load_mnist, train_test_split

FAST = os.environ.get("LAMINA_FAST") == "1"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", help="a folder with MNIST IDX files (default: the bundled sample)")
parser.add_argument("--epochs", type=int, default=1 if FAST else 10)
args = parser.parse_args()

# Images are NCHW float32 in [0, 1]; labels are integer class indices (not one-hot).
X, y = load_mnist(args.data)
if args.data is None:  # the bundled sample: its first 8,000 images train, the last 2,000 test
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=2000, shuffle=False)
else:
    X_train, y_train = load_mnist(args.data, split="train")
    X_test, y_test = load_mnist(args.data, split="test")
if FAST:
    X_train, y_train, X_test, y_test = X_train[:2000], y_train[:2000], X_test[:500], y_test[:500]

lamina.seed(0)  # the same initial weights on every run
model = nn.Sequential(
    nn.Conv2D(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2D(2),   # 6 x 28 x 28 -> 6 x 14 x 14
    nn.Conv2D(6, 16, 5), nn.ReLU(), nn.MaxPool2D(2),             # 16 x 10 x 10 -> 16 x 5 x 5
    nn.Flatten(),                                                # 400 features
    nn.Dense(400, 120), nn.ReLU(),
    nn.Dense(120, 84), nn.ReLU(),
    nn.Dense(84, 10),                                            # logits: the loss applies softmax
)
model.summary(input_shape=(1, 28, 28))

opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
model.compile(optimizer=opt, loss="cross_entropy", metrics=["accuracy"])
schedule = optim.CosineLR(opt, T_max=args.epochs)  # a callback: steps the learning rate each epoch
history = model.fit(X_train, y_train, epochs=args.epochs, batch_size=64, validation_data=(X_test, y_test),
                    callbacks=[schedule], seed=0, verbose=2)

loss, accuracy = model.evaluate(X_test, y_test)
print(f"test loss {loss:.4f}, test accuracy {accuracy:.2%}")

# Which digits are confused most often?
predicted = model.predict(X_test).argmax(axis=1)
pairs = np.zeros((10, 10), dtype=int)
np.add.at(pairs, (y_test, predicted), 1)
np.fill_diagonal(pairs, 0)
for k in np.argsort(pairs, axis=None)[::-1][:3]:
    true, guess = divmod(int(k), 10)
    print(f"  {true} taken for {guess}: {pairs[true, guess]} times")

lamina.save(model, "lenet5.safetensors")
restored = lamina.load("lenet5.safetensors")
assert np.array_equal(restored.predict(X_test[:100]), model.predict(X_test[:100]))
print("saved lenet5.safetensors; the loaded copy predicts the same")

try:
    from lamina import plot
    plot.training_curves({"LeNet-5": history}, path="lenet5_curves.png")
    print("wrote lenet5_curves.png")
except ImportError:
    print("(matplotlib is not installed: no plot)")
