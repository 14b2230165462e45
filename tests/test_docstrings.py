"""The API reference is generated from docstrings (docs/api/*.md, mkdocstrings), so every public
module, class, method and function those pages render has a docstring of its own, more than one
line unless it carries an example; every class, method and function has a ``>>>`` example
(but the few in NOT_RUNNABLE); and every ``>>>`` example runs as a doctest.

The names are found the way the pages find them: each ``::: dotted.name`` directive of
docs/api/*.md with its ``members: [...]`` option (or ``members: false``); a module's members are
its ``__all__``, else the classes and functions it defines; a class's members are the methods and
properties it defines itself (inherited ones are documented where they are defined).
"""
import doctest
import importlib
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import lamina

ROOT = Path(__file__).resolve().parent.parent
API_PAGES = ROOT / "docs" / "api"
_DIRECTIVE = re.compile(r"^::: ([\w.]+)[ \t]*\n((?:[ \t]+.*\n?)*)", re.M)
_MEMBERS = re.compile(r"^\s*members:\s*(.+?)\s*$", re.M)


def _resolve(dotted):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def directives():
    """[(dotted name, explicit member names or None, False when the page renders no members)]."""
    out = []
    for page in sorted(API_PAGES.glob("*.md")):
        for m in _DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            members = None
            opt = _MEMBERS.search(m.group(2))
            if opt:
                value = opt.group(1)
                members = False if value == "false" else [s.strip() for s in value.strip("[]").split(",") if s.strip()]
            out.append((m.group(1), members))
    return out


def _own_members(cls):
    """The public methods and properties a class defines itself: [(name, function or property)]."""
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            out.append((name, value))
    return out


def _module_members(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items()
                 if not n.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))
                 and getattr(v, "__module__", None) == module.__name__]
    return names


def api_objects():
    """{qualified name: object} of every module, class, function, method and property the API
    pages render."""
    found = {}

    def add(qualname, obj, members=None):
        if inspect.ismodule(obj):
            found[qualname] = obj
            if members is False:
                return
            for name in members or _module_members(obj):
                value = getattr(obj, name)
                if inspect.ismodule(value) or inspect.isclass(value) or inspect.isfunction(value):
                    add(f"{qualname}.{name}", value)
        elif inspect.isclass(obj):
            found[qualname] = obj
            if members is False:
                return
            chosen = _own_members(obj) if members is None else [(n, vars(obj)[n]) for n in members]
            for name, value in chosen:
                found[f"{qualname}.{name}"] = value
        elif inspect.isfunction(obj) or isinstance(obj, property):
            found[qualname] = obj

    for dotted, members in directives():
        add(dotted, _resolve(dotted), members)
    return found


def own_doc(obj):
    """The object's own docstring (not one inherited from a base class), dedented, or ''."""
    doc = obj.__doc__ if not isinstance(obj, property) else (obj.fget.__doc__ if obj.fget else obj.__doc__)
    return inspect.cleandoc(doc) if doc else ""


def problem(obj):
    """Why this object's docstring falls short, or None. One line is enough only with an example."""
    doc = own_doc(obj)
    if not doc:
        return "no docstring"
    lines = [line for line in doc.splitlines() if line.strip()]
    if len(lines) < 2 and ">>>" not in doc:
        return "a one-line docstring without an example"
    return None


OBJECTS = api_objects()


def test_the_pages_render_the_public_api():
    # The walk sees what the pages list: the layers, the optimisers, the distributed helpers.
    for name in ["lamina.nn.sequential.Sequential.fit", "lamina.nn.layers.Dense.forward",
                 "lamina.nn.layers.Layer.backward", "lamina.optim.SGD.step", "lamina.distributed.rank",
                 "lamina.losses.CrossEntropy", "lamina.save", "lamina.nn.norm.BatchNorm2D", "lamina.nn.parameter.Buffer.assign"]:
        assert name in OBJECTS, name
    assert len(OBJECTS) > 250
    # Every name lamina.nn exports as a class is rendered somewhere.
    rendered = {id(o) for o in OBJECTS.values()}
    for name in lamina.nn.__all__:
        value = getattr(lamina.nn, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert id(value) in rendered, f"lamina.nn.{name} is on no API page"


def test_the_rule_catches_a_missing_or_bare_docstring():
    def bare():
        pass

    def one_line():
        """Does something."""

    def one_line_with_example():
        """Doubles. Example: ``>>> 2 * 2``"""

    def two_lines():
        """Does something.

        x: (N, C) float32."""

    assert problem(bare) == "no docstring"
    assert problem(one_line) == "a one-line docstring without an example"
    assert problem(one_line_with_example) is None and problem(two_lines) is None

    class Base:
        def forward(self, x):
            """Base's forward.

            More."""

    class Child(Base):
        def forward(self, x):
            return x

    assert problem(Child.forward) == "no docstring"  # an inherited docstring is not rendered for the override


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_docstring(name):
    why = problem(OBJECTS[name])
    assert why is None, f"{name}: {why}"


# Names whose example cannot run as a doctest (it would end the process); their docstrings show
# the example as plain code instead.
NOT_RUNNABLE = {"lamina.distributed.abort"}


def test_every_class_and_function_has_an_example():
    missing = sorted(n for n, o in OBJECTS.items()
                     if not inspect.ismodule(o) and ">>>" not in own_doc(o) and n not in NOT_RUNNABLE)
    assert not missing, f"no >>> example in the docstrings of {missing}"
    for name in NOT_RUNNABLE:  # the exceptions stay exceptions, and stay documented
        assert name in OBJECTS and "Example" in own_doc(OBJECTS[name]) and ">>>" not in own_doc(OBJECTS[name])


def _doctests():
    finder = doctest.DocTestFinder(recurse=False)
    tests = []
    for name, obj in sorted(OBJECTS.items()):
        if ">>>" not in own_doc(obj):
            continue
        target = obj.fget if isinstance(obj, property) else obj
        module = inspect.getmodule(target) or lamina
        for t in finder.find(target, name, module=module, globs=dict(vars(module))):
            if t.examples:
                tests.append(t)
    return tests


DOCTESTS = _doctests()


def test_examples_are_found():
    assert len(DOCTESTS) >= 250


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_example_runs(test):
    if test.name.startswith("lamina.distributed."):
        pytest.importorskip("mpi4py")  # the "mpi" extra (CI installs it: these run there)
    state = np.get_printoptions()
    before = lamina.get_backend().name
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    try:
        np.set_printoptions(precision=4, suppress=True, legacy="1.25" if np.__version__ >= "2" else False)
        runner.run(test)
    finally:
        np.set_printoptions(**state)
        lamina.set_backend(before)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted and not failed, f"{test.name}: {failed} of {attempted} examples failed (output above)"
