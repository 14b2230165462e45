"""lamina.onnx: every layer type, alone and in LeNet-5, the MLP and the RNN, exported and run in
ONNX Runtime (CPU) for batch sizes 1 and 37: the predictions equal lamina's ``predict`` to 1e-5
relative (to the output's largest magnitude), and every file passes
``onnx.checker.check_model(full_check=True)``. Also: the dynamic batch axis, the opsets, custom
layers (``to_onnx``, ``register_converter``), the errors, and ``lamina train`` -> ``lamina
export`` -> ONNX Runtime. Skipped only where onnx or onnxruntime is not installed (the test
extra installs both)."""
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import lamina  # noqa: E402
import lamina.cuda  # noqa: E402
from lamina import cli, models, nn  # noqa: E402
from lamina import onnx as lonnx  # noqa: E402

BATCHES = (1, 37)


def _session(path_or_proto):
    data = path_or_proto.SerializeToString() if hasattr(path_or_proto, "SerializeToString") else path_or_proto
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def assert_close(got, want):
    """ONNX Runtime's output equals lamina's to 1e-5 relative to the output's largest value."""
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = float(np.abs(want).max()) or 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)


def check_export(model, sample_shape, tmp_path, batches=BATCHES, opset=None, seed=0):
    """Exports ``model`` for inputs (N, *sample_shape), checks the file, and compares ONNX
    Runtime with lamina at every batch size of ``batches``; returns the loaded ModelProto."""
    path = tmp_path / "model.onnx"
    lonnx.export(model, path, (1, *sample_shape), opset=opset)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == list(sample_shape)
    sess = _session(str(path))
    seq = model if isinstance(model, nn.Sequential) else nn.Sequential(model)
    dtype = seq.dtype or np.dtype(np.float32)
    rng = np.random.default_rng(seed)
    for n in batches:
        x = rng.standard_normal((n, *sample_shape)).astype(dtype)
        assert_close(sess.run(["output"], {"input": x})[0], seq.predict(x))
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]  # (no temporary file left behind)
    return proto


def _randomize(layer, seed=1):
    """Non-trivial values in every parameter and buffer (BatchNorm's running statistics
    included), so that a mapping that drops or swaps one is seen."""
    rng = np.random.default_rng(seed)
    for _, p in layer.named_parameters():
        p.assign(rng.uniform(-0.8, 0.8, p.shape))
    for name, b in layer.named_buffers():
        if name == "running_var":
            b.assign(rng.uniform(0.5, 2.0, b.shape))
        elif b.numpy().dtype.kind == "f":
            b.assign(rng.uniform(-0.5, 0.5, b.shape))
    return layer


# (test id, layer factory, the shape of one sample)
LAYERS = [
    ("Dense", lambda: nn.Dense(7, 5), (7,)),
    ("Dense-nobias", lambda: nn.Dense(7, 5, bias=False), (7,)),
    ("Dense-3d", lambda: nn.Dense(7, 5), (4, 7)),
    ("Conv2D", lambda: nn.Conv2D(3, 4, 3), (3, 9, 9)),
    ("Conv2D-stride-pad-dilation", lambda: nn.Conv2D(2, 3, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
     (2, 11, 8)),
    ("Conv2D-nobias", lambda: nn.Conv2D(2, 3, 3, padding=1, bias=False), (2, 6, 6)),
    ("MaxPool2D", lambda: nn.MaxPool2D(2), (3, 8, 8)),
    ("MaxPool2D-stride-pad", lambda: nn.MaxPool2D(3, stride=2, padding=1), (2, 9, 7)),
    ("AvgPool2D", lambda: nn.AvgPool2D(2), (3, 8, 8)),
    ("AvgPool2D-stride-pad", lambda: nn.AvgPool2D((3, 2), stride=(2, 1), padding=(1, 1)), (2, 9, 7)),
    ("GlobalAvgPool2D", lambda: nn.GlobalAvgPool2D(), (4, 5, 6)),
    ("Flatten", lambda: nn.Flatten(), (3, 4, 5)),
    ("ReLU", lambda: nn.ReLU(), (6, 5)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.2), (6, 5)),
    ("Sigmoid", lambda: nn.Sigmoid(), (6, 5)),
    ("Tanh", lambda: nn.Tanh(), (6, 5)),
    ("Softmax", lambda: nn.Softmax(), (6, 5)),
    ("Softmax-axis1", lambda: nn.Softmax(axis=1), (6, 5)),
    ("Dropout", lambda: nn.Dropout(0.4, seed=0), (6, 5)),
    ("BatchNorm1D", lambda: nn.BatchNorm1D(6, eps=1e-3), (6,)),
    ("BatchNorm1D-seq", lambda: nn.BatchNorm1D(6), (6, 4)),
    ("BatchNorm1D-noaffine", lambda: nn.BatchNorm1D(6, affine=False), (6,)),
    ("BatchNorm1D-batchstats", lambda: nn.BatchNorm1D(6, track_running_stats=False), (6, 4)),
    ("BatchNorm2D", lambda: nn.BatchNorm2D(3), (3, 5, 4)),
    ("BatchNorm2D-batchstats", lambda: nn.BatchNorm2D(3, track_running_stats=False), (3, 5, 4)),
    ("RNN", lambda: nn.RNN(3, 5), (6, 3)),
    ("RNN-relu-sequences", lambda: nn.RNN(3, 5, nonlinearity="relu", return_sequences=True), (6, 3)),
    ("RNN-nobias", lambda: nn.RNN(3, 5, bias=False), (6, 3)),
    ("LSTM", lambda: nn.LSTM(3, 5), (6, 3)),
    ("LSTM-sequences", lambda: nn.LSTM(3, 5, return_sequences=True), (6, 3)),
    ("LSTM-nobias", lambda: nn.LSTM(3, 5, bias=False), (6, 3)),
    ("GRU", lambda: nn.GRU(3, 5), (6, 3)),
    ("GRU-sequences", lambda: nn.GRU(3, 5, return_sequences=True), (6, 3)),
    ("GRU-nobias", lambda: nn.GRU(3, 5, bias=False), (6, 3)),
]


