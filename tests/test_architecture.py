"""The shape of python/lamina, checked by walking its syntax trees (nothing is imported).

What counts as an import: every ``import`` and ``from ... import`` statement anywhere in a
module, at module level or inside a function (a lazy import is still a dependency: it only
moves the moment it runs, and a cycle through it is a cycle all the same; the backend registry
reaches the CUDA backend through ``lamina.backend.register_lazy`` and a module name, which is
not an import of it). ``from P import name`` depends on ``P.name`` where that is a module of
the package, else on ``P`` itself. A package's own ``__init__`` is not counted as imported by
its submodules when they only reach siblings through it (Python runs it first in any case), but
a name taken from it (``from . import __version__``) is a dependency on it.

The rules:
1. no import cycles among lamina's modules;
2. no ``from X import _name`` where X is another module, unless X is a private helper module
   (its last part starts with "_") of the importer's own package (``experiments._common`` for
   the experiments); no assignment to another object's private attribute (``p._zeroed = ...``);
3. ``lamina.reference`` and ``lamina.ops`` import no model, training or workflow module;
   ``lamina.backend`` imports no backend's internals (``lamina.cuda``, ``lamina._native`` are
   reached through the registry); the layers and the container (``lamina.nn``) import neither
   ``lamina.distributed`` nor ``lamina.optim`` nor a workflow or ``lamina.diagnostics`` (the
   container uses the training loop of ``lamina.training``, which reaches MPI lazily);
   ``lamina.optim`` imports no diagnostics;
4. no function over 60 lines (its docstring apart) or nested deeper than 4 blocks, outside ``lamina.experiments``
   (whose ``run`` functions are held to the same length).
"""
from __future__ import annotations

import ast
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "python"
PACKAGE = "lamina"

MAX_LINES = 60  # a function's lines, from its ``def`` to its last line, its docstring left out
MAX_NESTING = 4  # if/for/while/with/try blocks inside one another, within one function

# Rule 3: (importer prefix, forbidden imported prefixes, why)
FORBIDDEN = [
    ("lamina.reference", ("lamina.nn", "lamina.training", "lamina.optim", "lamina.losses", "lamina.io",
                          "lamina.diagnostics", "lamina.distributed", "lamina.pretrain", "lamina.transfer",
                          "lamina.distill", "lamina._workflows", "lamina.experiments", "lamina.models",
                          "lamina.cli"), "the reference kernels import no model, training or workflow module"),
    ("lamina.ops", ("lamina.nn", "lamina.training", "lamina.optim", "lamina.losses", "lamina.io",
                    "lamina.diagnostics", "lamina.distributed", "lamina.pretrain", "lamina.transfer",
                    "lamina.distill", "lamina._workflows", "lamina.experiments", "lamina.models",
                    "lamina.cli"), "the ops import no model, training or workflow module"),
    ("lamina.backend", ("lamina.cuda", "lamina._native", "lamina._cuda"),
     "the backend contract imports no backend's internals (backends register themselves)"),
    ("lamina.nn", ("lamina.distributed", "lamina.optim", "lamina.diagnostics",
                   "lamina._workflows", "lamina.pretrain", "lamina.transfer", "lamina.distill",
                   "lamina.experiments", "lamina.cli"),
     "the layers and the container import no MPI, optimiser, workflow or diagnostics"),
    ("lamina.optim", ("lamina.diagnostics",), "the optimisers import no diagnostics"),
]


