"""lamina.backend: the kernel namespaces, the default and its context manager."""
import numpy as np
import pytest

import lamina
from lamina import backend


def test_both_backends_provide_every_kernel():
    for name in ("native", "numpy"):
        be = backend.get_backend(name)
        missing = [k for k in backend.KERNELS if not callable(getattr(be, k, None))]
        assert not missing, f"{name} lacks {missing}"
        assert be.device == "cpu" and be.name == name
        assert isinstance(be.empty((2, 3), np.float32), np.ndarray)
    assert backend.supports(backend.get_backend("numpy"), np.float64)
    assert not backend.supports(backend.get_backend("native"), np.float64)


def test_native_resolves_every_kernel_from_ops():
    be = backend.get_backend("native")
    assert be.linear is lamina.ops.linear and be.matmul is lamina.ops.matmul
    for k in backend.KERNELS:
        assert getattr(be, k) is getattr(lamina.ops, k)
        assert getattr(backend.get_backend("numpy"), k) is getattr(lamina.reference, k)


def test_host_array_functions_copy_only_when_needed():
    be = backend.get_backend("native")
    a = np.ones((3, 4), np.float32)
    assert be.asarray(a) is a and be.to_numpy(a) is a
    t = be.asarray(a.T)
    assert t.flags.c_contiguous and np.array_equal(t, a.T)
    assert be.asarray([1, 2], dtype=np.float32).dtype == np.float32
    assert backend.backend_of(a).name == "native"
    assert backend.backend_of(a.astype(np.float64)).name == "numpy"
    with pytest.raises(TypeError, match="not an array of any registered"):
        backend.backend_of([1.0])


def test_default_and_context_manager():
    assert backend.current().name == "native"
    with lamina.use_backend("numpy") as be:
        assert be.name == "numpy" and backend.current() is be
        with lamina.use_backend(backend.get_backend("native")):
            assert backend.current().name == "native"
        assert backend.current().name == "numpy"
    assert backend.current().name == "native"
    lamina.set_backend("numpy")
    try:
        assert lamina.get_backend().name == "numpy"
    finally:
        lamina.set_backend("native")


def test_errors():
    with pytest.raises(ValueError, match="unknown backend 'cuda9'"):
        backend.get_backend("cuda9")
    with pytest.raises(AttributeError, match="no kernel 'fft'"):
        backend.get_backend("numpy").fft


def test_layers_follow_the_default_or_their_pin(rng):
    layer = lamina.nn.Dense(3, 2)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    assert layer._be().name == "native"
    with lamina.use_backend("numpy"):
        assert layer._be().name == "numpy"
        layer.to("native")
        assert layer._be().name == "native"
    layer.to(None)
    assert layer._be().name == "native"
    np.testing.assert_allclose(layer.forward(x), x @ layer.weight.data.T, rtol=1e-5, atol=1e-6)


def test_import_is_light():
    import subprocess
    import sys
    code = "import sys, lamina; print(sorted(m for m in ('lamina.nn', 'tqdm', 'safetensors', 'lamina.io') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()
    assert out == "[]"