def test_every_layer_type_has_an_export_case():
    """Every layer class lamina.nn registers (other tests register layers of their own)."""
    builtin = {name for name, cls in nn.LAYER_TYPES.items() if cls.__module__.startswith("lamina.nn.")}
    tested = {type(factory()).__name__ for _, factory, _ in LAYERS}
    assert len(builtin) >= 17 and builtin - {"Sequential"} <= tested, builtin - tested


@pytest.mark.parametrize("make, shape", [(f, s) for _, f, s in LAYERS], ids=[i for i, _, _ in LAYERS])
def test_layer_alone(make, shape, tmp_path):
    lamina.seed(0)
    check_export(_randomize(make()), shape, tmp_path)


@pytest.mark.parametrize("make, shape", [(f, s) for _, f, s in LAYERS], ids=[i for i, _, _ in LAYERS])
def test_layer_in_a_sequential(make, shape, tmp_path):
    """The same layer between two others, so that its input is computed and its output consumed
    inside the graph (not the graph's own input and output)."""
    lamina.seed(0)
    check_export(nn.Sequential(nn.Tanh(), _randomize(make()), nn.Sigmoid()), shape, tmp_path, seed=3)


def test_lenet5(tmp_path):
    lamina.seed(0)
    proto = check_export(models.lenet5(), (1, 28, 28), tmp_path)
    assert [n.op_type for n in proto.graph.node] == ["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten",
                                                     "Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    assert proto.opset_import[0].version == lonnx.DEFAULT_OPSET == 17


def test_mlp(tmp_path):
    lamina.seed(0)
    check_export(models.mlp(hidden=(100, 50)), (784,), tmp_path)


def test_rnn_classifier(tmp_path):
    """The RNN of examples/rnn_sequence.py: RNN(1, 32) -> Dense(32, 2) on sequences (N, 10, 1)."""
    lamina.seed(0)
    check_export(nn.Sequential(nn.RNN(1, 32), nn.Dense(32, 2)), (10, 1), tmp_path)


def test_stacked_recurrent_model(tmp_path):
    lamina.seed(0)
    model = nn.Sequential(nn.LSTM(4, 8, return_sequences=True), nn.GRU(8, 6, return_sequences=True),
                          nn.RNN(6, 5, return_sequences=True), nn.Dense(5, 3), nn.Flatten(), nn.Dropout(0.5),
                          nn.Dense(7 * 3, 2))
    check_export(model, (7, 4), tmp_path)


def test_cnn_with_batchnorm_and_every_pool(tmp_path):
    lamina.seed(0)
    model = nn.Sequential(nn.Conv2D(3, 8, 3, padding=1), _randomize(nn.BatchNorm2D(8)), nn.LeakyReLU(),
                          nn.MaxPool2D(2), nn.Conv2D(8, 8, 3, padding=2, dilation=2), nn.ReLU(),
                          nn.AvgPool2D(2, padding=1), nn.GlobalAvgPool2D(), _randomize(nn.BatchNorm1D(8)),
                          nn.Dense(8, 4), nn.Softmax())
    check_export(model, (3, 16, 16), tmp_path)


def test_nested_sequential(tmp_path):
    lamina.seed(0)
    inner = nn.Sequential(nn.Dense(6, 6), nn.Tanh())
    proto = check_export(nn.Sequential(nn.Dense(4, 6), inner, nn.Sequential(inner[0:1], nn.Dense(6, 2))), (4,),
                         tmp_path)
    assert any(init.name.startswith("1.0.weight") for init in proto.graph.initializer)


def test_trained_batchnorm_uses_running_statistics(tmp_path):
    """After training, BatchNorm's running statistics (not a batch's) are in the file."""
    lamina.seed(0)
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((128, 5)) * 3 + 2).astype(np.float32)
    model = nn.Sequential(nn.Dense(5, 8), nn.BatchNorm1D(8), nn.ReLU(), nn.Dense(8, 2))
    model.fit(X, (X[:, 0] > 2).astype(np.int64), epochs=2, batch_size=16, verbose=0)
    assert np.abs(model[1].running_mean.numpy()).max() > 0.05
    check_export(model, (5,), tmp_path)


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_opsets(opset, tmp_path):
    """13 (the oldest), the default, 18 (ReduceMean's axes become an input), a newer one."""
    lamina.seed(0)
    model = nn.Sequential(nn.Conv2D(2, 3, 3), nn.BatchNorm2D(3, track_running_stats=False), nn.ReLU(), nn.Flatten(),
                          nn.Dense(3 * 4 * 4, 6), nn.Softmax())
    proto = check_export(model, (2, 6, 6), tmp_path, opset=opset)
    assert proto.opset_import[0].version == opset


