"""Every script of examples/ runs to the end in its fast mode (LAMINA_FAST=1), in a fresh
interpreter and an empty folder, and prints what it promises; the MPI example under
``mpiexec -n 2`` where mpi4py is installed."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# script -> text its output must contain (a line each run prints when it got to the end)
EXPECTED = {
    "lenet5_mnist.py": "the loaded copy predicts the same",
    "transfer_learning.py": "after fine-tuning",
    "vanishing_gradients.py": "hidden 1 / hidden 4",
    "rnn_sequence.py": "final: test accuracy",
    "greedy_pretraining.py": "after greedy autoencoder pretraining",
    "distillation.py": "distilled",
    "custom_layer.py": "same outputs: True",
    "custom_backend.py": "conv2d_backward",
    "distributed_mpi.py": "rank(s), global batch 128",
    "benchmark_kernel.py": "256 x 1024 -> 1024",
}



def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


def _run(args, folder, timeout=300):
    env = dict(os.environ, LAMINA_FAST="1", MPLBACKEND="Agg")
    return subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("script", sorted(s for s in EXPECTED if s != "distributed_mpi.py"))
def test_example_runs(script, tmp_path):
    p = _run([sys.executable, str(EXAMPLES / script)], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert EXPECTED[script] in p.stdout, p.stdout
    if script in ("lenet5_mnist.py", "vanishing_gradients.py") and importlib.util.find_spec("matplotlib"):
        assert list(tmp_path.glob("*.png")), "the plot was not written"


def test_lenet5_example_learns(tmp_path):
    p = _run([sys.executable, str(EXAMPLES / "lenet5_mnist.py")], tmp_path)
    assert p.returncode == 0, p.stderr
    accuracy = float(p.stdout.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 60, p.stdout  # one epoch on 2,000 images reaches about 78 %
    assert (tmp_path / "lenet5.safetensors").exists()


def test_distributed_example_under_mpiexec(tmp_path):
    if not importlib.util.find_spec("mpi4py"):
        if os.environ.get("LAMINA_REQUIRE_MPI") == "1":
            pytest.fail('LAMINA_REQUIRE_MPI=1 but mpi4py is not installed: pip install ".[mpi]"')
        pytest.skip('mpi4py is not installed (pip install "lamina[mpi]")')
    beside = Path(sys.executable).parent / "mpiexec"  # the mpich wheel puts it beside python
    mpiexec = str(beside) if beside.exists() else shutil.which("mpiexec")
    assert mpiexec, "mpi4py is installed but no mpiexec was found"
    p = _run([mpiexec, "-n", "2", sys.executable, str(EXAMPLES / "distributed_mpi.py")], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 rank(s), global batch 128" in p.stdout, p.stdout
    assert (tmp_path / "distributed.safetensors").exists()
