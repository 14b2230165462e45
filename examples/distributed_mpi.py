"""Data-parallel training on MPI: every rank runs this same script on its share of each batch;
the gradients are averaged with one Allreduce per step, so N ranks reach the weights one process
reaches with the same global batch (up to float32 summation order).

    pip install "lamina[mpi]"
    mpiexec -n 2 python examples/distributed_mpi.py
    python examples/distributed_mpi.py              # one rank: the same result, without MPI
    LAMINA_FAST=1 mpiexec -n 2 python examples/distributed_mpi.py

Rank 0 prints the log and the test accuracy, and writes distributed.safetensors.
"""
import os

import lamina
from lamina import distributed, optim
from lamina.datasets import load_mnist, train_test_split
from lamina.models import lenet5

FAST = os.environ.get("LAMINA_FAST") == "1"

rank, world = distributed.init()       # (0, 1) outside mpiexec; needs mpi4py either way
lamina.set_num_threads(max(1, (os.cpu_count() or 1) // world))   # the ranks of one machine share its cores

X, y = load_mnist()                    # every rank loads the same data; fit picks each rank's rows
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=2000, shuffle=False)
if FAST:
    X_train, y_train = X_train[:1024], y_train[:1024]

lamina.seed(0)                         # (rank 0's initial weights are broadcast to every rank anyway)
model = lenet5()
history = model.fit(X_train, y_train, epochs=1 if FAST else 5, batch_size=128,   # 128 = the global batch
                    optimizer=optim.SGD(model.parameters(), lr=0.05, momentum=0.9), seed=0,
                    verbose=2 if rank == 0 else 0, distributed=True)
loss, accuracy = model.evaluate(X_test, y_test)      # every rank holds the same weights
if rank == 0:
    print(f"{world} rank(s), global batch 128: test accuracy {accuracy:.1%}")
    lamina.save(model, "distributed.safetensors")
