"""What every experiment shares: the data, the result table, writing the JSON and the plots."""
from __future__ import annotations

import json
import math
import os
import sys
import time
import types
from dataclasses import dataclass, field

import numpy as np

BUNDLED_TRAIN = 8000  # the bundled sample's split used everywhere in lamina: 8,000 / 2,000


@dataclass
class Column:
    key: str
    header: str
    fmt: str = "{:.4g}"  # a format string, or "%" for a fraction shown as a percentage


@dataclass
class Result:
    """An experiment's measured numbers: ``rows`` (list of dicts) shown under ``columns``;
    ``notes``: sentences derived from the numbers; ``data``: further measured series (curves,
    spectra) saved in the JSON; ``settings``: what was run; ``files``: what was written.
    Iterating over a Result iterates over its rows."""

    name: str
    title: str
    columns: list
    rows: list
    notes: list = field(default_factory=list)
    data: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    seconds: float = 0.0

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def column(self, key):
        return [r.get(key) for r in self.rows]

    def table(self) -> str:
        """The rows as a plain-text (Markdown-compatible) table, then the notes."""
        head = [c.header for c in self.columns]
        body = [[_fmt(r.get(c.key), c.fmt) for c in self.columns] for r in self.rows]
        widths = [max(len(x) for x in col) for col in zip(head, *body)]

        def line(cells):
            return "| " + " | ".join(s.ljust(w) for s, w in zip(cells, widths)) + " |"

        out = [f"{self.title}", "", line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += [line(r) for r in body]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out)

    def __str__(self):
        return self.table()

    def to_dict(self):
        return {"name": self.name, "title": self.title,
                "columns": [{"key": c.key, "header": c.header} for c in self.columns],
                "rows": self.rows, "notes": self.notes, "data": self.data, "settings": self.settings,
                "files": self.files, "seconds": self.seconds}


def _fmt(v, fmt):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)) and fmt == "{:.4g}":
        return f"{int(v):,}" if abs(int(v)) >= 10000 else str(int(v))
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")
    if fmt == "%":
        return f"{100 * f:.1f}%"
    return fmt.format(f)


def jsonable(x):
    """Plain JSON types: NumPy scalars and arrays converted, non-finite floats -> None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return f if math.isfinite(f) else None
    if x is None or isinstance(x, str):
        return x
    return str(x)


# -- data ------------------------------------------------------------------------------------
_DATA = {}


def dense_stack(sizes, act, init=None, flatten=True, each=None):
    """Sequential([Flatten], Dense(sizes[0], sizes[1]), act(), ..., Dense(sizes[-2], sizes[-1])):
    the MLPs of the experiments. ``init`` goes to every Dense; ``each(dense)`` runs after each
    Dense is built (e.g. to set its bias), in layer order."""
    from ..nn import Dense, Flatten, Sequential

    layers = [Flatten()] if flatten else []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        d = Dense(a, b) if init is None else Dense(a, b, init=init)
        if each is not None:
            each(d)
        layers.append(d)
        if i < len(sizes) - 2:
            layers.append(act())
    return Sequential(*layers)


def mnist():
    """The bundled MNIST sample split as everywhere in lamina: (X_train, y_train, X_test, y_test),
    X float32 (N, 1, 28, 28) in [0, 1]: 8,000 / 2,000."""
    if "mnist" not in _DATA:
        from ..datasets import load_mnist

        X, y = load_mnist()
        _DATA["mnist"] = (X[:BUNDLED_TRAIN], y[:BUNDLED_TRAIN], X[BUNDLED_TRAIN:], y[BUNDLED_TRAIN:])
    return _DATA["mnist"]


def flat(X):
    return np.ascontiguousarray(X.reshape(len(X), -1))


def per_class_subset(y, per_class, classes=None, seed=0):
    """Indices of ``per_class`` examples of each class (the first ones in a seeded shuffle)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y) if classes is None else classes
    idx = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in classes]
    return np.sort(np.concatenate(idx))


def accuracy(model, X, y):
    return model.evaluate(X, y)[1]


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


# -- running and writing ---------------------------------------------------------------------
def check_settings(cfg, settings):
    """``settings`` (a dict, or None) checked against an experiment's configuration ``cfg``:
    ValueError for a name the experiment does not have; returns the dict to update cfg with."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(cfg))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; the settings are {sorted(cfg)}")
    return settings


def begin(name, fast, seed):
    """Seeds lamina's generator; returns the start time."""
    import lamina

    lamina.seed(seed)
    return time.perf_counter()


def finish(result, out, plots=(), verbose=True, t0=None):
    """Prints the table, writes ``<out>/<name>.json`` and each plot ``(filename, fn(path))`` under
    ``out`` (skipped with a note when matplotlib is missing). Returns the result."""
    import lamina

    if t0 is not None:
        result.seconds = time.perf_counter() - t0
    result.settings.setdefault("lamina_version", lamina.__version__)
    info = lamina.backend_info()
    result.settings.setdefault("cpu_path", info.get("isa"))
    result.settings.setdefault("threads", info.get("threads"))
    if out is not None:
        os.makedirs(out, exist_ok=True)
        for filename, fn in plots:
            path = os.path.join(out, filename)
            try:
                fn(path)
            except ImportError as e:
                result.notes.append(f"plot {filename} not written: {e}")
                continue
            result.files.append(path)
        jpath = os.path.join(out, f"{result.name}.json")
        result.files.append(jpath)
        tmp = jpath + ".tmp"
        with open(tmp, "w") as f:
            json.dump(jsonable(result.to_dict()), f, indent=1)
        os.replace(tmp, jpath)
    if verbose:
        print(result.table())
        print(f"\n({result.name}: {result.seconds:.1f} s"
              + (f"; wrote {', '.join(os.path.basename(p) for p in result.files)} to {out}" if out else "") + ")",
              flush=True)
    return result


class _ExperimentModule(types.ModuleType):
    """An experiment module that can be called: ``lamina.experiments.vanishing(fast=True)`` is
    ``lamina.experiments.vanishing.run(fast=True)``."""

    def __call__(self, *args, **kwargs):
        return self.run(*args, **kwargs)


def make_callable(module_name):
    sys.modules[module_name].__class__ = _ExperimentModule
