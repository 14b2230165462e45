"""BatchNorm1D / BatchNorm2D and GlobalAvgPool2D as layers: PyTorch parity (forward, backward and
running statistics over several training steps, then evaluation mode, on the numpy and native
backends), float64 finite differences, buffers (not trained, moved by to(), converted by
astype(), saved and loaded, read by PyTorch's load_state_dict), a device-like backend, a clear
error on a backend without the kernels, training through fit, and summary()."""
import numpy as np
import pytest

import lamina
import wrapped_backend
from lamina import losses, nn
from nn_helpers import assert_close, gradcheck_layer, gradcheck_model

torch = pytest.importorskip("torch")

NORM_KERNELS = ("batch_norm", "batch_norm_backward")


def _close(got, want, rtol=1e-5, what=""):
    want = np.asarray(want, np.float64)
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=rtol * scale, err_msg=what)


def _host(a, be):
    return np.asarray(lamina.get_backend(be).to_numpy(a))


CASES = [  # (lamina class, torch class, input shape)
    (nn.BatchNorm1D, "BatchNorm1d", (16, 5)),
    (nn.BatchNorm1D, "BatchNorm1d", (6, 4, 7)),
    (nn.BatchNorm1D, "BatchNorm1d", (12, 40)),
    (nn.BatchNorm2D, "BatchNorm2d", (4, 3, 5, 6)),
    (nn.BatchNorm2D, "BatchNorm2d", (2, 8, 16, 16)),
    (nn.BatchNorm2D, "BatchNorm2d", (5, 2, 1, 3)),
]
OPTIONS = [{}, {"momentum": None}, {"affine": False}, {"track_running_stats": False}, {"eps": 1e-3, "momentum": 0.3}]


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].__name__}{c[2]}")
@pytest.mark.parametrize("opts", OPTIONS, ids=str)
def test_matches_torch_in_training_and_evaluation(rng, backend, case, opts):
    cls, tname, shape = case
    C = shape[1]
    ours = cls(C, **opts).to(backend)
    theirs = getattr(torch.nn, tname)(C, **opts).double()
    if ours.weight is not None:
        w, b = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
        ours.weight.assign(w)
        ours.bias.assign(b)
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(w, dtype=torch.float64))
            theirs.bias.copy_(torch.tensor(b, dtype=torch.float64))
    for step in range(3):
        for training in ([True] * 3 if step < 2 else [False]):
            theirs.train(training)
            x = (rng.standard_normal(shape) * (1 + step) + step).astype(np.float32)
            g = rng.standard_normal(shape).astype(np.float32)
            tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            ty = theirs(tx)
            ty.backward(torch.tensor(g, dtype=torch.float64))
            ours.zero_grad()
            y = ours.forward(ours._be().asarray(x), training=training)
            _close(_host(y, backend), ty.detach().numpy(), what=f"y, step {step}")
            dx = ours.backward(ours._be().asarray(g))
            _close(_host(dx, backend), tx.grad.numpy(), what=f"dx, step {step}")
            if ours.weight is not None:
                _close(ours.weight.grad if backend == "numpy" else _host(ours.weight.grad, backend),
                       theirs.weight.grad.numpy(), what="dweight")
                _close(_host(ours.bias.grad, backend), theirs.bias.grad.numpy(), what="dbias")
                theirs.weight.grad = theirs.bias.grad = None
            if ours.running_mean is not None:
                _close(ours.running_mean.numpy(), theirs.running_mean.numpy(), what="running_mean")
                _close(ours.running_var.numpy(), theirs.running_var.numpy(), what="running_var")
                assert int(ours.num_batches_tracked.numpy()) == int(theirs.num_batches_tracked)
            else:
                assert theirs.running_mean is None


