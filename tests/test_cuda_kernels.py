"""The CUDA backends' kernels: every kernel against lamina.reference (the opcheck tables run
them too, with their shapes), the spare arrays of the kept optimiser steps, every GEMM edge tile
and path, the reference's errors and signatures, and models trained step for step like the numpy
backend, on "cuda_emu" (the CUDA sources on lamina's emulator of the execution model) and, where
a GPU is usable, on "cuda"."""
import numpy as np
import pytest

import lamina
from lamina import backend, nn, optim, reference as ref
import lamina.cuda as lcuda
import importlib
_ref_dropout = importlib.import_module("lamina.reference.dropout")

GPU = lcuda.is_available()
EMU = lcuda.emu_built()

BACKENDS = ["cuda_emu"] + (["cuda"] if GPU else [])


def _backend(name):
    if name == "cuda_emu" and not EMU:
        pytest.skip("lamina was built without the CUDA emulator (LAMINA_CUDA_EMU=OFF)")
    return backend.get_backend(name)


# -- every kernel against the reference -------------------------------------------------------
def _to(be, v):
    if isinstance(v, np.ndarray):
        return be.asarray(v)
    if isinstance(v, tuple):
        return tuple(_to(be, u) for u in v)
    return v


def _back(be, v):
    if isinstance(v, lcuda.Array):
        return be.to_numpy(v)
    if isinstance(v, tuple):
        return tuple(_back(be, u) for u in v)
    return v


def _close(got, want, rtol=2e-5, atol=2e-6, name=""):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), name
        for g, w in zip(got, want):
            _close(g, w, rtol, atol, name)
    elif want is None:
        assert got is None, name
    elif isinstance(want, (bool, np.bool_)):
        assert got == want, name
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=rtol, abs=atol, nan_ok=True), name
    else:
        assert got.shape == want.shape and got.dtype == want.dtype, (name, got.shape, want.shape, got.dtype, want.dtype)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)


