"""Greedy layer-wise pretraining (the talk's "pretraining" chapter; Hinton 2006, Bengio 2007).

A deep sigmoid MLP with only a few labels: trained from random weights, against the same
network whose hidden layers were first pretrained one at a time as autoencoders on unlabelled
images (pretrain.greedy_autoencoder), then fine-tuned on the labels.

    python examples/greedy_pretraining.py
    LAMINA_FAST=1 python examples/greedy_pretraining.py
"""
import os

import lamina
from lamina import nn, optim, pretrain
from lamina.datasets import load_mnist, train_test_split

FAST = os.environ.get("LAMINA_FAST") == "1"
N_UNLABELLED, N_LABELLED, EPOCHS = (2000, 200, 3) if FAST else (8000, 500, 10)

X, y = load_mnist()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=2000, shuffle=False)
X_train, X_test = X_train.reshape(len(X_train), -1), X_test.reshape(len(X_test), -1)   # (N, 784)


def hidden_layers():
    return [nn.Dense(784, 256, init="xavier"), nn.Sigmoid(),
            nn.Dense(256, 64, init="xavier"), nn.Sigmoid()]


def train_classifier(layers, seed):
    model = nn.Sequential(*layers, nn.Dense(64, 10, init="xavier"))
    model.fit(X_train[:N_LABELLED], y_train[:N_LABELLED], epochs=10 * EPOCHS, batch_size=20,
              optimizer=optim.SGD(model.parameters(), lr=0.1, momentum=0.9), seed=seed, verbose=0)
    return model.evaluate(X_test, y_test)[1]


lamina.seed(0)
scratch = train_classifier(hidden_layers(), seed=0)

lamina.seed(0)
layers = hidden_layers()
result = pretrain.greedy_autoencoder(layers, X_train[:N_UNLABELLED], epochs=EPOCHS, lr=1e-3, batch_size=32)
for block in result.history:
    print(f"block {block['block']} ({block['type']}): reconstruction loss "
          f"{block['loss'][0]:.4f} -> {block['loss'][-1]:.4f}")
pretrained = train_classifier(result.layers, seed=0)

print(f"{N_LABELLED} labels, test accuracy: from random weights {scratch:.1%}, "
      f"after greedy autoencoder pretraining on {N_UNLABELLED} unlabelled images {pretrained:.1%}")
