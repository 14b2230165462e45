"""Student-teacher training (the talk's last chapter): knowledge distillation (Hinton et al.
2015). A large teacher MLP is trained on MNIST; a small student learns from the teacher's
softened outputs (temperature 4) mixed with the labels, against the same student trained on
the labels alone.

    python examples/distillation.py
    LAMINA_FAST=1 python examples/distillation.py
"""
import os

import lamina
from lamina import distill, nn, optim
from lamina.datasets import load_mnist, train_test_split

FAST = os.environ.get("LAMINA_FAST") == "1"
N_TRAIN, EPOCHS = (2000, 2) if FAST else (8000, 10)

X, y = load_mnist()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=2000, shuffle=False)
X_train, y_train = X_train[:N_TRAIN].reshape(N_TRAIN, -1), y_train[:N_TRAIN]
X_test = X_test.reshape(len(X_test), -1)


def student():
    return nn.Sequential(nn.Dense(784, 32), nn.ReLU(), nn.Dense(32, 10))


lamina.seed(0)
teacher = nn.Sequential(nn.Dense(784, 512), nn.ReLU(), nn.Dense(512, 512), nn.ReLU(), nn.Dense(512, 10))
teacher.fit(X_train, y_train, epochs=EPOCHS, batch_size=64,
            optimizer=optim.SGD(teacher.parameters(), lr=0.05, momentum=0.9), seed=0, verbose=0)
print(f"teacher ({sum(p.size for p in teacher.parameters()):,} parameters): "
      f"test accuracy {teacher.evaluate(X_test, y_test)[1]:.1%}")

lamina.seed(1)
alone = student()
alone.fit(X_train, y_train, epochs=EPOCHS, batch_size=64,
          optimizer=optim.SGD(alone.parameters(), lr=0.05, momentum=0.9), seed=0, verbose=0)

lamina.seed(1)
taught = student()
distill.distill(teacher, taught, X_train, y_train, temperature=4.0, alpha=0.9, epochs=EPOCHS, batch_size=64,
                lr=0.05, seed=0)
print(f"student ({sum(p.size for p in taught.parameters()):,} parameters), test accuracy: "
      f"labels alone {alone.evaluate(X_test, y_test)[1]:.1%}, distilled {taught.evaluate(X_test, y_test)[1]:.1%}")
