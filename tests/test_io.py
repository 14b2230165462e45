"""lamina.save / lamina.load: round trips, every bad-file case, atomic writes, checkpoints
that resume training exactly."""
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from nn_helpers import params_of
from safetensors.numpy import save_file

import lamina
from lamina import io, nn, optim
from lamina.io import _crc


@pytest.fixture(autouse=True)
def _seeded():
    lamina.seed(99)


def make_model():
    return nn.Sequential(nn.Conv2D(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                         nn.Dropout(0.25), nn.Dense(4 * 4 * 4, 16), nn.Tanh(), nn.Dense(16, 3))


def data(rng, n=48):
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, n)


def rewrite(path, out, tensors=None, meta=None, fix_checksums=True):
    """Reads a lamina file, lets the caller change tensors/metadata, writes it to ``out``."""
    meta0, tensors0 = io._read(path)
    t = dict(tensors0) if tensors is None else tensors(dict(tensors0))
    m = dict(meta0) if meta is None else meta(dict(meta0))
    if fix_checksums and "checksums" in m:
        sums = {k: _crc(v) for k, v in t.items()}
        if m.get("format_version") == "2":
            sums[io._META_KEY] = io._meta_crc(m)
        m["checksums"] = json.dumps(sums)
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, str(out), metadata=m)
    return out


def test_round_trip(tmp_path, rng):
    model = make_model()
    model[5].weight.trainable = False
    model[7].bias.lr_scale = 0.25
    model[4].calls = 17
    path = tmp_path / "m.safetensors"
    lamina.save(model, path)
    loaded = lamina.load(path)
    assert isinstance(loaded, nn.Sequential) and [type(layer) for layer in loaded] == [type(layer) for layer in model]
    for a, b in zip(params_of(model), params_of(loaded)):
        np.testing.assert_array_equal(a, b)
    x, _ = data(rng, 5)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert loaded[5].weight.trainable is False and loaded[7].bias.lr_scale == 0.25
    assert loaded[4].calls == 17 and loaded[4].seed == model[4].seed and loaded[0].padding == (1, 1)
    assert loaded.get_config() == model.get_config()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left behind


def test_opens_in_plain_safetensors(tmp_path):
    from safetensors import safe_open
    model = make_model()
    path = tmp_path / "m.safetensors"
    lamina.save(model, path)
    with safe_open(str(path), framework="np") as f:
        assert set(f.keys()) == {"0.weight", "0.bias", "5.weight", "5.bias", "7.weight", "7.bias"}
        arch = json.loads(f.metadata()["architecture"])
        np.testing.assert_array_equal(f.get_tensor("5.weight"), model[5].weight.data)
    assert arch["type"] == "Sequential" and arch["config"]["layers"][0]["type"] == "Conv2D"


