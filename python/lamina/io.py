"""Saving and loading models as safetensors files (never pickle).

File layout (any safetensors tool opens it):
- tensors: each parameter under its model path ("0.weight", "3.bias", ...), and each buffer
  (untrained state: "1.running_mean", "1.running_var", "1.num_batches_tracked" as int64) the
  same way, so the names are the keys of the same network's PyTorch state_dict; in a checkpoint
  also the optimiser state arrays as "optimizer.<parameter index>.<name>" (e.g. velocity).
- ``__metadata__`` (strings): "format" = "lamina", "format_version", "lamina_version",
  "architecture" (JSON: layer types, configs, per-parameter trainable/lr_scale, layer state
  such as dropout counters), "checksums" (JSON: CRC-32 of every tensor's bytes and, under
  "__metadata__", of all the other metadata entries), and in a checkpoint "optimizer" (JSON:
  type, param groups, scalar state), "scheduler", "epoch", "extra".

Format version 2 (written now) requires the checksums, metadata included, so a changed stride,
padding or dropout rate is detected like a flipped weight bit; version-1 files (checksums of the
tensors only, optional) still load.

Saving writes a temporary file in the target's folder (created with the usual permissions
under the process's umask, without changing it), fsyncs it, renames it over the target
(os.replace) and fsyncs the folder, so an interrupted save or a power loss never leaves a broken
or missing file; the temporary carries its writer's host and pid, and a later save or load of
the same path removes those whose writer was killed (never one still being written). Loading validates everything (header, data, checksums, the architecture's
nesting, every parameter shape it implies against the tensor table, every tensor's presence,
shape and dtype) before building or changing anything, and reports any problem as a ValueError;
a hostile file costs milliseconds and about its own size in memory.
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import socket
import zlib
from dataclasses import dataclass, field

import numpy as np

FORMAT = "lamina"
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_OPT_PREFIX = "optimizer."
_META_KEY = "__metadata__"  # the checksum entry of the metadata itself
_MAX_HEADER = 100 * 1024 * 1024
MAX_DEPTH = 32  # nesting of Sequentials in an architecture


# -- saving ---------------------------------------------------------------------------------
def save(model, path, *, optimizer=None, scheduler=None, epoch=None, extra=None):
    """Writes ``model`` to ``path`` (atomically). With ``optimizer`` (and optionally a
    ``scheduler``, the number of completed ``epoch``s and a JSON-able ``extra`` dict) the file is
    a checkpoint from which ``load_checkpoint`` resumes training exactly. ValueError for a
    scheduler without its optimizer, or an optimiser holding parameters not in the model.

    Example:

        >>> import os, tempfile, lamina
        >>> from lamina import io, models, optim
        >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
        >>> model = models.mlp(); opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> io.save(model, path, optimizer=opt, epoch=1, extra={"note": "warm start"})
        >>> io.load_checkpoint(path).extra
        {'note': 'warm start'}
    """
    from safetensors.numpy import save as st_save

    from ._native import __version__

    named = model.named_parameters()
    tensors = {name: np.ascontiguousarray(p.be.to_numpy(p.data)) for name, p in named}  # weights to the host
    tensors.update((name, b.numpy()) for name, b in _named_buffers(model))  # (0-d stays 0-d)
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "lamina_version": __version__,
            "architecture": json.dumps(layer_to_entry(model))}
    if optimizer is not None:
        sd = optimizer.state_dict(params=[p for _, p in named])
        scalars = {}
        for idx, st in sd["state"].items():
            for k, v in st.items():
                if isinstance(v, np.ndarray):
                    tensors[f"{_OPT_PREFIX}{idx}.{k}"] = np.ascontiguousarray(v)
                else:
                    scalars.setdefault(str(idx), {})[k] = v
        meta["optimizer"] = json.dumps({"type": sd["type"], "param_groups": sd["param_groups"], "scalars": scalars})
    elif scheduler is not None:
        raise ValueError("saving a scheduler needs its optimizer (optimizer=...)")
    if scheduler is not None:
        meta["scheduler"] = json.dumps(scheduler.state_dict())
    if epoch is not None:
        meta["epoch"] = str(int(epoch))
    if extra is not None:
        meta["extra"] = json.dumps(extra)
    sums = {k: _crc(v) for k, v in tensors.items()}
    sums[_META_KEY] = _meta_crc(meta)
    meta["checksums"] = json.dumps(sums)
    _atomic_write(path, st_save(tensors, metadata=meta))


def _named_buffers(model):
    """[(name, Buffer)] of a model's untrained state (running statistics), saved beside the
    parameters under their names; none for a model without ``named_buffers``."""
    fn = getattr(model, "named_buffers", None)
    return list(fn()) if callable(fn) else []


def _check_buffer(name, t, b):
    if b.is_float and t.dtype not in (np.float32, np.float64):
        raise ValueError(f"tensor {name!r} has dtype {t.dtype}; the buffer holds float32 or float64")
    if not b.is_float and t.dtype.kind not in "iu":
        raise ValueError(f"tensor {name!r} has dtype {t.dtype}; the buffer holds integers")
    if t.shape != tuple(b.shape):
        raise ValueError(f"tensor {name!r} has shape {t.shape}, the model expects {tuple(b.shape)}")


def _crc(a):
    return format(zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B")), "08x")


def _meta_crc(meta):
    """CRC-32 of every metadata entry but the checksums, in a canonical form."""
    body = json.dumps({k: v for k, v in meta.items() if k != "checksums"}, sort_keys=True)
    return format(zlib.crc32(body.encode("utf-8")), "08x")


def _host_tag():
    """This machine's name as it appears in temporary file names (letters, digits, - and _)."""
    return re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname())[:64] or "host"


