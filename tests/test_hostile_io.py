"""Files that lie, saves that race, loads in other threads."""
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import numpy as np
import pytest
from safetensors.numpy import save_file

import lamina
from lamina import init, io, nn


def write(path, arch, tensors, version="2", arch_text=None):
    """A lamina file with any architecture (valid checksums), as an attacker would craft it."""
    meta = {"format": "lamina", "format_version": version, "lamina_version": "0",
            "architecture": arch_text if arch_text is not None else json.dumps(arch)}
    sums = {k: io._crc(v) for k, v in tensors.items()}
    if version == "2":
        sums[io._META_KEY] = io._meta_crc(meta)
    meta["checksums"] = json.dumps(sums)
    save_file(tensors, str(path), metadata=meta)
    return path


def _dense_bomb(path):
    arch = {"type": "Sequential", "config": {"layers": [
        {"type": "Dense", "config": {"in_features": 60000, "out_features": 60000}}]}}
    return write(path, arch, {"0.weight": np.zeros((3, 4), np.float32), "0.bias": np.zeros(3, np.float32)})


def test_a_tiny_file_declaring_a_huge_layer_is_rejected_at_once(tmp_path):
    p = _dense_bomb(tmp_path / "bomb.safetensors")
    assert os.path.getsize(p) < 1000
    # "at once": refused from the header, before any layer is built; the 60000 x 60000 weight
    # (13.4 GiB) is never allocated, nor any part of it (NumPy reports to tracemalloc)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"\(60000, 60000\).*more than the file"):
            lamina.load(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated while refusing the file"


def test_loading_a_hostile_file_stays_within_a_memory_bound(tmp_path):
    p = _dense_bomb(tmp_path / "bomb.safetensors")
    code = textwrap.dedent(f"""
        import resource, lamina
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            lamina.load({str(p)!r})
        except ValueError:
            pass
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.strip()) < 32.0  # MiB above the interpreter with lamina imported


def test_deep_nesting_is_a_value_error(tmp_path):
    inner = '{"type": "Dense", "config": {"in_features": 1, "out_features": 1}}'
    for depth in (io.MAX_DEPTH + 1, 20000):
        text = '{"type": "Sequential", "config": {"layers": [' * depth + inner + "]}}" * depth
        p = write(tmp_path / f"deep{depth}.safetensors", None,
                  {"x": np.zeros(1, np.float32)}, arch_text=text)
        with pytest.raises(ValueError, match="nest"):
            lamina.load(p)


def test_the_cli_reports_a_hostile_file_without_a_traceback(tmp_path):
    p = _dense_bomb(tmp_path / "bomb.safetensors")
    r = subprocess.run([sys.executable, "-m", "lamina", "evaluate", str(p)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "60000" in r.stderr


def test_saving_keeps_the_umask_and_leaves_no_temporary(tmp_path):
    model = nn.Sequential(nn.Dense(3, 2))
    before = os.umask(0o027)
    try:
        lamina.save(model, tmp_path / "m.safetensors")
    finally:
        os.umask(before)
    mode = stat.S_IMODE(os.stat(tmp_path / "m.safetensors").st_mode)
    assert mode == 0o640
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_saving_fsyncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)
    monkeypatch.setattr(os, "fsync", spy)
    lamina.save(nn.Sequential(nn.Dense(3, 2)), tmp_path / "m.safetensors")
    assert synced == [False, True]  # the data, then the folder holding the rename


def test_a_layer_built_in_another_thread_during_a_load_is_initialised(tmp_path):
    from lamina.nn import layers
    token = layers._FROM_FILE.set([10 ** 9])  # what lamina.load sets while it builds a model
    try:
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("w", nn.Dense(8, 8).weight.data.copy()))
        t.start()
        t.join()
        assert np.count_nonzero(out["w"]) == 64
        assert np.count_nonzero(nn.Dense(8, 8).weight.data) == 0  # this context is loading
    finally:
        layers._FROM_FILE.reset(token)


def test_threads_have_their_own_generators():
    lamina.seed(5)
    expected = nn.Dense(4, 4).weight.data.copy()
    lamina.seed(5)

    def build():  # another thread seeding and drawing must not touch this thread's stream
        lamina.seed(6)
        nn.Dense(4, 4)
    t = threading.Thread(target=build)
    t.start()
    t.join()
    np.testing.assert_array_equal(nn.Dense(4, 4).weight.data, expected)


def test_an_integer_rng_gives_independent_streams_to_lsuv_layers(rng):
    model = nn.Sequential(nn.Dense(16, 16), nn.ReLU(), nn.Dense(16, 16), nn.ReLU(), nn.Dense(16, 16))
    X = rng.standard_normal((256, 16)).astype(np.float32)
    init.lsuv(model, X, rng=3)
    w0, w2 = model[0].weight.data, model[2].weight.data
    cos = np.abs(np.sum(w0 * w2)) / (np.linalg.norm(w0) * np.linalg.norm(w2))
    assert cos < 0.5  # not the same orthogonal matrix rescaled