def test_tiny_batches_are_as_accurate_as_torch_float32(rng):
    """With 3 values per channel the gradient is ill-conditioned (float32 rounding of x is
    amplified by invstd): the native kernel's error against float64 stays within twice that of
    PyTorch's own float32 computation."""
    worst = worst_torch = 0.0
    for _ in range(50):
        x, g = rng.standard_normal((2, 3, 40)).astype(np.float32)
        bn = nn.BatchNorm1D(40, affine=False).to("native")
        bn.forward(x, training=True)
        dx = bn.backward(g)
        grads = {}
        for dt in (torch.float64, torch.float32):
            tx = torch.tensor(x, dtype=dt, requires_grad=True)
            torch.nn.functional.batch_norm(tx, None, None, training=True).backward(torch.tensor(g, dtype=dt))
            grads[dt] = tx.grad.numpy().astype(np.float64)
        scale = np.abs(grads[torch.float64]).max()
        worst = max(worst, np.abs(dx - grads[torch.float64]).max() / scale)
        worst_torch = max(worst_torch, np.abs(grads[torch.float32] - grads[torch.float64]).max() / scale)
    assert worst <= 2 * worst_torch + 1e-7, (worst, worst_torch)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("layer,shape", [(lambda: nn.BatchNorm1D(3), (5, 3)), (lambda: nn.BatchNorm1D(2), (4, 2, 3)),
                                         (lambda: nn.BatchNorm2D(2), (3, 2, 3, 4)),
                                         (lambda: nn.BatchNorm2D(2, affine=False), (2, 2, 3, 3))],
                         ids=["1d", "1d-seq", "2d", "2d-plain"])
def test_gradcheck_float64(rng, layer, shape, training):
    bn = layer()
    if bn.weight is not None:
        bn.weight.assign(rng.standard_normal(bn.num_features) + 1.5)
        bn.bias.assign(rng.standard_normal(bn.num_features))
    bn.running_mean.assign(rng.standard_normal(bn.num_features))
    bn.running_var.assign(rng.random(bn.num_features) + 0.5)
    gradcheck_layer(bn, rng.standard_normal(shape) * 2 + 1, rng, training=training, rtol=1e-5, atol=1e-7)


def test_model_gradcheck_with_batchnorm_and_global_pool(rng):
    model = nn.Sequential(nn.Conv2D(2, 3, 3, padding=1), nn.BatchNorm2D(3), nn.Tanh(), nn.GlobalAvgPool2D(),
                          nn.Dense(3, 4), nn.BatchNorm1D(4), nn.Sigmoid(), nn.Dense(4, 3))
    gradcheck_model(model, losses.CrossEntropy(), rng.standard_normal((4, 2, 5, 5)), np.array([0, 2, 1, 1]),
                    training=True, rtol=1e-4, atol=1e-7)


# ---- GlobalAvgPool2D -------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["native", "numpy", "wrapped"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (3, 4, 8, 8)], ids=str)
def test_global_avg_pool_matches_torch(rng, backend, shape):
    wrapped_backend.register()
    layer = nn.GlobalAvgPool2D().to(backend)
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape[:2]).astype(np.float32)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, 1).flatten(1)
    ty.backward(torch.tensor(g, dtype=torch.float64))
    be = layer._be()
    y = layer.forward(be.asarray(x))
    assert tuple(y.shape) == shape[:2] and layer.output_shape(shape[1:]) == shape[1:2]
    _close(_host(y, backend), ty.detach().numpy())
    _close(_host(layer.backward(be.asarray(g)), backend), tx.grad.numpy())


def test_global_avg_pool_gradcheck_and_bad_input(rng):
    gradcheck_layer(nn.GlobalAvgPool2D(), rng.standard_normal((2, 3, 4, 5)), rng)
    with pytest.raises(ValueError, match="GlobalAvgPool2D expects input"):
        nn.GlobalAvgPool2D().forward(np.zeros((2, 3, 4), np.float32))


# ---- buffers ---------------------------------------------------------------------------------------