def test_float64_model(tmp_path):
    lamina.seed(0)
    model = nn.Sequential(nn.Dense(5, 4), nn.Tanh(), nn.Dense(4, 3)).to("numpy").astype(np.float64)
    proto = check_export(model, (5,), tmp_path)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


# -- layers of one's own -----------------------------------------------------------------------

class Scale(nn.Layer):
    def __init__(self, factor=2.0):
        super().__init__()
        self.factor = factor

    def forward(self, x, training=False):
        return self._be().scale(x, self.factor)

    def _backward(self, grad, need_input_grad):
        return self._be().scale(grad, self.factor)


class ScaleWithMapping(Scale):
    def to_onnx(self, ctx, x):
        return ctx.add_node("Mul", [x, ctx.add_initializer("factor", np.array(self.factor, ctx.dtype))])


def test_a_layer_without_a_mapping_is_named(tmp_path):
    model = nn.Sequential(nn.Dense(4, 4), nn.Sequential(nn.ReLU(), Scale()), nn.Dense(4, 2))
    with pytest.raises(NotImplementedError, match=r"layer 1\.1 \(Scale\) has no ONNX mapping.*to_onnx.*"
                                                  r"register_converter\(Scale\)"):
        lonnx.export(model, tmp_path / "m.onnx", (1, 4))
    assert not os.listdir(tmp_path)


def test_a_subclass_does_not_inherit_a_builtin_mapping(tmp_path):
    class Relu6(nn.ReLU):  # its forward differs: ReLU's mapping would be wrong
        pass
    with pytest.raises(NotImplementedError, match=r"layer 0 \(Relu6\)"):
        lonnx.export(nn.Sequential(Relu6()), tmp_path / "m.onnx", (1, 4))


def test_custom_layer_with_to_onnx(tmp_path):
    lamina.seed(0)
    check_export(nn.Sequential(nn.Dense(4, 5), ScaleWithMapping(-1.5), nn.Dense(5, 2)), (4,), tmp_path)


def test_registered_converter_and_its_precedence(tmp_path):
    @lonnx.register_converter(Scale)
    def _scale(layer, ctx, x):
        return ctx.add_node("Mul", [x, ctx.add_initializer("factor", np.array(layer.factor, ctx.dtype))])

    @lonnx.register_converter(ScaleWithMapping)
    def _wrong(layer, ctx, x):  # registered beats the method: this one (deliberately x + x) is used
        return ctx.add_node("Add", [x, x])

    try:
        lamina.seed(0)
        check_export(nn.Sequential(nn.Dense(4, 5), Scale(3.0), nn.Dense(5, 2)), (4,), tmp_path)
        proto = lonnx.to_model_proto(nn.Sequential(ScaleWithMapping(2.0)), (1, 4))
        assert [n.op_type for n in proto.graph.node] == ["Add"]
    finally:
        lonnx.unregister_converter(Scale)
        lonnx.unregister_converter(ScaleWithMapping)
    assert lonnx.converter_for(Scale()) is None


def test_a_converter_must_return_a_tensor_name():
    class Bad(Scale):
        def to_onnx(self, ctx, x):
            return None
    with pytest.raises(TypeError, match=r"layer 0 \(Bad\).*not the name of its output tensor"):
        lonnx.to_model_proto(nn.Sequential(Bad()), (1, 3))


