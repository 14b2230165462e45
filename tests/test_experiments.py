"""lamina.experiments: every experiment's fast mode runs, returns a table and writes its files."""
import json

import pytest

import lamina.experiments as E
from lamina.experiments import NAMES, Result, main

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_PLOTS = {
    "vanishing": ["vanishing_bias_norms.png", "vanishing_weight_norms.png", "vanishing_training.png"],
    "init": ["init_training.png", "init_accuracy.png"],
    "pretrain": ["pretrain_training.png", "pretrain_ae_features.png"],
    "transfer": ["transfer_filters.png", "transfer_training.png"],
    "distill": ["distill_training.png"],
    "saddle": ["saddle_hessian_hist.png", "saddle_index.png"],
    "sgd": ["sgd_loss_vs_evaluations.png"],
    "saddle_free": ["saddle_free_loss.png", "saddle_free_index.png", "saddle_free_spectra.png"],
}


def test_names():
    assert set(NAMES) == {"vanishing", "init", "pretrain", "transfer", "distill", "saddle", "sgd", "saddle_free"}
    assert set(EXPECTED_PLOTS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_fast_mode_runs_and_writes_its_files(name, tmp_path, capsys):
    result = E.get(name).run(fast=True, out=str(tmp_path), seed=0, verbose=True)
    assert isinstance(result, Result) and result.name == name
    assert len(result) >= 2 and all(isinstance(r, dict) for r in result)
    printed = capsys.readouterr().out
    assert result.columns[0].header in printed and "|" in printed
    for png in EXPECTED_PLOTS[name]:
        data = (tmp_path / png).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1000, png
    doc = json.loads((tmp_path / f"{name}.json").read_text())
    assert doc["name"] == name and doc["settings"]["fast"] is True
    assert len(doc["rows"]) == len(result.rows)
    assert {c["key"] for c in doc["columns"]} <= set().union(*[r.keys() for r in doc["rows"]]) | {"acc_std"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EXPECTED_PLOTS[name] + [f"{name}.json"])


def test_experiment_results_hold_measurements():
    r = E.vanishing(fast=True, verbose=False)  # the module is callable; no out: nothing written
    assert r.files == []
    rows = {row["layer"]: row for row in r}
    assert rows["hidden 1"]["sig_b0"] > 0 and rows["output"]["relu_b0"] > 0
    # the sigmoid N(0,1) network's first layer learns slower than its last hidden layer at init
    assert rows["hidden 1 / hidden 4"]["sig_b0"] < 1
    assert "vanishing" in r.table()


def test_main_cli(tmp_path, capsys):
    assert main(["list"]) == 0
    assert "saddle" in capsys.readouterr().out
    assert main(["sgd", "--fast", "--out", str(tmp_path / "o"), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "GD" in out and (tmp_path / "o" / "sgd.json").exists()
    assert json.loads((tmp_path / "o" / "sgd.json").read_text())["settings"]["seed"] == 1
    with pytest.raises(SystemExit):
        main(["nonsense"])
    with pytest.raises(ValueError, match="unknown experiment"):
        E.get("nonsense")
