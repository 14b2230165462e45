"""Transfer learning and fine-tuning (the talk's "transfer" chapter; Oquab et al. 2014).

Train LeNet-5 on the digits 0-4; reuse its convolutional layers, frozen, for the digits 5-9
with only a few labelled images per digit, training a new head; then fine-tune everything with
a 10x smaller learning rate below the head. Compared with the same network trained from scratch
on the same few images.

    python examples/transfer_learning.py
    LAMINA_FAST=1 python examples/transfer_learning.py
"""
import os

import numpy as np

import lamina
from lamina import nn, optim, transfer
from lamina.datasets import load_mnist, train_test_split
from lamina.models import lenet5

FAST = os.environ.get("LAMINA_FAST") == "1"
PER_DIGIT = 20   # labelled images per target digit
EPOCHS = 2 if FAST else 8

X, y = load_mnist()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=2000, shuffle=False)
source = y_train < 5
target_test = y_test >= 5

# Few labelled images of each target digit, relabelled 0..4.
rng = np.random.default_rng(0)
few = np.concatenate([rng.choice(np.flatnonzero(y_train == d), PER_DIGIT, replace=False) for d in range(5, 10)])
X_few, y_few = X_train[few], y_train[few] - 5
X_t, y_t = X_test[target_test], y_test[target_test] - 5

lamina.seed(0)
source_model = lenet5(num_classes=5)
n_source = 2000 if FAST else int(source.sum())
source_model.fit(X_train[source][:n_source], y_train[source][:n_source], epochs=EPOCHS, batch_size=64,
                 optimizer=optim.SGD(source_model.parameters(), lr=0.05, momentum=0.9), seed=0, verbose=0)
print(f"source task (digits 0-4): test accuracy {source_model.evaluate(X_test[~target_test], y_test[~target_test])[1]:.1%}")

# Keep the feature extractor (conv, pool, conv, pool, flatten: the first 7 layers), frozen.
model = transfer.transfer(source_model, keep=7, head=[nn.Dense(400, 84), nn.ReLU(), nn.Dense(84, 5)])
trainable, total = transfer.count_parameters(model)
print(f"transferred model: {trainable:,} of {total:,} parameters trainable (the head)")
model.fit(X_few, y_few, epochs=4 * EPOCHS, batch_size=20,
          optimizer=optim.SGD(model.parameters(), lr=0.05, momentum=0.9), seed=0, verbose=0)
frozen_acc = model.evaluate(X_t, y_t)[1]

transfer.fine_tune(model, lr_scale=0.1)   # unfreeze the transferred layers at 0.1x the rate
model.fit(X_few, y_few, epochs=2 * EPOCHS, batch_size=20,
          optimizer=optim.SGD(model.parameters(), lr=0.02, momentum=0.9), seed=1, verbose=0)
tuned_acc = model.evaluate(X_t, y_t)[1]

lamina.seed(0)
scratch = lenet5(num_classes=5)
scratch.fit(X_few, y_few, epochs=6 * EPOCHS, batch_size=20,
            optimizer=optim.SGD(scratch.parameters(), lr=0.05, momentum=0.9), seed=0, verbose=0)
scratch_acc = scratch.evaluate(X_t, y_t)[1]

print(f"digits 5-9 from {PER_DIGIT} labels each (test accuracy on {len(y_t)} images):")
print(f"  from scratch                   {scratch_acc:.1%}")
print(f"  frozen transferred features    {frozen_acc:.1%}")
print(f"  after fine-tuning              {tuned_acc:.1%}")
