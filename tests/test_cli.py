"""The `lamina` command: train (a short run on a subset), evaluate, info, bench, errors."""
import json
import re
import subprocess
import sys

import pytest

import lamina
from lamina import cli


def _accuracy_and_loss(text, after):
    """The accuracy (a fraction) and loss printed as "test accuracy A% (loss L)" after `after`."""
    m = re.search(re.escape(after) + r".*?test accuracy ([0-9.]+)% \(loss ([0-9.]+)\)", text, re.S)
    assert m, f"no accuracy after {after!r} in {text!r}"
    return float(m.group(1)) / 100, float(m.group(2))


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    rc = cli.main(["train", "--model", "mlp", "--epochs", "1", "--limit", "600", "--batch-size", "32",
                   "--out", str(out), "--seed", "1"])
    text = capsys.readouterr().out
    assert rc == 0 and out.exists()
    assert "training mlp on 600 images" in text and "testing on 600" in text and "images/s" in text
    model = lamina.load(out)
    assert isinstance(model, lamina.nn.Sequential)
    X, y = lamina.datasets.load_mnist()
    X, y = X[8000:], y[8000:]  # the CLI tests on the bundled sample's last 2,000 images
    # what train printed is the saved model's accuracy on the first 600 test images
    acc, loss = _accuracy_and_loss(text, "images")
    want_loss, want_acc = model.evaluate(X[:600], y[:600])
    assert acc == pytest.approx(want_acc, abs=5e-5) and loss == pytest.approx(want_loss, abs=5e-5)
    assert acc > 0.5, "one epoch on 600 images learns well beyond chance (10%)"
    rc = cli.main(["evaluate", str(out), "--limit", "500"])
    text = capsys.readouterr().out
    assert rc == 0 and "on 500 images" in text
    acc, loss = _accuracy_and_loss(text, str(out))
    want_loss, want_acc = model.evaluate(X[:500], y[:500])
    assert acc == pytest.approx(want_acc, abs=5e-5) and loss == pytest.approx(want_loss, abs=5e-5)


def test_train_lenet_quiet_without_saving(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a file written to the working directory would land here
    rc = cli.main(["train", "--epochs", "1", "--limit", "128", "--quiet", "--out", "", "--schedule", "none"])
    text = capsys.readouterr().out
    assert rc == 0 and "epoch 1/1" not in text and "test accuracy" in text and "saved" not in text
    assert not list(tmp_path.iterdir())


def test_evaluate_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nonsense")
    assert cli.main(["evaluate", str(bad)]) == 1
    assert "not a safetensors file" in capsys.readouterr().err


def test_bad_arguments(capsys):
    for argv, word in ((["train", "--model", "resnet"], "--model"), (["train", "--batch-size", "0"], "--batch-size"),
                       (["train", "--epochs", "-1"], "--epochs"), ([], "command")):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2, argv
        err = capsys.readouterr().err
        assert re.search(rf"(?<![\w-]){re.escape(word)}\b", err), f"{argv}: {err!r}"


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