def _trained_bn_model(rng, steps=3):
    model = nn.Sequential(nn.Conv2D(2, 4, 3, padding=1), nn.BatchNorm2D(4), nn.ReLU(), nn.GlobalAvgPool2D(),
                          nn.Dense(4, 6), nn.BatchNorm1D(6, momentum=None), nn.ReLU(), nn.Dense(6, 3))
    x = rng.standard_normal((32, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    model.fit(x, y, epochs=steps, batch_size=8, optimizer="sgd", loss="cross_entropy", verbose=0)
    return model, x


def test_buffers_are_not_parameters_and_are_not_trained(rng):
    model, x = _trained_bn_model(rng)
    names = [n for n, _ in model.named_parameters()]
    assert "1.weight" in names and "1.running_mean" not in names
    bufs = dict(model.named_buffers())
    assert sorted(bufs) == ["1.num_batches_tracked", "1.running_mean", "1.running_var",
                            "5.num_batches_tracked", "5.running_mean", "5.running_var"]
    assert int(bufs["1.num_batches_tracked"].numpy()) == 12  # 3 epochs of 4 batches
    assert bufs["1.num_batches_tracked"].dtype == np.int64
    assert not np.allclose(bufs["1.running_mean"].numpy(), 0.0)  # updated by training, not by the optimiser
    params = {id(p) for p in model.optimizer.params()}
    assert len(params) == len(model.parameters()) and not params & {id(b) for b in bufs.values()}


def test_save_load_round_trip_and_torch_reads_the_file(rng, tmp_path):
    model, x = _trained_bn_model(rng)
    want = model.predict(x)
    path = tmp_path / "bn.safetensors"
    lamina.save(model, path)
    loaded = lamina.load(path)
    for (n, a), (m, b) in zip(model.named_buffers(), loaded.named_buffers()):
        assert n == m
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(loaded.predict(x), want)
    # load_weights fills the buffers too
    other = nn.Sequential(*[type(layer).from_config(layer.get_config()) for layer in model])
    assert "1.running_var" in lamina.load_weights(other, path)
    np.testing.assert_array_equal(other.predict(x), want)

    # PyTorch: the same network's state_dict has exactly these keys, dtypes and shapes
    from safetensors.torch import load_file
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                 torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 6),
                                 torch.nn.BatchNorm1d(6, momentum=None), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    sd = load_file(str(path))
    # lamina's Flatten is folded into GlobalAvgPool2D: the torch indices after it shift by one
    sd = {(k if int(k.split(".")[0]) < 4 else f"{int(k.split('.')[0]) + 1}.{k.split('.', 1)[1]}"): v
          for k, v in sd.items()}
    tmodel.load_state_dict(sd, strict=True)
    assert tmodel[1].num_batches_tracked.dtype == torch.int64
    tmodel.eval()
    with torch.no_grad():
        ty = tmodel(torch.tensor(x)).numpy()
    _close(want, ty, rtol=1e-4)


def test_torch_state_dict_loads_into_the_same_indices(rng, tmp_path):
    model = nn.Sequential(nn.Dense(5, 4), nn.BatchNorm1D(4), nn.ReLU(), nn.Dense(4, 2))
    tmodel = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
                                 torch.nn.Linear(4, 2))
    x = rng.standard_normal((16, 5)).astype(np.float32)
    tmodel.train()
    tmodel(torch.tensor(x))  # running statistics away from their initial values
    from safetensors.torch import save_file
    path = tmp_path / "torch.safetensors"
    save_file({k: v.contiguous() for k, v in tmodel.state_dict().items()}, str(path), metadata=_v1_meta(model))
    assert sorted(lamina.load_weights(model, path)) == sorted(tmodel.state_dict())
    tmodel.eval()
    with torch.no_grad():
        _close(model.predict(x), tmodel(torch.tensor(x)).numpy(), rtol=1e-5)


def _v1_meta(model):
    """The metadata of a lamina file without checksums (format version 1), for files written by
    other tools."""
    import json
    from lamina.io import layer_to_entry
    return {"format": "lamina", "format_version": "1", "architecture": json.dumps(layer_to_entry(model))}


