"""A file written by the library as it was before the model layer was split by job (2026-12-07,
tests/data/saved_format_v1.*: a nested Sequential with Conv2D, ReLU, MaxPool2D, BatchNorm2D,
Flatten, Dense, Tanh and Dropout, a frozen bias, an lr_scale, Dropout's call count and an
SGD-momentum checkpoint) loads today: the same architecture entries, the same weights, the
same predictions, the same optimiser state; and saving it again writes the same architecture."""
import json
import os

import numpy as np
import pytest

import lamina
from lamina import nn

DATA = os.path.join(os.path.dirname(__file__), "data")
FILE = os.path.join(DATA, "saved_format_v1.safetensors")

# The architecture the file holds, written out by hand (what the earlier code wrote).
_P = {"trainable": True, "lr_scale": 1.0}
EXPECTED_LAYERS = [
    {"type": "Conv2D", "config": {"in_channels": 1, "out_channels": 2, "kernel_size": 3, "stride": 1, "padding": 1,
                                  "dilation": 1, "bias": True}, "params": {"weight": _P, "bias": _P}},
    {"type": "ReLU", "config": {}},
    {"type": "MaxPool2D", "config": {"kernel_size": 2, "stride": 2, "padding": 0}},
    {"type": "BatchNorm2D", "config": {"num_features": 2, "eps": 1e-05, "momentum": 0.1, "affine": True,
                                       "track_running_stats": True}, "params": {"weight": _P, "bias": _P}},
    {"type": "Sequential", "config": {"layers": [
        {"type": "Flatten", "config": {}},
        {"type": "Dense", "config": {"in_features": 18, "out_features": 5, "bias": True},
         "params": {"weight": _P, "bias": {"trainable": False, "lr_scale": 1.0}}}]}},
    {"type": "Tanh", "config": {}},
    {"type": "Dropout", "config": {"p": 0.25, "seed": 7}, "state": {"calls": 4}},
    {"type": "Dense", "config": {"in_features": 5, "out_features": 3, "bias": True},
     "params": {"weight": {"trainable": True, "lr_scale": 0.5}, "bias": _P}},
]


def _metadata(path):
    import safetensors
    with safetensors.safe_open(path, "np") as f:
        return f.metadata()


def test_the_file_is_the_earlier_format():
    meta = _metadata(FILE)
    assert json.loads(meta["architecture"]) == {"type": "Sequential", "config": {"layers": EXPECTED_LAYERS}}


def test_an_earlier_file_loads_with_its_weights_and_predictions():
    ref = np.load(os.path.join(DATA, "saved_format_v1.npz"))
    model = lamina.load(FILE)
    assert model.get_config() == {"layers": EXPECTED_LAYERS}
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.numpy(), ref[name], err_msg=name)
    assert not model[4][1].bias.trainable and model[7].weight.lr_scale == 0.5
    assert model[6].get_state() == {"calls": 4}
    np.testing.assert_array_equal(model.predict(ref["X"]), ref["predict"])


def test_an_earlier_checkpoint_resumes():
    ck = lamina.load_checkpoint(FILE)
    assert ck.epoch == 2 and ck.extra == {"made_by": "the library as it was on 2026-12-07"}
    opt = ck.optimizer
    assert type(opt).__name__ == "SGD" and opt.param_groups[0]["momentum"] == 0.9
    trainable = [p for p in ck.model.parameters() if p.trainable]
    assert all("velocity" in opt.state[p] for p in trainable)
    ref = np.load(os.path.join(DATA, "saved_format_v1.npz"))
    y = np.arange(16) % 3
    h = ck.model.fit(ref["X"], y, epochs=1, batch_size=8, optimizer=opt, seed=2, verbose=0)
    assert np.isfinite(h["loss"][0])


def test_saving_it_again_writes_the_same_architecture(tmp_path):
    path = os.path.join(tmp_path, "again.safetensors")
    lamina.save(lamina.load(FILE), path)
    assert json.loads(_metadata(path)["architecture"]) == json.loads(_metadata(FILE)["architecture"])


def test_the_entries_are_the_layers_own_configs():
    model = lamina.load(FILE)
    for layer, entry in zip(model, EXPECTED_LAYERS):
        assert lamina.io.layer_to_entry(layer) == entry
        assert type(lamina.io.layer_from_entry(entry)) is type(layer)
    assert isinstance(model[4], nn.Sequential)
