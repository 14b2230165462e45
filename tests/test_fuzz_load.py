"""A fuzzer for the loader: valid files, mutated (bit flips, truncation, header and
metadata edits, offsets past the end), must all be rejected with a ValueError or load to a model
that predicts exactly what the original predicts. Anything else (another exception type, a
crash, a hang) is a bug. Bounded, derandomized example counts keep CI's time fixed."""
import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lamina
from lamina import io, nn

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    lamina.seed(0)
    model = nn.Sequential(nn.Conv2D(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Dense(3 * 4 * 4, 5), nn.Dropout(0.2, seed=1), nn.Tanh(), nn.Dense(5, 4))
    path = tmp_path_factory.mktemp("fuzz") / "good.safetensors"
    lamina.save(model, path)
    X = np.random.default_rng(1).standard_normal((6, 1, 8, 8)).astype(np.float32)
    return path.read_bytes(), X, model.predict(X)


def _split(data):
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join(header, body):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _check(tmp_path, data, X, expected, same=True):
    """Loads the mutated bytes: a ValueError, or a model predicting ``expected`` (``same``) or,
    for a file re-signed after its architecture was edited (a valid file of another model),
    one whose predictions come out or fail with a ValueError (e.g. another input size)."""
    p = tmp_path / "fuzzed.safetensors"
    p.write_bytes(data)
    try:
        model = lamina.load(p)
    except ValueError:
        event("rejected")
        return "rejected"
    if same:
        np.testing.assert_array_equal(model.predict(X), expected)
    else:
        try:
            model.predict(X)
        except ValueError:
            pass
    event("loaded")
    return "loaded"


@SETTINGS
@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=4))
def test_bit_flips(tmp_path, original, flips):
    data, X, expected = original
    buf = bytearray(data)
    for where, bit in flips:
        buf[int(where * len(buf))] ^= 1 << bit
    _check(tmp_path, bytes(buf), X, expected)


@SETTINGS
@given(st.floats(0, 1, exclude_max=True))
def test_truncation(tmp_path, original, frac):
    data, X, expected = original
    assert _check(tmp_path, data[: int(frac * len(data))], X, expected) == "rejected"


TENSOR_EDITS = st.one_of(
    st.tuples(st.just("data_offsets"), st.lists(st.integers(-2**63, 2**64), min_size=0, max_size=3)),
    st.tuples(st.just("data_offsets"), st.tuples(st.integers(0, 10**6), st.integers(10**6, 2**62))),
    st.tuples(st.just("shape"), st.lists(st.integers(-1, 2**40), min_size=0, max_size=5)),
    st.tuples(st.just("dtype"), st.sampled_from(["F64", "F16", "I64", "BOOL", "U8", "XX", 3])),
)


@SETTINGS
@given(st.data())
def test_header_edits(tmp_path, original, data):
    raw, X, expected = original
    header, body = _split(raw)
    names = sorted(k for k in header if k != "__metadata__")
    name = data.draw(st.sampled_from(names))
    key, value = data.draw(TENSOR_EDITS)
    header[name] = {**header[name], key: list(value) if isinstance(value, tuple) else value}
    _check(tmp_path, _join(header, body), X, expected)


def _arch_paths(obj, path=()):
    """Every (path, value) of the architecture's JSON tree."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _arch_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _arch_paths(v, path + (i,))


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64), st.floats(allow_nan=True),
              st.text(max_size=8), st.sampled_from(["Dense", "Conv2D", "Sequential", "RNN", "relu", "tanh"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


@SETTINGS
@given(st.data(), st.booleans())
def test_metadata_edits(tmp_path, original, data, fix_checksum):
    """An edited architecture (any node replaced by any JSON value), with the metadata checksum
    recomputed as an attacker would, or left stale."""
    raw, X, expected = original
    header, body = _split(raw)
    meta = header["__metadata__"]
    arch = json.loads(meta["architecture"])
    paths = [p for p, _ in _arch_paths(arch) if p]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(JSON_VALUES)
    node = arch
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    changed = json.dumps(arch) != meta["architecture"]
    meta["architecture"] = json.dumps(arch)
    if fix_checksum:
        sums = json.loads(meta["checksums"])
        sums[io._META_KEY] = io._meta_crc(meta)
        meta["checksums"] = json.dumps(sums)
    result = _check(tmp_path, _join(header, body), X, expected, same=not (changed and fix_checksum))
    if changed and not fix_checksum:
        assert result == "rejected"


@SETTINGS
@given(st.sampled_from(["format", "format_version", "architecture", "checksums", "lamina_version", "extra"]),
       JSON_VALUES)
def test_metadata_entries_replaced(tmp_path, original, key, value):
    raw, X, expected = original
    header, body = _split(raw)
    meta = header["__metadata__"]
    meta[key] = value if isinstance(value, str) else json.dumps(value)
    if key != "checksums":
        sums = json.loads(meta["checksums"])
        sums[io._META_KEY] = io._meta_crc(meta)
        meta["checksums"] = json.dumps(sums)
    _check(tmp_path, _join(header, body), X, expected, same=key in ("lamina_version", "extra"))
