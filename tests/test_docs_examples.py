"""Every ```python block of README.md and docs/ runs as written: each in a fresh interpreter, in
an empty folder, with LAMINA_FAST=1. A block that needs an optional module says so on the line
just before it, as ``<!-- requires: mpi4py -->``; it is skipped where that module is missing
(and fails under LAMINA_REQUIRE_MPI=1 when the module is mpi4py)."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_REQUIRES = re.compile(r"<!--\s*requires:\s*([\w., ]+?)\s*-->\s*$")


def python_blocks(path):
    """[(line number of the fence, code, required modules)] of one Markdown file."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        req = _REQUIRES.search(before)
        modules = [s.strip() for s in req.group(1).split(",")] if req else []
        blocks.append((line, m.group(1), modules))
    return blocks


def _documents():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


BLOCKS = [(path, *block) for path in _documents() for block in python_blocks(path)]


def test_blocks_are_found():
    files = {path.name for path, *_ in BLOCKS}
    assert "README.md" in files and "tutorial.md" in files and len(BLOCKS) >= 10
    assert python_blocks(ROOT / "README.md")[0][1].startswith("import lamina")



@pytest.mark.parametrize("path, line, code, modules", BLOCKS,
                         ids=[f"{p.relative_to(ROOT)}:{line}" for p, line, _, _ in BLOCKS])
def test_python_block_runs(path, line, code, modules, tmp_path):
    for module in modules:
        if not importlib.util.find_spec(module):
            if module == "mpi4py" and os.environ.get("LAMINA_REQUIRE_MPI") == "1":
                pytest.fail("LAMINA_REQUIRE_MPI=1 but mpi4py is not installed")
            pytest.skip(f"needs {module}")
    env = dict(os.environ, LAMINA_FAST="1", MPLBACKEND="Agg")
    env.pop("PYTHONPATH", None)  # as a user would run it: only the installed package
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, f"{path.relative_to(ROOT)}, block at line {line}:\n{p.stdout}\n{p.stderr}"