def _modules(root=ROOT):
    """{module name: path} of every .py file under python/lamina."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def _resolve(module, is_pkg, level, name):
    """The absolute module named by a relative ``from`` of ``level`` dots inside ``module``."""
    if level == 0:
        return name
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports(module, path, is_pkg, modules):
    """[(imported lamina module, [names imported from it], line)] of every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == PACKAGE:
                    out.append((_known(a.name, modules), [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_pkg, node.level, node.module or "")
            if target.split(".")[0] != PACKAGE:
                continue
            names = []
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in modules:
                    out.append((sub, [], node.lineno))
                else:
                    names.append(a.name)
            if names:
                out.append((_known(target, modules), names, node.lineno))
    return out


def _known(name, modules):
    """``name`` itself: a module of the walk, or a binary one (``lamina._native``), which is no
    node of the graph but still counts for the layering rules."""
    return name


def _graph(modules):
    graph = {m: set() for m in modules}
    for m, (path, is_pkg) in modules.items():
        for target, names, _ in _imports(m, path, is_pkg, modules):
            if target not in modules or target == m:
                continue
            if m.startswith(target + ".") and not names:
                continue  # ``from .. import sibling``: the package's __init__ has run already
            graph[m].add(target)  # (names taken from a package's __init__ depend on it)
    return graph


def _cycles(graph):
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _private_imports(modules):
    """["importer: from X import _name (line)"] for every private name imported across modules."""
    bad = []
    for m, (path, is_pkg) in modules.items():
        package = m if is_pkg else m.rsplit(".", 1)[0]
        for target, names, line in _imports(m, path, is_pkg, modules):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if not private or target == m:
                continue
            parent, _, last = target.rpartition(".")
            if last.startswith("_") and parent == package:
                continue  # the package's own private helper module
            bad.append(f"{m}: from {target} import {', '.join(private)} (line {line})")
    return bad


def _forbidden(modules):
    bad = []
    for m, (path, is_pkg) in modules.items():
        for target, _, line in _imports(m, path, is_pkg, modules):
            for importer, banned, why in FORBIDDEN:
                if m != importer and not m.startswith(importer + "."):
                    continue
                for b in banned:
                    if target == b or target.startswith(b + "."):
                        bad.append(f"{m} imports {target} (line {line}): {why}")
    return bad


def _private_sets(modules):
    """["module line: x._name"] for every assignment to another object's private attribute
    (anything but ``self`` / ``cls``): what one part needs from another is public."""
    bad = []
    for m, (path, _) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                for e in ast.walk(target):
                    if isinstance(e, ast.Attribute) and e.attr.startswith("_") and not e.attr.startswith("__") \
                            and not (isinstance(e.value, ast.Name) and e.value.id in ("self", "cls")):
                        bad.append(f"{m} {node.lineno}: {ast.unparse(e)}")
    return bad


_BLOCKS = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.Match)


def _nesting(node, depth=0):
    """The deepest if/for/while/with/try nesting inside a function body (nested defs apart;
    an ``elif`` is at its ``if``'s depth, as it reads)."""
    deepest = depth
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        elif_ = isinstance(node, ast.If) and node.orelse == [child] and isinstance(child, ast.If)
        d = depth + 1 if isinstance(child, _BLOCKS) and not elif_ else depth
        deepest = max(deepest, _nesting(child, d))
    return deepest


def _docstring_lines(node):
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0].end_lineno - body[0].lineno + 1
    return 0


def _oversized(modules):
    bad = []
    for m, (path, _) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            lines = node.end_lineno - node.lineno + 1 - _docstring_lines(node)
            where = f"{m}.{node.name} (line {node.lineno})"
            if lines > MAX_LINES:
                bad.append(f"{where}: {lines} lines")
            if not m.startswith("lamina.experiments") and _nesting(node) > MAX_NESTING:
                bad.append(f"{where}: nested {_nesting(node)} deep")
    return bad


MODULES = _modules()


def test_the_walk_sees_the_package():
    # The walk itself: every subpackage found, relative imports resolved.
    assert {"lamina", "lamina.nn.sequential", "lamina.reference", "lamina.cuda"} <= set(MODULES)
    graph = _graph(MODULES)
    assert "lamina.nn.layers" in graph["lamina.nn.sequential"]
    assert "lamina.backend" in graph["lamina.nn.layers"]