# -- bad arguments -----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(784,), (0, 784), (1, -1), (1.5, 784), "1,784", None, (1, "a")])
def test_bad_input_shape(shape):
    with pytest.raises(ValueError, match="input_shape"):
        lonnx.to_model_proto(models.mlp(), shape)


def test_an_input_the_model_cannot_take():
    with pytest.raises(ValueError, match=r"does not take inputs of shape \(1, 1, 28\).*Conv2D expects"):
        lonnx.to_model_proto(models.lenet5(), (1, 1, 28))
    with pytest.raises(ValueError, match="Dense expects 784 input features"):
        lonnx.to_model_proto(nn.Sequential(nn.Dense(784, 3)), (1, 780))


@pytest.mark.parametrize("opset", [12, 10_000, 17.0, True, "17"])
def test_bad_opset(opset):
    with pytest.raises(ValueError, match="opset must be an int from 13"):
        lonnx.to_model_proto(models.mlp(), (1, 784), opset=opset)


def test_not_a_model():
    with pytest.raises(TypeError, match="model must be a lamina.nn layer"):
        lonnx.to_model_proto(lambda x: x, (1, 3))


def test_without_the_onnx_package(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)  # import onnx -> ImportError
    with pytest.raises(ImportError, match=r'pip install "lamina\[onnx\]"'):
        lonnx.export(models.mlp(), tmp_path / "m.onnx", (1, 784))


def test_export_replaces_an_existing_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    lonnx.export(nn.Sequential(nn.Dense(3, 2)), path, (1, 3))
    assert onnx.load(str(path)).graph.output[0].name == "output" and sorted(os.listdir(tmp_path)) == ["m.onnx"]


# -- the command line: lamina train, then lamina export ------------------------------------------

def test_lenet5_trained_by_lamina_train_runs_the_same_in_onnx_runtime(tmp_path, capsys):
    model_path, onnx_path = tmp_path / "lenet5.safetensors", tmp_path / "lenet5.onnx"
    assert cli.main(["train", "--epochs", "1", "--limit", "256", "--batch-size", "32", "--quiet", "--threads", "1",
                     "--out", str(model_path)]) == 0
    assert cli.main(["export", str(model_path), str(onnx_path), "--input-shape", "1,1,28,28"]) == 0
    assert "wrote" in capsys.readouterr().out
    onnx.checker.check_model(onnx.load(str(onnx_path)), full_check=True)
    model = lamina.load(model_path)
    X, _ = lamina.datasets.load_mnist()
    sess = _session(str(onnx_path))
    for n in BATCHES:
        x = X[8000:8000 + n]
        got = sess.run(None, {"input": x})[0]
        assert_close(got, model.predict(x))
        assert np.array_equal(got.argmax(1), model.predict(x).argmax(1))


def test_export_command_errors(tmp_path, capsys):
    model_path = tmp_path / "m.safetensors"
    lamina.save(models.lenet5(), model_path)
    assert cli.main(["export", str(model_path), str(tmp_path / "m.onnx"), "--input-shape", "1,784"]) == 1
    assert "does not take inputs of shape (1, 784)" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "missing.safetensors"), str(tmp_path / "m.onnx"),
                     "--input-shape", "1,1,28,28"]) == 1
    assert "missing.safetensors" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["export", str(model_path), str(tmp_path / "m.onnx"), "--input-shape", "1,0"])
    assert "--input-shape" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["export", str(model_path), str(tmp_path / "m.onnx")])
    assert not (tmp_path / "m.onnx").exists()


# -- a model on a device backend: the weights are read through the public API wherever they live --

DEVICE_BACKENDS = ["wrapped"] + (["cuda_emu"] if lamina.cuda.emu_built() else []) + \
    (["cuda"] if lamina.cuda.is_available() else [])


@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
def test_export_from_a_device_backend(backend, tmp_path):
    lamina.seed(0)
    model = nn.Sequential(nn.Conv2D(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Dense(4 * 4 * 4, 6), nn.Tanh())
    check_export(model.to(backend), (1, 8, 8), tmp_path)
    be = lamina.get_backend(backend)
    if lamina.backend.has_kernel(be, "lstm_cell") and lamina.backend.has_kernel(be, "batch_norm"):
        sub = tmp_path / "recurrent"
        sub.mkdir()
        seq = nn.Sequential(nn.LSTM(3, 5, return_sequences=True), nn.GRU(5, 4), _randomize(nn.BatchNorm1D(4)),
                            nn.Dense(4, 2)).to(backend)
        check_export(seq, (6, 3), sub)
