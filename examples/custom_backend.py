"""A custom backend: any object with the kernels of lamina.backend.KERNELS (the signatures of
lamina.reference), ``name``, ``device``, ``dtypes`` and four array functions. Here, a profiling
backend that wraps the native kernels, counts every call and times it; a model moved onto it
trains unchanged, and the table shows where a LeNet-5 training step spends its time.

    python examples/custom_backend.py
"""
import os
import time
from collections import defaultdict

from lamina import backend, optim
from lamina.datasets import load_mnist
from lamina.models import lenet5

native = backend.get_backend("native")
calls, seconds = defaultdict(int), defaultdict(float)


def timed(name, kernel):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return kernel(*args, **kwargs)
        finally:
            calls[name] += 1
            seconds[name] += time.perf_counter() - t0
    return wrapper


# Backend supplies host-NumPy empty/zeros/asarray/to_numpy; the kernels are ours.
kernels = {name: timed(name, getattr(native, name)) for name in backend.KERNELS + backend.OPTIONAL_KERNELS}
profiling = backend.Backend("profiling", "cpu", native.dtypes, kernels)
backend.check_backend(profiling)            # what register_backend checks: every kernel, every signature
backend.register_backend(profiling)

X, y = load_mnist()
n = 640 if os.environ.get("LAMINA_FAST") == "1" else 6400
model = lenet5().to("profiling")            # the parameters move; every layer now calls our kernels
model.fit(X[:n], y[:n], epochs=1, batch_size=64, optimizer=optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
          seed=0, verbose=0)

steps = n // 64
total = sum(seconds.values())
print(f"{steps} training steps on backend {model.layers[0].backend.name!r}: "
      f"{total / steps * 1e6:,.0f} us of kernels per step")
print(f"{'kernel':28s} {'calls/step':>10s} {'us/step':>9s} {'share':>6s}")
for name in sorted(seconds, key=seconds.get, reverse=True)[:10]:
    print(f"{name:28s} {calls[name] / steps:10.1f} {seconds[name] / steps * 1e6:9.0f} {seconds[name] / total:6.1%}")