def test_no_import_cycles():
    cycles = _cycles(_graph(MODULES))
    assert cycles == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_private_names_imported_across_modules():
    bad = _private_imports(MODULES)
    assert bad == [], "private names imported across modules:\n" + "\n".join(bad)


def test_no_private_attributes_set_on_other_objects():
    bad = _private_sets(MODULES)
    assert bad == [], "private attributes of other objects set:\n" + "\n".join(bad)


def test_layering_rules():
    bad = _forbidden(MODULES)
    assert bad == [], "\n".join(bad)


def test_functions_a_reader_can_hold():
    bad = _oversized(MODULES)
    assert bad == [], "functions too long or too deeply nested:\n" + "\n".join(bad)


# -- the checker on small trees of its own: each rule fires on what it is named after -----------
def _tree(tmp_path, files):
    for name, text in files.items():
        p = tmp_path / PACKAGE / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return _modules(tmp_path)


def test_checker_finds_a_cycle_through_a_lazy_import(tmp_path):
    mods = _tree(tmp_path, {"__init__.py": "", "a.py": "from . import b\n",
                            "b.py": "def f():\n    from .a import g\n"})
    assert _cycles(_graph(mods)) == [["lamina.a", "lamina.b"]]


def test_checker_finds_a_private_import_but_allows_the_own_helper(tmp_path):
    mods = _tree(tmp_path, {"__init__.py": "", "a.py": "from .b import _x\n", "b.py": "_x = 1\n",
                            "p/__init__.py": "", "p/_common.py": "_y = 1\n", "p/c.py": "from ._common import _y\n",
                            "d.py": "from .p._common import _y\n"})
    assert _private_imports(mods) == ["lamina.a: from lamina.b import _x (line 1)",
                                      "lamina.d: from lamina.p._common import _y (line 1)"]


def test_checker_finds_a_private_attribute_set_elsewhere(tmp_path):
    mods = _tree(tmp_path, {"__init__.py": "", "a.py": "def f(p, q):\n    p._zeroed = True\n    q.zeroed = True\n"
                            "    self_like = p\n\n\nclass C:\n    def g(self):\n        self._x = 1\n"})
    assert _private_sets(mods) == ["lamina.a 2: p._zeroed"]


def test_checker_finds_a_forbidden_import_and_a_long_function(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    deep = ("def g(x):\n" + "".join("    " * (i + 1) + "if x:\n" for i in range(5)) + "    " * 6 + "pass\n"
            + "    elif x:\n        pass\n")
    # an elif chain is no deeper than its if: h is nested 4 deep, not 5
    deep += "def h(x):\n    if x:\n        pass\n    elif x:\n" + "".join("    " * (i + 2) + "if x:\n" for i in range(3)) \
        + "    " * 5 + "pass\n"
    mods = _tree(tmp_path, {"__init__.py": "", "nn/__init__.py": "", "distributed.py": "",
                            "nn/seq.py": "def f():\n" + body + "    from .. import distributed\n" + deep})
    assert _forbidden(mods) == ["lamina.nn.seq imports lamina.distributed (line 62): the layers and the "
                                "container import no MPI, optimiser, workflow or diagnostics"]
    assert _oversized(mods) == [f"lamina.nn.seq.f (line 1): {MAX_LINES + 2} lines",
                                "lamina.nn.seq.g (line 63): nested 5 deep"]


if __name__ == "__main__":  # the numbers, for a reader
    g = _graph(MODULES)
    for c in _cycles(g):
        print("cycle:", " <-> ".join(c))
    for line in _private_imports(MODULES) + _private_sets(MODULES) + _forbidden(MODULES) + _oversized(MODULES):
        print(line)
    print(os.linesep.join([f"{len(_cycles(g))} cycles, {len(_private_imports(MODULES))} private imports, "
                           f"{len(_forbidden(MODULES))} rule breaks, {len(_oversized(MODULES))} oversized"]))