def _cases(rng):
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    x44 = f(3, 4, 9, 11)
    lab = rng.integers(0, 10, 37)
    prob = rng.uniform(0, 1, (5, 7)).astype(np.float32)
    prob[0, 0], prob[1, 1] = 0.0, 1.0
    xmp = f(2, 3, 10, 9)
    xmp[0, 0, 0, 0] = np.nan
    xmp[1, 2, :2, :2] = -np.inf
    y_pool, idx_pool = ref.max_pool2d(f(2, 3, 8, 7), 3, 2, 1)
    cases = [
        ("matmul", (f(7, 5), f(5, 9)), {}), ("matmul", (f(5, 7), f(5, 9)), {"trans_a": True}),
        ("matmul", (f(7, 5), f(9, 5)), {"trans_b": True}),
        ("matmul", (f(65, 33), f(70, 65)), {"trans_a": True, "trans_b": True}),
        ("linear", (f(6, 13), f(17, 13), f(17)), {}), ("linear", (f(6, 13), f(17, 13)), {"activation": "relu"}),
        ("linear", (f(6, 13), f(17, 13), f(17)), {"activation": "relu"}),
        ("conv2d", (x44, f(5, 4, 3, 3), f(5)), {}),
        ("conv2d", (x44, f(5, 4, 3, 2)), {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2),
                                          "activation": "relu"}),
        ("conv2d", (f(2, 3, 6, 6), f(4, 3, 1, 1), f(4)), {}),
        ("conv2d_backward", (x44, f(5, 4, 3, 3), f(3, 5, 7, 9)), {}),
        ("conv2d_backward", (x44, f(5, 4, 3, 2), f(3, 5, 5, 13)), {"stride": (2, 1), "padding": (1, 2),
                                                                  "dilation": (1, 2)}),
        ("conv2d_backward", (x44, f(5, 4, 3, 3), f(3, 5, 7, 9)), {"compute_grad_x": False}),
        ("max_pool2d", (xmp, 2), {}), ("max_pool2d", (xmp, 3), {"stride": 2, "padding": 1}),
        ("max_pool2d", (xmp, (3, 2)), {"stride": (1, 2)}),
        ("max_pool2d_backward", (f(*y_pool.shape), idx_pool, (2, 3, 8, 7)), {}),
        ("avg_pool2d", (xmp[:, :, 1:, :], 2), {}), ("avg_pool2d", (f(2, 3, 10, 9), 3), {"stride": 2, "padding": 1}),
        ("avg_pool2d_backward", (f(2, 3, 5, 5), (2, 3, 10, 9), 3), {"stride": 2, "padding": 1}),
        ("avg_pool2d_backward", (f(2, 3, 5, 4), (2, 3, 10, 9), 2), {}),
        ("upsample_nearest2d", (f(2, 3, 4, 5), 3), {}), ("upsample_nearest2d_backward", (f(2, 3, 6, 8), 2), {}),
        ("relu", (f(50),), {}), ("relu_backward", (f(50), f(50)), {}), ("sigmoid", (f(50) * 30,), {}),
        ("sigmoid_backward", (f(50), ref.sigmoid(f(50))), {}), ("tanh", (f(50) * 3,), {}),
        ("tanh_backward", (f(50), np.tanh(f(50))), {}), ("leaky_relu", (f(50),), {"slope": 0.2}),
        ("leaky_relu_backward", (f(50), f(50)), {"slope": 0.2}),
        ("softmax", (f(6, 10),), {}), ("softmax", (f(3, 4, 5),), {"axis": 1}),
        ("log_softmax", (f(6, 10) * 50,), {}), ("log_softmax", (f(3, 4, 5),), {"axis": 0}),
        ("softmax_backward", (f(6, 10), ref.softmax(f(6, 10))), {}),
        ("softmax_backward", (f(3, 4, 5), ref.softmax(f(3, 4, 5), axis=1)), {"axis": 1}),
        ("softmax_cross_entropy", (f(37, 10) * 5, lab), {}),
        ("softmax_cross_entropy", (f(37, 10) * 5, lab.astype(np.int32)), {}),
        ("mse", (f(8, 3), f(8, 3)), {}), ("binary_cross_entropy", (prob, (prob > 0.5).astype(np.float32)), {}),
        ("dropout", (f(1000), 0.3, 2**64 - 5), {}), ("dropout", (f(17, 3), 0.0, 7), {}),
        ("dropout_backward", (f(100), _ref_dropout.dropout_mask((100,), 0.4, 3), 0.4), {}),
        ("copy", (f(4, 5),), {}), ("transpose", (f(3, 4, 5), (2, 0, 1)), {}),
        ("transpose", ((rng.integers(0, 9, (3, 4))).astype(np.int64), (1, 0)), {}),
        ("add", (f(30), f(30)), {"alpha": -0.5}), ("scale", (f(30), 3.0), {}),
        ("gather_rows", (f(10, 3, 2), np.array([9, 0, 3, 3], np.int64)), {}),
        ("gather_rows", (rng.integers(0, 9, (10,)).astype(np.int64), np.array([1, 2], np.int32)), {}),
        ("argmax", (f(7, 9),), {}), ("argmax", (f(3, 4, 5),), {"axis": 1}),
        ("argmax", (np.array([[1, np.nan, 3], [2, 2, 1]], np.float32),), {}),
        ("all_finite", (f(100),), {}), ("all_finite", (np.array([1, np.inf], np.float32),), {}),
        ("dot", (f(1000), f(1000)), {}),
    ]
    return cases


_SUMS_OF_PRODUCTS = {"matmul", "linear", "linear_backward", "conv2d", "conv2d_backward"}


@pytest.mark.parametrize("be_name", BACKENDS)
def test_every_kernel_matches_the_reference(be_name, rng):
    be = _backend(be_name)
    seen = set()
    for name, args, kw in _cases(rng):
        seen.add(name)
        want = getattr(ref, name)(*args, **kw)
        got = _back(be, getattr(be, name)(*_to(be, args), **kw))
        if name in _SUMS_OF_PRODUCTS:  # a tiled / split-K order of summation: the error scales with the terms
            scale = max(float(np.max(np.abs(w))) for w in (want if isinstance(want, tuple) else (want,))
                        if isinstance(w, np.ndarray) and w.size)
            _close(got, want, atol=2e-6 * scale, name=f"{name} {kw}")
            continue
        if name == "dropout":  # the mask bit for bit, the values exactly
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(got[0], want[0])
        _close(got, want, name=f"{name} {kw}")
    # in-place kernels
    for name in ("sgd_step", "adam_step", "fill"):
        seen.add(name)
    p, g, v = (rng.standard_normal((5, 4)).astype(np.float32) for _ in range(3))
    for kw in ({}, {"momentum": 0.9, "weight_decay": 0.1}, {"momentum": 0.9, "nesterov": True}):
        rp, rv = p.copy(), v.copy()
        ref.sgd_step(rp, g, 0.1, velocity=rv if kw else None, **kw)
        dp, dv = be.asarray(p), be.asarray(v)
        be.sgd_step(dp, be.asarray(g), 0.1, velocity=dv if kw else None, **kw)
        _close(be.to_numpy(dp), rp)
        _close(be.to_numpy(dv), rv)
    m, v2 = np.abs(p), np.abs(v)
    for kw in ({}, {"weight_decay": 0.1}, {"weight_decay": 0.1, "decoupled": True}):
        rp, rm, rv = p.copy(), m.copy(), v2.copy()
        ref.adam_step(rp, g, rm, rv, 1e-2, 3, **kw)
        dp, dm, dv = be.asarray(p), be.asarray(m), be.asarray(v2)
        be.adam_step(dp, be.asarray(g), dm, dv, 1e-2, 3, **kw)
        for a, b in ((dp, rp), (dm, rm), (dv, rv)):
            _close(be.to_numpy(a), b)
    x = be.asarray(p)
    be.fill(x[1:3, ::2], 2.5)
    want = p.copy()
    want[1:3, ::2] = 2.5
    np.testing.assert_array_equal(be.to_numpy(x), want)
    assert seen == set(backend.KERNELS), set(backend.KERNELS) - seen