def _temporary_name(path):
    """The hidden temporary a save of ``path`` writes first: the writer's host and pid tell a
    later save or load whether it is still being written (see _remove_stale_temporaries)."""
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.join(folder, f".{os.path.basename(path)}.{_host_tag()}.{os.getpid()}.{secrets.token_hex(8)}.tmp")


def _writer_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process, or no way to tell: alive
        return True
    return True


def _remove_stale_temporaries(path):
    """Removes the temporaries of ``path`` left by a save that was killed: those written on this
    host by a process that no longer exists. A temporary of a live process (a save under way),
    of another host or of another name is left alone; any error is ignored (a read-only folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    pattern = re.compile(r"\." + re.escape(base) + r"\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{16}\.tmp")
    host = _host_tag()
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or m.group("host") != host:
            continue
        pid = int(m.group("pid"))
        if pid == os.getpid() or _writer_alive(pid):
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass


def _atomic_write(path, data: bytes):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(path)
    tmp = _temporary_name(path)
    # O_EXCL: never follows or clobbers an existing file; mode 0o666 goes through the umask as
    # for any new file (no process-wide umask juggling, which races with other threads)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)  # the rename itself survives a crash only once the folder is on disk


def _fsync_dir(folder):
    try:
        dfd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # a platform or file system without directory handles
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# -- reading and validating ---------------------------------------------------------------------
def _read(path):
    """(metadata dict, tensors dict) of a lamina safetensors file, or ValueError."""
    from safetensors.numpy import load as st_load

    with open(path, "rb") as f:
        data = f.read()
    where = os.fspath(path)
    if len(data) < 8:
        raise ValueError(f"{where}: not a safetensors file ({len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    if n < 2 or n > _MAX_HEADER:
        raise ValueError(f"{where}: not a safetensors file (header length {n})")
    if n > len(data) - 8:
        raise ValueError(f"{where}: truncated file (header of {n} bytes, file of {len(data)})")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{where}: not a safetensors file or corrupted header (not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: corrupted safetensors header")
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "architecture" not in meta:
        raise ValueError(f"{where}: a safetensors file, but not a lamina model (no lamina architecture in its metadata)")
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        version = -1
    if version not in _READABLE_VERSIONS:
        raise ValueError(f"{where}: lamina file format version {meta.get('format_version')!r} is not supported")
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error type for bad offsets / truncation
        raise ValueError(f"{where}: corrupted or truncated safetensors data ({e})") from None
    if version >= 2 and "checksums" not in meta:
        raise ValueError(f"{where}: the checksums are missing (required from format version 2)")
    if "checksums" in meta:  # version 1: written by lamina.save; a converter may leave them out
        try:
            sums = json.loads(meta["checksums"])
        except (json.JSONDecodeError, RecursionError, TypeError):
            raise ValueError(f"{where}: corrupted checksums in the metadata") from None
        expected = set(tensors) | ({_META_KEY} if version >= 2 else set())
        if not isinstance(sums, dict) or set(sums) != expected:
            raise ValueError(f"{where}: the checksum list does not match the tensors (corrupted file)")
        if version >= 2 and sums[_META_KEY] != _meta_crc(meta):
            raise ValueError(f"{where}: the metadata is corrupted or was edited (checksum mismatch)")
        for k, t in tensors.items():
            if sums[k] != _crc(t):
                raise ValueError(f"{where}: tensor {k!r} is corrupted (checksum mismatch)")
    return meta, tensors


def _json_field(meta, key, where):
    try:
        return json.loads(meta[key])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ValueError(f"{where}: corrupted {key!r} entry in the metadata") from None
    except RecursionError:
        raise ValueError(f"{where}: the {key!r} entry is nested too deeply") from None


def _check_depth(arch, where):
    """The architecture's Sequentials nest at most MAX_DEPTH deep (checked without recursion)."""
    todo = [(arch, 1)]
    while todo:
        entry, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{where}: the architecture nests deeper than {MAX_DEPTH} levels")
        config = entry.get("config") if isinstance(entry, dict) else None
        layers = config.get("layers") if isinstance(config, dict) else None
        if isinstance(layers, list):
            todo.extend((e, depth + 1) for e in layers)