def test_load_rejects_a_buffer_of_the_wrong_kind(rng, tmp_path):
    from safetensors.numpy import load_file, save_file
    model = nn.Sequential(nn.Dense(3, 2), nn.BatchNorm1D(2))
    path = tmp_path / "m.safetensors"
    lamina.save(model, path)
    tensors = load_file(str(path))
    tensors["1.num_batches_tracked"] = np.zeros((), np.float32)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=_v1_meta(model))
    with pytest.raises(ValueError, match="num_batches_tracked"):
        lamina.load_weights(model, tmp_path / "bad.safetensors")
    tensors["1.num_batches_tracked"] = np.zeros((), np.int64)
    tensors["1.running_var"] = np.ones(3, np.float32)
    save_file(tensors, str(tmp_path / "bad2.safetensors"), metadata=_v1_meta(model))
    with pytest.raises(ValueError, match="running_var"):
        lamina.load_weights(model, tmp_path / "bad2.safetensors")


def test_to_and_astype_move_the_buffers(rng):
    bn = nn.BatchNorm2D(3)
    bn.forward(rng.standard_normal((4, 3, 2, 2)).astype(np.float32), training=True)
    rm = bn.running_mean.numpy()
    bn.to("numpy").astype(np.float64)
    assert bn.running_mean.dtype == np.float64 and bn.running_var.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64
    np.testing.assert_allclose(bn.running_mean.numpy(), rm)
    bn.astype(np.float32).to("native")
    assert bn.running_mean.dtype == np.float32 and bn.running_mean.backend.name == "native"


@pytest.fixture
def device_backend():
    """A device-like backend (wrapped arrays, no NumPy arithmetic allowed) that also has the
    optional normalisation kernels."""
    be = wrapped_backend.register_with("wrapped_norm", NORM_KERNELS)
    try:
        yield be
    finally:
        lamina.backend.unregister_backend("wrapped_norm")


def test_trains_on_a_device_backend_like_on_native(rng, device_backend):
    model, x = _trained_bn_model(rng, steps=1)
    want = model.predict(x)
    model.to("wrapped_norm")
    assert type(model[1].running_mean.data).__name__ == "Wrapped"
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-5, atol=1e-5)  # float32, another summation order
    y = rng.integers(0, 3, 32)
    model.fit(x, y, epochs=1, batch_size=8, optimizer="sgd", loss="cross_entropy", verbose=0)
    assert int(model[1].num_batches_tracked.numpy()) == 8
    model.to("native")
    assert isinstance(model[1].running_mean.data, np.ndarray)


def test_a_backend_without_the_kernels_is_a_clear_error(rng):
    wrapped_backend.register()
    bn = nn.BatchNorm2D(3).to("wrapped")
    assert not lamina.backend.has_kernel(lamina.get_backend("wrapped"), "batch_norm")
    x = lamina.get_backend("wrapped").asarray(np.zeros((2, 3, 2, 2), np.float32))
    with pytest.raises(NotImplementedError, match="BatchNorm2D needs the kernel 'batch_norm'.*'wrapped'"):
        bn.forward(x, training=True)


def test_summary_lists_the_layers(rng):
    model = nn.Sequential(nn.Conv2D(1, 4, 3), nn.BatchNorm2D(4), nn.ReLU(), nn.GlobalAvgPool2D(), nn.Dense(4, 2))
    text = model.summary((1, 8, 8), print_fn=None)
    assert "BatchNorm2D" in text and "GlobalAvgPool2D" in text and "(4,)" in text
    assert "Total params: 58" in text  # conv 40, batch norm 8 (weight, bias; buffers are not parameters), dense 10


def test_bad_configuration_and_input():
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2D(0)
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1D(3, momentum=2.0)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm1D(3, eps=-1.0)
    with pytest.raises(ValueError, match=r"BatchNorm2D\(3\) expects input \(N, C, H, W\)"):
        nn.BatchNorm2D(3).forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="C = 3"):
        nn.BatchNorm1D(3).forward(np.zeros((2, 4), np.float32))


def test_eval_mode_of_a_fresh_layer_is_the_affine_identity(rng):
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    y = nn.BatchNorm2D(3).forward(x, training=False)
    assert_close(y, x / np.sqrt(1 + 1e-5), 1e-6, 1e-7)
