"""lamina.distributed: data-parallel training on MPI.

The MPI tests launch ``mpiexec -n 2`` (loopback, the mpich wheel of ``lamina[mpi]``) as
subprocesses running tests/mpi_worker.py, and compare with one process in this one: N ranks
with per-rank batch b give the parameters of one process with batch N*b (up to float32
summation order), an uneven last batch and a rank without any sample of it included; a NaN
stops every rank at the same batch; a rank that raises or dies ends the job quickly. They skip
only when mpi4py is not installed (and fail then too under LAMINA_REQUIRE_MPI=1, as in CI).
The pytest process itself never starts MPI.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from mpi_worker import build, make_optimizer, problem

import lamina
from lamina import cli, distributed, nn

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi_worker.py")


def _have_mpi4py():
    try:
        import mpi4py  # noqa: F401  (the package only: this does not start MPI)
        return True
    except ImportError:
        return False


if os.environ.get("LAMINA_REQUIRE_MPI") == "1" and not _have_mpi4py():
    raise RuntimeError('LAMINA_REQUIRE_MPI=1 but mpi4py is not installed: pip install ".[mpi]"')
needs_mpi = pytest.mark.skipif(not _have_mpi4py(), reason='mpi4py is not installed (pip install "lamina[mpi]")')


def _mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")  # the mpich wheel puts it beside python
    found = here if os.path.exists(here) else shutil.which("mpiexec")
    assert found, "mpi4py is installed but no mpiexec was found"
    return found


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([HERE] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def mpirun(n, args, timeout=120):
    """The CompletedProcess of ``mpiexec -n n python ARGS``; a job still running after
    ``timeout`` seconds is killed and fails the test (subprocess.TimeoutExpired)."""
    return subprocess.run([_mpiexec(), "-n", str(n), sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())


def run_worker(tmp_path, scenario, *options, n=2, timeout=120):
    p = mpirun(n, [WORKER, scenario, str(tmp_path), *options], timeout=timeout)
    results = {}
    for r in range(n):
        f = tmp_path / f"rank{r}.json"
        if f.exists():
            results[r] = json.loads(f.read_text())
    return p, results


def load_weights(path):
    with np.load(path) as z:
        return [z[str(i)] for i in range(len(z.files))]


def reference_run(batch, opt="sgd", backend="native", dtype="float32", epochs=3, X=None, y=None):
    """The same training in one process, without MPI: (weights, history or NonFiniteLossError)."""
    if X is None:
        X, y = problem()
    model = build(0, backend, dtype)
    try:
        hist = model.fit(X, y, epochs=epochs, batch_size=batch, optimizer=make_optimizer(opt, model), seed=7,
                         verbose=0, validation_data=(X[:50], y[:50]))
    except nn.NonFiniteLossError as e:
        hist = e
    return [p.numpy() for p in model.parameters()], hist


def test_missing_extra_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if it were not installed
    monkeypatch.setattr(distributed, "_comm", None)
    with pytest.raises(distributed.MPIUnavailableError, match=r'pip install "lamina\[mpi\]"'):
        distributed.init()
    X, y = problem(n=20)
    model = build(0)
    with pytest.raises(ImportError, match=r"lamina\[mpi\]"):
        model.fit(X, y, epochs=1, batch_size=4, distributed=True, verbose=0)
    assert cli.main(["train", "--distributed", "--model", "mlp", "--epochs", "1", "--limit", "50", "--out", ""]) == 1
    assert 'pip install "lamina[mpi]"' in capsys.readouterr().err


def test_shards_cover_every_global_batch_once():
    order = np.random.default_rng(3).permutation(103)
    for world in (1, 2, 3, 4):
        for batch in (4, 10, 13, 103, 200):
            shards = [distributed.Shard(103, batch, r, world) for r in range(world)]
            assert {s.steps for s in shards} == {-(-103 // batch)}
            for step in range(shards[0].steps):
                lo = step * batch
                pieces = []
                for s in shards:
                    full = step < s.steps - 1 or 103 % batch == 0
                    start = step * s.local_batch
                    pieces.append(s.order(order)[start: start + s.local_batch] if full else s.order(order)[start:])
                np.testing.assert_array_equal(np.concatenate(pieces), order[lo: lo + batch])
    with pytest.raises(ValueError, match="at least the number of ranks"):
        distributed.Shard(100, 3, 0, 4)


def test_outside_mpiexec_one_rank_and_the_same_result():
    if not _have_mpi4py():
        pytest.skip("mpi4py is not installed")
    code = (
        "import numpy as np; from lamina import distributed; from mpi_worker import build, make_optimizer, problem\n"
        "print(distributed.init())\n"
        "X, y = problem(); out = []\n"
        "for d in (False, True):\n"
        "    m = build(0); m.fit(X, y, epochs=2, batch_size=20, optimizer=make_optimizer('sgd', m), seed=7,"
        " verbose=0, distributed=d)\n"
        "    out.append(np.concatenate([p.numpy().ravel() for p in m.parameters()]))\n"
        "print(np.array_equal(out[0], out[1]))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["(0,", "1)", "True"]


@needs_mpi
@pytest.mark.parametrize("batch, opt, backend, dtype, extra", [
    (20, "sgd", "native", "float32", ()),          # 10 + 10 per rank, last global batch 3 = 2 + 1
    (21, "adam", "native", "float32", ()),         # 11 + 10 per rank: uneven everywhere
    (101, "sgd", "native", "float32", ()),         # the last global batch is 1 sample: rank 1 has none
    (20, "sgd", "native", "float32", ("--bucket-bytes", "400")),  # several buckets
    (20, "adam", "wrapped", "float32", ()),        # a backend whose arrays are not NumPy: the host path
    (20, "sgd", "numpy", "float64", ()),
    (20, "sfn", "numpy", "float64", ()),          # a closure optimiser: every evaluation averaged
    (101, "sfn", "numpy", "float64", ()),         # ... and rank 1 without samples in the last step
])
def test_two_ranks_give_the_weights_of_one_process(tmp_path, batch, opt, backend, dtype, extra):
    # Saddle-free Newton's finite-difference Hessian-vector products divide the sums' rounding by a
    # tiny step, and its steps compound the difference about 30-fold per epoch (measured on AVX-512
    # OpenBLAS: 1e-7, 4e-6, 9e-5 absolute after 1, 2, 3 epochs): one epoch (11 steps) is compared.
    epochs = 1 if opt == "sfn" else 3
    p, res = run_worker(tmp_path, "fit", "--batch", str(batch), "--opt", opt, "--backend", backend,
                           "--dtype", dtype, "--epochs", str(epochs), *extra)
    assert p.returncode == 0, p.stdout + p.stderr
    w0, w1 = load_weights(tmp_path / "weights0.npz"), load_weights(tmp_path / "weights1.npz")
    ref, hist = reference_run(batch, opt, backend, dtype, epochs=epochs)
    for a, b, r in zip(w0, w1, ref):
        np.testing.assert_array_equal(a, b)  # every rank holds the same weights
        tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
        if opt == "sfn":  # finite-difference Hessian-vector products magnify the sums' rounding
            tol = dict(rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(a, r, **tol)
    # each rank trained on its half of every global batch
    n, steps = 203, -(-203 // batch)
    half = [batch // 2 + batch % 2, batch // 2]
    last = [(n - (steps - 1) * batch + 1) // 2, (n - (steps - 1) * batch) // 2]
    for r in (0, 1):
        per_epoch = [half[r]] * (steps - 1) + ([last[r]] if last[r] else [])
        assert res[r]["sizes"] == per_epoch * epochs
    if extra:
        assert res[0]["buckets"] > 2
    # the logs are over all samples, the same on both ranks, and as in one process
    h0, h1 = res[0]["history"], res[1]["history"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert h0[key] == h1[key]
        np.testing.assert_allclose(h0[key], hist[key], rtol=1e-4)
    # rank 0 alone printed
    assert p.stdout.count(f"epoch 1/{epochs}") == 1 and p.stdout.count(f"epoch {epochs}/{epochs}") == 1


@needs_mpi
def test_a_nan_on_one_rank_stops_every_rank_at_the_same_batch(tmp_path):
    p, res = run_worker(tmp_path, "nan")
    assert p.returncode == 0, p.stdout + p.stderr
    assert res[0]["nonfinite"] == res[1]["nonfinite"] == [1, 3]
    X, y = problem()
    order = np.random.default_rng([7, 0]).permutation(len(X))
    X[distributed.Shard(len(X), 20, 1, 2).order(order)[20]] = np.nan
    ref, err = reference_run(20, X=X, y=y)
    assert isinstance(err, nn.NonFiniteLossError) and (err.epoch, err.batch) == (1, 3)
    w0, w1 = load_weights(tmp_path / "weights0.npz"), load_weights(tmp_path / "weights1.npz")
    for a, b, r in zip(w0, w1, ref):
        np.testing.assert_array_equal(a, b)
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)


@needs_mpi
@pytest.mark.parametrize("scenario, message", [
    ("raise-in-fit", "rank 1 fails on purpose"),
    ("raise-outside", "rank 1 fails outside fit on purpose"),
    ("die", None),
])
def test_a_failing_rank_ends_the_job_quickly(tmp_path, scenario, message):
    # The mechanism, not a duration: the failing rank aborts the job (MPI_Abort) or dies, and
    # mpiexec ends the other rank, which waits in a collective and would otherwise hang until
    # the child's timeout kills the job (subprocess.TimeoutExpired fails the test).
    p, res = run_worker(tmp_path, scenario, timeout=90)
    assert p.returncode != 0
    if message:
        assert message in p.stderr
        # MPI_Abort(MPI_COMM_WORLD, 1): mpiexec exits with the abort's code (its "application
        # called MPI_Abort ... - process 1" line can be lost as the job is torn down)
        assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
        assert "process 0" not in p.stderr  # rank 0 was ended by the abort, it did not fail
    assert not res  # no rank got to the end


def _train_cli(args, n=None):
    """`lamina train` in one process (n None) or under mpiexec -n n."""
    if n is None:
        return subprocess.run([sys.executable, "-m", "lamina", "train", *args], capture_output=True, text=True,
                              timeout=300, env=_env())
    return mpirun(n, ["-m", "lamina", "train", *args], timeout=300)


@needs_mpi
def test_cli_distributed_checkpoint_resumes_on_another_number_of_ranks(tmp_path):
    common = ["--model", "mlp", "--limit", "600", "--batch-size", "32", "--schedule", "none", "--seed", "3"]
    ck, m1, m2 = tmp_path / "ck.safetensors", tmp_path / "resumed.safetensors", tmp_path / "straight.safetensors"
    p = _train_cli(common + ["--distributed", "--epochs", "1", "--checkpoint", str(ck), "--out", ""], n=2)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "on 2 ranks" in p.stdout and p.stdout.count("test accuracy") == 1 and p.stdout.count("epoch 1/1") == 1
    assert ck.exists() and lamina.load_checkpoint(ck).epoch == 1
    p = _train_cli(["--epochs", "2", "--resume", str(ck), "--limit", "600", "--out", str(m1)])  # one process
    assert p.returncode == 0, p.stdout + p.stderr
    assert "resuming" in p.stdout and "epoch 2/2" in p.stdout and "epoch 1/2" not in p.stdout
    p = _train_cli(common + ["--epochs", "2", "--out", str(m2)])
    assert p.returncode == 0, p.stdout + p.stderr
    for a, b in zip(lamina.load(m1).parameters(), lamina.load(m2).parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
    # and back to two ranks from a checkpoint of one process
    ck1, m3 = tmp_path / "ck1.safetensors", tmp_path / "resumed2.safetensors"
    assert _train_cli(common + ["--epochs", "1", "--checkpoint", str(ck1), "--out", ""]).returncode == 0
    p = _train_cli(["--distributed", "--epochs", "2", "--resume", str(ck1), "--limit", "600", "--out", str(m3)], n=2)
    assert p.returncode == 0, p.stdout + p.stderr
    for a, b in zip(lamina.load(m3).parameters(), lamina.load(m2).parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