def _check_tensor(name, t, shape):
    if t.dtype not in (np.float32, np.float64):
        raise ValueError(f"tensor {name!r} has dtype {t.dtype}; lamina parameters are float32 or float64")
    if t.shape != tuple(shape):
        raise ValueError(f"tensor {name!r} has shape {t.shape}, the model expects {tuple(shape)}")


def _build(meta, tensors, where):
    """A new model from the architecture, with the file's weights (validated first)."""
    from .nn.layers import weights_from_file

    arch = _json_field(meta, "architecture", where)
    _check_depth(arch, where)
    # The parameters the architecture implies may not add up to more than the file's tensors
    # (plus 1 Mi values of slack) before anything is allocated; the weights come from the file.
    held = sum(t.size for k, t in tensors.items() if not k.startswith(_OPT_PREFIX))
    try:
        with weights_from_file(held + (1 << 20)):
            model = layer_from_entry(arch)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    except (MemoryError, OverflowError, RecursionError) as e:
        raise ValueError(f"{where}: the architecture asks for impossible sizes ({type(e).__name__}: {e})") from None
    except (TypeError, KeyError, AttributeError, IndexError) as e:  # a value of the wrong kind somewhere
        raise ValueError(f"{where}: malformed architecture ({type(e).__name__}: {e})") from None
    named = model.named_parameters()
    buffers = _named_buffers(model)
    model_names = {n for n, _ in named} | {n for n, _ in buffers}
    file_names = {k for k in tensors if not k.startswith(_OPT_PREFIX)}
    missing, unexpected = sorted(model_names - file_names), sorted(file_names - model_names)
    if missing:
        raise ValueError(f"{where}: missing tensor(s) {missing} for the architecture")
    if unexpected:
        raise ValueError(f"{where}: unexpected tensor(s) {unexpected} not in the architecture")
    dtypes = set()
    for name, p in named:
        try:
            _check_tensor(name, tensors[name], p.shape)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        dtypes.add(tensors[name].dtype)
    for name, b in buffers:
        try:
            _check_buffer(name, tensors[name], b)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if b.is_float:
            dtypes.add(tensors[name].dtype)
    if len(dtypes) > 1:
        raise ValueError(f"{where}: parameters of mixed dtypes {sorted(map(str, dtypes))}")
    for name, p in named:
        p.astype(tensors[name].dtype)
        p.assign(tensors[name])
    for name, b in buffers:
        b.astype(tensors[name].dtype)
        b.assign(tensors[name])
    return model, named