@pytest.mark.parametrize("be_name", BACKENDS)
def test_kept_optimiser_steps_write_the_spare_arrays(be_name, rng):
    be = _backend(be_name)
    p, g, v = (rng.standard_normal(9).astype(np.float32) for _ in range(3))
    dp, dv, po, vo = be.asarray(p), be.asarray(v), be.zeros((9,)), be.zeros((9,))
    be.sgd_step(dp, be.asarray(g), 0.1, velocity=dv, momentum=0.9, param_out=po, velocity_out=vo)
    rp, rv = p.copy(), v.copy()
    ref.sgd_step(rp, g, 0.1, velocity=rv, momentum=0.9)
    _close(be.to_numpy(po), rp)
    _close(be.to_numpy(vo), rv)
    np.testing.assert_array_equal(be.to_numpy(dp), p)  # the old arrays stay
    np.testing.assert_array_equal(be.to_numpy(dv), v)


@pytest.mark.parametrize("be_name", BACKENDS)
def test_bigger_shapes_and_every_gemm_edge(be_name, rng):
    """Sizes around the tiles (16, 64, 128) so every edge tile and the split-K path are hit."""
    be = _backend(be_name)
    sizes = [1, 15, 17, 63, 65, 129]
    for M in sizes:
        for N in sizes:
            for K in (1, 16, 33, 700):
                for ta, tb in ((False, False), (True, False), (False, True)):
                    a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
                    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
                    got = be.to_numpy(be.matmul(be.asarray(a), be.asarray(b), trans_a=ta, trans_b=tb))
                    want = ref.matmul(a.astype(np.float64), b.astype(np.float64), ta, tb)
                    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(K), err_msg=str((M, N, K)))
    x = rng.standard_normal((4, 3, 28, 28)).astype(np.float32)
    w = rng.standard_normal((6, 3, 5, 5)).astype(np.float32)
    gy = rng.standard_normal((4, 6, 24, 24)).astype(np.float32)
    _close(_back(be, be.conv2d_backward(be.asarray(x), be.asarray(w), be.asarray(gy))),
           ref.conv2d_backward(x, w, gy), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("be_name", BACKENDS)
def test_bad_inputs_are_the_references_errors(be_name, rng):
    be = _backend(be_name)
    logits = be.asarray(rng.standard_normal((4, 3)).astype(np.float32))
    with pytest.raises(ValueError, match=r"labels\[2\] = 3 is out of range \[0, 3\)"):
        be.softmax_cross_entropy(logits, be.asarray(np.array([0, 1, 3, 0])))
    with pytest.raises(TypeError, match="integer"):
        be.softmax_cross_entropy(logits, be.asarray(np.zeros(4, np.float32)))
    y, idx = be.max_pool2d(be.asarray(rng.standard_normal((1, 1, 4, 4)).astype(np.float32)), 2)
    bad = be.to_numpy(idx)
    bad[0, 0, 1, 0] = 16
    with pytest.raises(ValueError, match=r"indices\[0, 0, 1, 0\] = 16 is out of range"):
        be.max_pool2d_backward(y, be.asarray(bad), (1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"indices\[1\] = 5 is out of range \[0, 3\)"):
        be.gather_rows(be.zeros((3, 2)), be.asarray(np.array([0, 5])))
    with pytest.raises(ValueError, match="inner dimensions"):
        be.matmul(be.zeros((2, 3)), be.zeros((2, 3)))
    with pytest.raises(TypeError, match="lamina.cuda.Array"):
        be.relu(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="float32"):
        be.relu(be.zeros((3,), np.int64))
    with pytest.raises(ValueError, match="out has shape"):
        be.relu(be.zeros((3,)), out=be.zeros((4,)))
    with pytest.raises(ValueError, match="p must be in"):
        be.dropout(be.zeros((3,)), 1.0, 0)
    out = be.zeros((2, 4))
    x = be.asarray(rng.standard_normal((2, 8)).astype(np.float32))
    be.relu(x[:, ::2], out=out)  # strided input, contiguous out
    np.testing.assert_array_equal(be.to_numpy(out), np.maximum(be.to_numpy(x)[:, ::2], 0))
    big = be.zeros((3, 8))
    be.copy(x, out=big[1:, :])  # strided out (a view)
    np.testing.assert_array_equal(be.to_numpy(big)[1:], be.to_numpy(x))
    be.add(x, x, out=x)  # out is an input
    assert be.to_numpy(x)[0, 0] == pytest.approx(2 * be.to_numpy(big)[1, 0])


@pytest.mark.parametrize("be_name", BACKENDS)
def test_signatures_are_the_references(be_name):
    import inspect
    be = _backend(be_name)
    for k in backend.KERNELS:
        assert inspect.signature(getattr(be, k)) == inspect.signature(getattr(ref, k)), k
    assert be.dtypes == (np.dtype(np.float32),)
    assert be.name == be_name and be.device == ("cuda:0" if be_name == "cuda" else "cuda_emu:0")


# -- models train on it -----------------------------------------------------------------------
def _lenet():
    return nn.Sequential(
        nn.Conv2D(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(6, 16, 5), nn.Tanh(), nn.AvgPool2D(2) if hasattr(nn, "AvgPool2D") else nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(400, 120), nn.ReLU(), nn.Dropout(0.3, seed=3),
        nn.Dense(120, 84), nn.Sigmoid(), nn.Dense(84, 10))


def _steps(be_name, opt_name, X, y, steps=6, bs=16):
    lamina.seed(5)
    model = _lenet().to(be_name)
    params = model.parameters()
    opt = optim.SGD(params, lr=0.05, momentum=0.9) if opt_name == "sgd" else optim.Adam(params, lr=1e-3)
    model.compile(opt, "cross_entropy")
    be = backend.get_backend(be_name)
    losses = []
    for s in range(steps):
        xb, yb = X[s * bs:(s + 1) * bs], y[s * bs:(s + 1) * bs]
        loss, _ = model.train_step(be.asarray(xb), yb)
        losses.append(loss)
    return losses, [p.numpy() for p in params], model.predict(X[:20])


@pytest.mark.parametrize("be_name", BACKENDS)
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_lenet5_trains_step_for_step_like_numpy(be_name, opt_name, rng):
    _backend(be_name)
    X = rng.standard_normal((96, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 96)
    l_ref, w_ref, p_ref = _steps("numpy", opt_name, X, y)
    l_dev, w_dev, p_dev = _steps(be_name, opt_name, X, y)
    np.testing.assert_allclose(l_dev, l_ref, rtol=2e-4)
    for a, b in zip(w_dev, w_ref):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(p_dev, p_ref, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("be_name", BACKENDS)
def test_fit_evaluate_predict_with_the_data_on_the_device(be_name, rng):
    be = _backend(be_name)
    X = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    lamina.seed(1)
    model = _lenet().to(be_name)
    hist = model.fit(be.asarray(X), be.asarray(y.astype(np.int64)), epochs=2, batch_size=16,
                     optimizer=optim.SGD(model.parameters(), lr=0.05, momentum=0.9), seed=0, verbose=0)
    assert len(hist["loss"]) == 2 and all(np.isfinite(hist["loss"]))
    assert isinstance(model[0].weight.data, lcuda.Array)
    loss, acc = model.evaluate(X, y)
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert model.predict(X[:5]).shape == (5, 10)


@pytest.mark.parametrize("be_name", BACKENDS)
def test_gemm_paths_agree(be_name, rng):
    """Ours (tiled, split-K) and cuBLAS (on the emulator: its stand-in, through the same dlopen)."""
    be = _backend(be_name)
    mod = be.rt.module
    assert mod.cublas_loaded() or be_name == "cuda", be.rt.cublas
    a = rng.standard_normal((300, 200)).astype(np.float32)
    b = rng.standard_normal((200, 400)).astype(np.float32)
    want = a.astype(np.float64) @ b
    for path in (1, 2) if mod.cublas_loaded() else (1,):
        mod.set_gemm_path(path)
        try:
            for ta, tb in ((False, False), (True, False), (False, True), (True, True)):
                aa = np.ascontiguousarray(a.T) if ta else a
                bb = np.ascontiguousarray(b.T) if tb else b
                got = be.to_numpy(be.matmul(be.asarray(aa), be.asarray(bb), trans_a=ta, trans_b=tb))
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3, err_msg=str((path, ta, tb)))
        finally:
            mod.set_gemm_path(0)