def test_round_trip_rnn_float64_and_single_layer(tmp_path, rng):
    model = nn.Sequential(nn.RNN(3, 5, return_sequences=True), nn.RNN(5, 4, nonlinearity="relu"), nn.Dense(4, 2))
    model.astype(np.float64)
    lamina.save(model, tmp_path / "r.safetensors")
    loaded = lamina.load(tmp_path / "r.safetensors")
    assert loaded[0].weight_hh.dtype == np.float64
    x = rng.standard_normal((2, 6, 3))
    np.testing.assert_array_equal(model.to("numpy").predict(x), loaded.to("numpy").predict(x))
    lamina.save(nn.Dense(3, 2), tmp_path / "d.safetensors")
    assert isinstance(lamina.load(tmp_path / "d.safetensors"), nn.Dense)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    lamina.save(make_model(), path)
    before = path.read_bytes()

    def fail(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        lamina.save(make_model(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def _kill_during_save(path):
    """Starts a process whose ``lamina.save(path)`` stops inside its write (fsync blocks), waits
    for its temporary to appear and returns (process, temporary's name)."""
    code = textwrap.dedent(f"""
        import os, time, lamina
        os.fsync = lambda fd: time.sleep(600)   # the save stops with its temporary written
        model = lamina.nn.Sequential(lamina.nn.Dense(3, 2))
        lamina.save(model, {str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    folder = path.parent
    for _ in range(600):
        temps = [p.name for p in folder.iterdir() if p.name.startswith(f".{path.name}.") and p.name.endswith(".tmp")]
        if temps:
            return proc, temps[0]
        assert proc.poll() is None, "the writer ended before writing its temporary"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the writer wrote no temporary")


@pytest.mark.parametrize("then", ["save", "load", "load_checkpoint", "load_weights"])
def test_a_killed_save_leaves_a_temporary_that_a_later_save_or_load_removes(tmp_path, then):
    path = tmp_path / "m.safetensors"
    model = make_model()
    lamina.save(model, path, optimizer=optim.SGD(model.parameters(), lr=0.1))
    proc, temp = _kill_during_save(path)
    try:
        assert str(proc.pid) in temp.split(".")  # the temporary names its writer
        # still being written: a save or load of the same path leaves it alone
        lamina.load(path)
        assert (tmp_path / temp).exists()
    finally:
        proc.kill()
        proc.wait()
    # the writer is gone: its temporary is stale. Others are kept: a live process's (this
    # one's), another host's, another file's
    live = f".m.safetensors.{io._host_tag()}.{os.getpid()}.{'0' * 16}.tmp"
    other_host = f".m.safetensors.not-{io._host_tag()}.{proc.pid}.{'1' * 16}.tmp"
    other_file = f".n.safetensors.{io._host_tag()}.{proc.pid}.{'2' * 16}.tmp"
    for name in (live, other_host, other_file):
        (tmp_path / name).write_bytes(b"partial")
    if then == "save":
        lamina.save(make_model(), path)
    elif then == "load":
        lamina.load(path)
    elif then == "load_checkpoint":
        lamina.load_checkpoint(path)
    else:
        io.load_weights(make_model(), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.safetensors", live, other_host, other_file])


# -- bad files ---------------------------------------------------------------------------------------
@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.safetensors"
    lamina.save(make_model(), path)
    return path


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        lamina.load(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("content", [b"", b"abc", b"hello world, not a model at all",
                                     b"\xff" * 64, (20).to_bytes(8, "little") + b"{not json" + b" " * 11],
                         ids=["empty", "tiny", "text", "garbage", "bad-json"])
def test_not_safetensors(tmp_path, content):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(content)
    with pytest.raises(ValueError, match="not a safetensors file|truncated|corrupted"):
        lamina.load(p)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95, 0.999])
def test_truncated(tmp_path, good, keep):
    raw = good.read_bytes()
    p = tmp_path / "cut.safetensors"
    p.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ValueError, match="truncated|corrupted|not a safetensors"):
        lamina.load(p)


def test_corrupted_data_byte(tmp_path, good):
    raw = bytearray(good.read_bytes())
    raw[-10] ^= 0xFF  # inside the last tensor's data
    p = tmp_path / "flip.safetensors"
    p.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted"):
        lamina.load(p)


def test_plain_safetensors_without_lamina_metadata(tmp_path):
    p = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros((2, 2), np.float32)}, str(p))
    with pytest.raises(ValueError, match="not a lamina model"):
        lamina.load(p)


def _arch_edit(fn):
    def edit(m):
        arch = json.loads(m["architecture"])
        fn(arch)
        m["architecture"] = json.dumps(arch)
        return m
    return edit


@pytest.mark.parametrize("case,edit,match", [
    ("unknown-layer", dict(meta=_arch_edit(lambda a: a["config"]["layers"][1].update(type="Swish"))), "unknown layer type 'Swish'"),
    ("bad-config", dict(meta=_arch_edit(lambda a: a["config"]["layers"][5]["config"].update(out_features=-3))), "Dense sizes"),
    ("extra-config-key", dict(meta=_arch_edit(lambda a: a["config"]["layers"][5]["config"].update(colour="red"))), "bad config"),
    ("bad-arch-json", dict(meta=lambda m: {**m, "architecture": "{oops"}), "architecture"),
    ("missing-tensor", dict(tensors=lambda t: {k: v for k, v in t.items() if k != "5.bias"}), r"missing tensor.*5\.bias"),
    ("extra-tensor", dict(tensors=lambda t: {**t, "9.weight": np.zeros(3, np.float32)}), r"unexpected tensor.*9\.weight"),
    ("mis-shaped", dict(tensors=lambda t: {**t, "5.weight": np.zeros((16, 63), np.float32)}), r"5\.weight.*shape"),
    ("wrong-dtype", dict(tensors=lambda t: {**t, "7.bias": np.zeros(3, np.int32)}), "dtype"),
    ("mixed-dtypes", dict(tensors=lambda t: {**t, "7.bias": np.zeros(3, np.float64)}), "mixed dtypes"),
    ("version", dict(meta=lambda m: {**m, "format_version": "7"}), "version"),
    ("checksums", dict(meta=lambda m: {**m, "checksums": "[1, 2"}, fix_checksums=False), "checksum"),
], ids=lambda v: v if isinstance(v, str) and " " not in v and "\\" not in v and "*" not in v else None)
def test_bad_model_files(tmp_path, good, case, edit, match):
    p = rewrite(good, tmp_path / f"{case}.safetensors", **edit)
    with pytest.raises(ValueError, match=match):
        lamina.load(p)


def test_checksum_mismatch_when_not_recomputed(tmp_path, good):
    p = rewrite(good, tmp_path / "x.safetensors", tensors=lambda t: {**t, "7.bias": t["7.bias"] + 1}, fix_checksums=False)
    with pytest.raises(ValueError, match=r"7\.bias.*corrupted"):
        lamina.load(p)


def test_load_weights_changes_nothing_on_error(tmp_path, good, rng):
    model = make_model()
    before = params_of(model)
    bad = rewrite(good, tmp_path / "bad.safetensors", tensors=lambda t: {**t, "7.weight": np.zeros((3, 15), np.float32)})
    with pytest.raises(ValueError, match=r"7\.weight"):
        lamina.load_weights(model, bad)
    for a, b in zip(before, params_of(model)):
        np.testing.assert_array_equal(a, b)
    names = lamina.load_weights(model, good)
    assert len(names) == 6
    np.testing.assert_array_equal(model[5].weight.data, lamina.load(good)[5].weight.data)
    partial = nn.Sequential(nn.Conv2D(1, 4, 3, padding=1))
    with pytest.raises(ValueError, match="unexpected"):
        lamina.load_weights(partial, good)
    assert lamina.load_weights(partial, good, strict=False) == ["0.weight", "0.bias"]


# -- checkpoints ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_resume_from_checkpoint_equals_uninterrupted(tmp_path, rng, opt_name):
    X, y = data(rng)

    def make_opt(model):
        if opt_name == "sgd":
            return optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
        return optim.Adam(model.parameters(), lr=0.01)

    lamina.seed(7)
    a = make_model()
    b = make_model()
    for p, q in zip(a.parameters(), b.parameters()):
        q.data[...] = p.data
    b[4].seed = a[4].seed
    opt_a = make_opt(a)
    sched_a = optim.StepLR(opt_a, step_size=1, gamma=0.5)
    a.fit(X, y, epochs=3, batch_size=8, optimizer=opt_a, seed=3, callbacks=[sched_a], verbose=0)

    opt_b = make_opt(b)
    sched_b = optim.StepLR(opt_b, step_size=1, gamma=0.5)
    b.fit(X, y, epochs=1, batch_size=8, optimizer=opt_b, seed=3, callbacks=[sched_b], verbose=0)
    path = tmp_path / "ckpt.safetensors"
    lamina.save(b, path, optimizer=opt_b, scheduler=sched_b, epoch=1, extra={"note": "half way"})
    del b, opt_b, sched_b
    ck = lamina.load_checkpoint(path)
    assert ck.epoch == 1 and ck.extra == {"note": "half way"} and type(ck.optimizer).__name__ == type(opt_a).__name__
    assert ck.optimizer.lr == pytest.approx(0.05 * 0.5 if opt_name == "sgd" else 0.01 * 0.5)
    ck.model.fit(X, y, epochs=3, batch_size=8, optimizer=ck.optimizer, seed=3, callbacks=[ck.scheduler],
                 initial_epoch=ck.epoch, verbose=0)
    for p, q in zip(params_of(a), params_of(ck.model)):
        np.testing.assert_array_equal(p, q)
    model, opt, sched, epoch = lamina.load_checkpoint(path)
    assert epoch == 1 and sched.last_epoch == 1


def test_bad_checkpoint_optimizer_state(tmp_path, rng):
    X, y = data(rng, 16)
    model = make_model()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.fit(X, y, epochs=1, batch_size=8, optimizer=opt, verbose=0)
    path = tmp_path / "c.safetensors"
    lamina.save(model, path, optimizer=opt)
    assert lamina.load(path) is not None  # a checkpoint is also a model file
    p = rewrite(path, tmp_path / "c2.safetensors",
                tensors=lambda t: {**t, "optimizer.0.velocity": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match="optimizer"):
        lamina.load_checkpoint(p)
    p = rewrite(path, tmp_path / "c3.safetensors", meta=lambda m: {**m, "optimizer": json.dumps({"type": "Lion"})})
    with pytest.raises(ValueError, match="optimizer"):
        lamina.load_checkpoint(p)


def test_version_1_file_without_checksums_loads(tmp_path, good):
    p = rewrite(good, tmp_path / "nosum.safetensors",
                meta=lambda m: {**{k: v for k, v in m.items() if k != "checksums"}, "format_version": "1"})
    np.testing.assert_array_equal(lamina.load(p)[5].weight.data, lamina.load(good)[5].weight.data)


def test_version_1_file_with_tensor_checksums_loads(tmp_path, good):
    def v1(m):
        sums = json.loads(m["checksums"])
        del sums[io._META_KEY]
        return {**m, "format_version": "1", "checksums": json.dumps(sums)}
    p = rewrite(good, tmp_path / "v1.safetensors", meta=v1, fix_checksums=False)
    np.testing.assert_array_equal(lamina.load(p)[5].weight.data, lamina.load(good)[5].weight.data)


def test_version_2_requires_checksums_and_they_cover_the_metadata(tmp_path, good):
    p = rewrite(good, tmp_path / "nosum.safetensors", meta=lambda m: {k: v for k, v in m.items() if k != "checksums"})
    with pytest.raises(ValueError, match="checksums are missing"):
        lamina.load(p)

    def stride(m):
        arch = json.loads(m["architecture"])
        arch["config"]["layers"][0]["config"]["stride"] = 2
        return {**m, "architecture": json.dumps(arch)}
    p = rewrite(good, tmp_path / "stride.safetensors", meta=stride, fix_checksums=False)
    with pytest.raises(ValueError, match="metadata is corrupted or was edited"):
        lamina.load(p)