def load(path, backend=None):
    """The model saved at ``path``, on ``backend`` when given (else on the host, following the
    default backend). ValueError for a file that is not safetensors, truncated or corrupted, an
    unknown layer type, or a missing, extra or mis-shaped tensor.

    Example:

        >>> import os, tempfile, lamina
        >>> from lamina import io, models, optim
        >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
        >>> io.save(models.lenet5(), path)
        >>> io.load(path, backend="numpy").layers[0]
        Conv2D(in_channels=1, out_channels=6, kernel_size=5, stride=1, padding=2, dilation=1, bias=True)
    """
    where = os.fspath(path)
    _remove_stale_temporaries(where)
    meta, tensors = _read(path)
    model, _ = _build(meta, tensors, where)
    if backend is not None:
        model.to(backend)
    return model


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns: ``model`` (a Sequential), ``optimizer`` (rebuilt on
    the model's parameters with its state, or None), ``scheduler`` (or None), ``epoch`` (the
    number of completed epochs, or None) and ``extra`` (the JSON-able dict given to ``save``).
    It unpacks as ``model, optimizer, scheduler, epoch``.

    Example:

        >>> from lamina import io, nn
        >>> model, optimizer, scheduler, epoch = io.Checkpoint(nn.Sequential(), epoch=2)
        >>> optimizer, epoch
        (None, 2)
    """

    model: object
    optimizer: object = None
    scheduler: object = None
    epoch: int | None = None
    extra: dict | None = field(default=None)

    def __iter__(self):  # model, optimizer, scheduler, epoch = lamina.load_checkpoint(path)
        return iter((self.model, self.optimizer, self.scheduler, self.epoch))


def load_checkpoint(path, backend=None):
    """A Checkpoint (model, optimizer, scheduler, epoch, extra) from ``lamina.save(model, path,
    optimizer=..., scheduler=..., epoch=...)``: the optimiser is rebuilt on the loaded model's
    parameters with its state (momentum buffers, Adam moments and step counts), so
    ``model.fit(..., optimizer=ckpt.optimizer, initial_epoch=ckpt.epoch)`` continues exactly.
    With ``backend`` the model and the optimiser state are placed on that backend. ValueError
    for a bad file (as ``load``) or optimiser state that does not fit the model.

    Example:

        >>> import os, tempfile, lamina
        >>> from lamina import io, models, optim
        >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
        >>> model = models.mlp(); opt = optim.Adam(model.parameters())
        >>> io.save(model, path, optimizer=opt, scheduler=optim.StepLR(opt, step_size=2), epoch=4)
        >>> ckpt = io.load_checkpoint(path)
        >>> type(ckpt.optimizer).__name__, type(ckpt.scheduler).__name__, ckpt.epoch
        ('Adam', 'StepLR', 4)
    """
    from . import optim as _optim

    where = os.fspath(path)
    _remove_stale_temporaries(where)
    meta, tensors = _read(path)
    model, named = _build(meta, tensors, where)
    if backend is not None:
        model.to(backend)
    params = [p for _, p in named]
    optimizer = scheduler = None
    if "optimizer" in meta:
        od = _json_field(meta, "optimizer", where)
        try:
            cls = _optim.OPTIMIZERS[od["type"]]
            groups = []
            for g in od["param_groups"]:
                idx = g["params"]
                if not all(isinstance(i, int) and 0 <= i < len(params) for i in idx):
                    raise ValueError(f"optimizer param group names parameters {idx} out of {len(params)}")
                hyper = {k: (tuple(v) if isinstance(cls.defaults.get(k), tuple) else v)
                         for k, v in g.items() if k != "params"}
                groups.append({**hyper, "params": [params[i] for i in idx]})
            optimizer = cls(groups)
            state = {}
            for idx, sc in od.get("scalars", {}).items():
                state.setdefault(int(idx), {}).update(sc)
            for k, t in tensors.items():
                if k.startswith(_OPT_PREFIX):
                    idx, key = k[len(_OPT_PREFIX):].split(".", 1)
                    state.setdefault(int(idx), {})[key] = t
            sd = {"type": od["type"], "param_groups": [{k: v for k, v in g.items()} for g in od["param_groups"]],
                  "state": state}
            optimizer.load_state_dict(sd, params=params)
            if "scheduler" in meta:
                sd = _json_field(meta, "scheduler", where)
                scls = _optim.SCHEDULERS[sd["type"]]
                scheduler = scls(optimizer, **sd.get("config", {}), last_epoch=int(sd["last_epoch"]) - 1)
        except ValueError as e:
            raise ValueError(f"{where}: bad optimizer state: {e}") from None
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{where}: corrupted optimizer state in the metadata ({type(e).__name__}: {e})") from None
    epoch = None
    if "epoch" in meta:
        try:
            epoch = int(meta["epoch"])
        except ValueError:
            raise ValueError(f"{where}: corrupted 'epoch' entry in the metadata") from None
    extra = _json_field(meta, "extra", where) if "extra" in meta else None
    return Checkpoint(model, optimizer, scheduler, epoch, extra)


def load_weights(model, path, strict=True):
    """Copies the parameters saved at ``path`` into an existing ``model`` (matched by name, e.g.
    "0.weight"), after validating all of them; nothing changes when anything is wrong. With
    strict=False, names missing on either side are skipped (shapes must still match).
    Returns the list of names loaded. ValueError (naming the file) for missing or unexpected
    names under strict=True, or a tensor of the wrong shape.

    Example:

        >>> import os, tempfile, lamina
        >>> from lamina import io, models, optim
        >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
        >>> io.save(models.lenet5(), path)
        >>> names = io.load_weights(models.lenet5(), path)
        >>> names[:2], len(names)
        (['0.weight', '0.bias'], 10)
    """
    where = os.fspath(path)
    _remove_stale_temporaries(where)
    _, tensors = _read(path)
    named = model.named_parameters()
    buffers = _named_buffers(model)
    model_names = {n for n, _ in named} | {n for n, _ in buffers}
    file_names = {k for k in tensors if not k.startswith(_OPT_PREFIX)}
    if strict:
        missing, unexpected = sorted(model_names - file_names), sorted(file_names - model_names)
        if missing or unexpected:
            raise ValueError(f"{where}: tensors do not match the model (missing {missing}, unexpected {unexpected})")
    todo = [(n, p) for n, p in named if n in file_names]
    todo_buffers = [(n, b) for n, b in buffers if n in file_names]
    for n, p in todo:
        try:
            _check_tensor(n, tensors[n], p.shape)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    for n, b in todo_buffers:
        try:
            _check_buffer(n, tensors[n], b)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    for n, p in todo:
        p.assign(tensors[n])
    for n, b in todo_buffers:
        b.assign(tensors[n])
    return [n for n, _ in todo + todo_buffers]


# -- a layer's saved form ----------------------------------------------------------------------------
def layer_to_entry(layer):
    """The saved form of a layer (the "architecture" of a file is the model's):
    ``{"type": class name, "config": layer.get_config()}``, plus ``"params"`` (each parameter's
    ``trainable`` and ``lr_scale``; a container's are in its layers' entries) and ``"state"``
    (``get_state()``) where there are any. JSON-able. ValueError for a layer type that is not
    registered (``lamina.nn.register_layer``): every layer, a custom one included, is saved
    through its ``get_config`` and rebuilt through its class's ``from_config``.

    Example:

        >>> from lamina import io, nn
        >>> layer = nn.Dense(3, 2); layer.bias.trainable = False
        >>> io.layer_to_entry(layer)["params"]["bias"]
        {'trainable': False, 'lr_scale': 1.0}
    """
    from .nn.layers import LAYER_TYPES

    if type(layer).__name__ not in LAYER_TYPES or LAYER_TYPES[type(layer).__name__] is not type(layer):
        raise ValueError(f"layer type {type(layer).__name__} is not registered (lamina.nn.register_layer)")
    entry = {"type": type(layer).__name__, "config": layer.get_config()}
    params = {n: {"trainable": p.trainable, "lr_scale": p.lr_scale} for n, p in layer.named_parameters()
              if not layer.is_container}
    if params:
        entry["params"] = params
    state = layer.get_state()
    if state:
        entry["state"] = state
    return entry


def layer_from_entry(entry):
    """The layer ``layer_to_entry`` saved (fresh weights, its parameters' attributes and its
    state restored): the class registered under the entry's type, built by its ``from_config``.
    ValueError naming the layer for an unknown type or a malformed entry.

    Example:

        >>> from lamina import io, nn
        >>> io.layer_from_entry({"type": "Dense", "config": {"in_features": 3, "out_features": 2}})
        Dense(in_features=3, out_features=2, bias=True)
    """
    from .nn.layers import LAYER_TYPES

    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise ValueError(f"bad layer entry in the architecture: {entry!r}")
    cls = LAYER_TYPES.get(entry["type"])
    if cls is None:
        raise ValueError(f"unknown layer type {entry['type']!r} in the architecture")
    config = entry.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"bad config for layer {entry['type']}: {config!r}")
    try:
        layer = cls.from_config(config)
    except ValueError:
        raise
    except (TypeError, KeyError) as e:
        raise ValueError(f"bad config for layer {entry['type']}: {config!r} ({e})") from None
    _set_parameter_attributes(layer, entry)
    state = entry.get("state")
    if state:
        if not isinstance(state, dict):
            raise ValueError(f"bad state for layer {entry['type']}: {state!r}")
        layer.set_state(state)
    return layer


def _set_parameter_attributes(layer, entry):
    """The entry's "params" (trainable, lr_scale per parameter name) onto the built layer."""
    named = dict(layer.named_parameters())
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"bad parameter attributes for layer {entry['type']}: {params!r}")
    for name, attrs in params.items():
        if name not in named or not isinstance(attrs, dict):
            raise ValueError(f"layer {entry['type']} has no parameter {name!r}")
        trainable, lr_scale = attrs.get("trainable", True), attrs.get("lr_scale", 1.0)
        if not isinstance(trainable, bool) or isinstance(lr_scale, bool) or not isinstance(lr_scale, (int, float)) \
                or not math.isfinite(lr_scale):
            raise ValueError(f"bad attributes {attrs!r} for parameter {name!r} of layer {entry['type']}")
        named[name].trainable, named[name].lr_scale = trainable, float(lr_scale)
