"""What the model layer shows and accepts, exactly: the reprs of layers and parameters, the
text of summary() (every column, the totals, the parameter memory), the per-epoch line of
fit(verbose=1), the default slope of LeakyReLU, output_shape of Dense on sequences, of a padded
pool and of Flatten, register_layer, and the messages of add() and compile(metrics=...)."""
import io
import re
from contextlib import redirect_stdout

import numpy as np
import pytest

from lamina import nn


def test_parameter_repr():
    assert repr(nn.Parameter(np.ones((2, 3), np.float32), "w")) == "Parameter(w, shape=(2, 3), dtype=float32)"
    q = nn.Parameter(np.ones(2))
    q.trainable = False
    assert repr(q) == "Parameter(?, shape=(2,), dtype=float64, frozen)"
    d = nn.Dense(2, 3).to("numpy")
    assert repr(d.weight) == "Parameter(weight, shape=(3, 2), dtype=float32, backend=numpy)"


def test_layer_repr_lists_its_config():
    assert repr(nn.Dense(2, 3)) == "Dense(in_features=2, out_features=3, bias=True)"
    assert repr(nn.LeakyReLU()) == "LeakyReLU(slope=0.01)"


HEAD = ("#  Layer (type)  Output shape  Activations  Param #\n"
        "---------------------------------------------------\n")
RULE = "---------------------------------------------------\n"


def _summary(model, **kw):
    lines = []
    model.summary(print_fn=lines.append, **kw)
    assert len(lines) == 1
    return lines[0]


def test_summary_with_an_input_shape():
    model = nn.Sequential(nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2))
    assert _summary(model, input_shape=(4,)) == (
        HEAD
        + "   input         (4,)                    4        0\n"
        + "0  Dense         (3,)                    3       15\n"
        + "1  ReLU          (3,)                    3        0\n"
        + "2  Dense         (2,)                    2        8\n"
        + RULE
        + "Total params: 23\nTrainable params: 23\nNon-trainable params: 0\n"
        + "Parameter memory: 0.1 KiB (float32)")


def test_summary_infers_the_input_of_a_dense_first_and_gives_memory_in_kib():
    # 999 * 256 + 256 = 256,000 float32 parameters: exactly 1,000 KiB
    model = nn.Sequential(nn.Dense(999, 256), nn.ReLU())
    assert _summary(model) == (
        HEAD
        + "   input         (999,)                999        0\n"
        + "0  Dense         (256,)                256  256,000\n"
        + "1  ReLU          (256,)                256        0\n"
        + RULE
        + "Total params: 256,000\nTrainable params: 256,000\nNon-trainable params: 0\n"
        + "Parameter memory: 1,000.0 KiB (float32)")


def test_summary_without_an_input_shape():
    assert _summary(nn.Sequential(nn.Conv2D(1, 2, 3), nn.Flatten())) == (
        HEAD
        + "   input         ?                       ?        0\n"
        + "0  Conv2D        ?                       ?       20\n"
        + "1  Flatten       ?                       ?        0\n"
        + RULE
        + "Total params: 20\nTrainable params: 20\nNon-trainable params: 0\n"
        + "Parameter memory: 0.1 KiB (float32)")


def test_summary_of_a_single_parameter_and_of_an_empty_model():
    model = nn.Sequential(nn.Dense(4, 3, bias=False)).to("numpy").astype(np.float64)
    assert _summary(model, input_shape=(4,)).endswith("Parameter memory: 0.1 KiB (float64)")
    assert _summary(nn.Sequential()) == (HEAD + "   input         ?                       ?        0\n" + RULE
                                         + "Total params: 0\nTrainable params: 0\nNon-trainable params: 0")


def test_fit_prints_every_metric_with_its_value(rng):
    X = rng.standard_normal((40, 4)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    with redirect_stdout(io.StringIO()) as f:
        nn.Sequential(nn.Dense(4, 3)).fit(X, y, epochs=1, batch_size=10, validation_data=(X, y), verbose=1)
    assert re.fullmatch(r"epoch 1/1 - loss \d\.\d{4} - accuracy \d\.\d{4} - val_loss \d\.\d{4} - "
                        r"val_accuracy \d\.\d{4} - img/s \d+ - time \d+\.\ds\n", f.getvalue()), f.getvalue()


def test_leaky_relu_default_slope():
    x = np.array([-2.0, 3.0], np.float32)
    np.testing.assert_array_equal(nn.LeakyReLU().forward(x), np.array([-0.02, 3.0], np.float32))


def test_output_shapes():
    assert nn.Dense(4, 3).output_shape((7, 4)) == (7, 3)  # a sequence: the last axis changes
    assert nn.MaxPool2D(2, padding=1).output_shape((3, 5, 5)) == (3, 3, 3)
    assert nn.Flatten().output_shape((2, 3, 4)) == (24,)


def test_register_layer_makes_the_class_known_by_name():
    @nn.register_layer
    class Twice(nn.Layer):
        def forward(self, x, training=False):
            return x * 2

    try:
        assert nn.LAYER_TYPES["Twice"] is Twice
    finally:
        del nn.LAYER_TYPES["Twice"]


def test_add_names_what_is_not_a_layer():
    with pytest.raises(TypeError, match=r"^Sequential\.add: dict is not a lamina\.nn layer$"):
        nn.Sequential().add({})


def test_compile_takes_one_metric_name_as_a_string(rng):
    model = nn.Sequential(nn.Dense(4, 3)).compile("sgd", "cross_entropy", metrics="accuracy")
    X = rng.standard_normal((8, 4)).astype(np.float32)
    assert "accuracy" in model.fit(X, rng.integers(0, 3, 8), epochs=1, verbose=0).history


def test_summary_after_a_forward_knows_the_input_shape():
    model = nn.Sequential(nn.Conv2D(1, 2, 3), nn.Flatten())
    model.forward(np.zeros((1, 1, 5, 5), np.float32))
    assert _summary(model).startswith(
        HEAD
        + "   input         (1, 5, 5)              25        0\n"
        + "0  Conv2D        (2, 3, 3)              18       20\n"
        + "1  Flatten       (18,)                  18        0\n")


def test_summary_shows_unknown_after_a_layer_that_cannot_tell():
    model = nn.Sequential(nn.Conv2D(1, 2, 5), nn.ReLU())  # a 5 x 5 kernel on a 3 x 3 input
    assert _summary(model, input_shape=(1, 3, 3)).startswith(
        HEAD
        + "   input         (1, 3, 3)               9        0\n"
        + "0  Conv2D        ?                       ?       52\n"
        + "1  ReLU          ?                       ?        0\n")


def test_summary_columns_widen_with_their_contents():
    text = _summary(nn.Sequential(*[nn.ReLU() for _ in range(11)]), input_shape=(100, 100, 30))
    lines = text.split("\n")
    assert lines[0] == " #  Layer (type)  Output shape    Activations  Param #"
    assert lines[1] == "-" * 54
    assert lines[2] == "    input         (100, 100, 30)      300,000        0"
    assert lines[3] == " 0  ReLU          (100, 100, 30)      300,000        0"
    assert lines[13] == "10  ReLU          (100, 100, 30)      300,000        0"
