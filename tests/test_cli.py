"""The `lamina` command: train (a short run on a subset), evaluate, info, bench, errors."""
import json
import subprocess
import sys

import pytest

import lamina
from lamina import cli


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    rc = cli.main(["train", "--model", "mlp", "--epochs", "1", "--limit", "600", "--batch-size", "32",
                   "--out", str(out), "--seed", "1"])
    text = capsys.readouterr().out
    assert rc == 0 and out.exists()
    assert "training mlp on 600 images" in text and "test accuracy" in text and "images/s" in text
    assert isinstance(lamina.load(out), lamina.nn.Sequential)
    rc = cli.main(["evaluate", str(out), "--limit", "500"])
    text = capsys.readouterr().out
    assert rc == 0 and "test accuracy" in text and "on 500 images" in text


def test_train_lenet_quiet_without_saving(tmp_path, capsys):
    rc = cli.main(["train", "--epochs", "1", "--limit", "128", "--quiet", "--out", "", "--schedule", "none"])
    text = capsys.readouterr().out
    assert rc == 0 and "epoch 1/1" not in text and "test accuracy" in text
    assert not list(tmp_path.iterdir())


def test_evaluate_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nonsense")
    assert cli.main(["evaluate", str(bad)]) == 1
    assert "not a safetensors file" in capsys.readouterr().err


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "resnet"])
    with pytest.raises(SystemExit):
        cli.main(["train", "--batch-size", "0"])
    with pytest.raises(SystemExit):
        cli.main([])


def test_info(capsys):
    assert cli.main(["info"]) == 0
    assert "isa" in capsys.readouterr().out
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == json.loads(json.dumps(lamina.backend_info()))


def test_bench_delegates_to_lamina_bench(monkeypatch):
    import lamina.bench as bench

    seen = []
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["bench", "--quick"]) == 0 and seen == [["--quick"]]


def test_experiment_subcommand_runs_the_experiments_cli(tmp_path, capsys):
    assert cli.main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("vanishing", "init", "pretrain", "transfer", "distill", "saddle", "sgd"):
        assert name in out
    assert cli.main(["experiment", "vanishing", "--fast", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "vanishing.json").exists() and list(tmp_path.glob("*.png"))


def test_python_dash_m(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lamina", "info"], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert r.returncode == 0 and "threads" in r.stdout
