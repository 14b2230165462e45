"""lamina.callbacks through Sequential.fit: EarlyStopping's patience boundary, min_delta, mode,
baseline, start_from_epoch and restore of the best weights (buffers included); ModelCheckpoint's
best-only saving, file names, optimiser state and batch frequency; CSVLogger's rows on disk after
a run killed mid-training and the resumed file with one header; LearningRateScheduler's rates;
rank 0 alone writing under fit(distributed=True); lamina train --early-stopping/--checkpoint-best.

The monitored value is scripted: a callback placed before the one under test writes the epoch's
value into the logs (the logs dict is shared, in order), so each boundary is hit exactly.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import lamina
from lamina import callbacks, cli, nn, optim

HERE = os.path.dirname(os.path.abspath(__file__))


class Script(callbacks.Callback):
    """Writes values[epoch] into logs[key] at each epoch's end (before the callbacks after it)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class Snapshots(callbacks.Callback):
    """Host copies of every parameter and buffer at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.params, self.buffers = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.params.append([p.numpy() for p in self.model.parameters()])
        self.buffers.append([b.numpy() for b in self.model.buffers()])


def data(n=96, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * 2 + 1).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 2).astype(np.int64)


def model_and_opt(lr=0.05, batchnorm=False):
    lamina.seed(0)
    layers = [nn.Dense(5, 8)] + ([nn.BatchNorm1D(8)] if batchnorm else []) + [nn.ReLU(), nn.Dense(8, 2)]
    model = nn.Sequential(*layers)
    return model, optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def run(cbs, epochs=10, lr=0.05, batchnorm=False, **fit_kwargs):
    model, opt = model_and_opt(lr, batchnorm)
    X, y = data()
    history = model.fit(X, y, epochs=epochs, batch_size=16, optimizer=opt, callbacks=cbs, seed=0, verbose=0,
                        **fit_kwargs)
    return model, history


def epochs_run(history):
    return len(history["loss"])


# -- EarlyStopping -------------------------------------------------------------------------------

# val_loss: best at epoch 1 (4.0), then three epochs without improvement, then an improvement
LOSSES = [5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 2.0, 1.0, 0.5, 0.4]


@pytest.mark.parametrize("patience, expected", [(0, 3), (1, 3), (2, 4), (3, 5), (4, 10)])
def test_early_stopping_patience_boundary(patience, expected):
    """Stops at the end of the epoch where `patience` epochs in a row have not improved: epoch
    1 is the best, so patience p stops after epoch 1 + p (epochs 0 .. 1 + p run, p >= 1);
    patience 4 reaches epoch 5's improvement and runs to the end."""
    stop = callbacks.EarlyStopping(patience=patience)
    _, history = run([Script("val_loss", LOSSES), stop])
    assert epochs_run(history) == expected
    if expected < 10:
        assert stop.stopped_epoch == expected - 1 and stop.best == 4.0 and stop.best_epoch == 1
    else:
        assert stop.stopped_epoch == 0 and stop.best == 0.4


def test_early_stopping_patience_zero_stops_at_the_first_epoch_without_improvement():
    stop = callbacks.EarlyStopping(patience=0)
    _, history = run([Script("val_loss", [1.0, 0.5, 0.6]), stop], epochs=3)
    assert epochs_run(history) == 3 and stop.stopped_epoch == 2


@pytest.mark.parametrize("min_delta, expected", [(0.0, 10), (1.0, 9), (1.5, 7), (2.0, 3), (2.5, 3)])
def test_early_stopping_min_delta(min_delta, expected):
    """An epoch improves only when it beats the best by MORE than min_delta (2.0 does not beat
    8 by more than 2.0); the best stays at the last counted improvement. (Values exact in
    binary, so the boundaries are exact.)"""
    losses = [8.0, 7.0, 6.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.0, -1.0]
    stop = callbacks.EarlyStopping(patience=2, min_delta=min_delta)
    _, history = run([Script("val_loss", losses), stop])
    assert epochs_run(history) == expected
    if expected == 3:
        assert stop.best == 8.0


def test_early_stopping_min_delta_in_max_mode():
    accs = [0.5, 0.55, 0.58, 0.9, 0.95]
    loose = callbacks.EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.01)
    strict = callbacks.EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.1)
    assert epochs_run(run([Script("val_accuracy", accs), loose], epochs=5)[1]) == 5
    assert epochs_run(run([Script("val_accuracy", accs), strict], epochs=5)[1]) == 2


@pytest.mark.parametrize("monitor, mode, values, expected", [
    ("val_accuracy", "auto", [0.1, 0.2, 0.3, 0.4, 0.5], 5),   # auto: accuracy is maximised
    ("val_accuracy", "min", [0.1, 0.2, 0.3, 0.4, 0.5], 2),
    ("val_loss", "max", [1.0, 0.9, 0.8, 0.7, 0.6], 2),
    ("loss", "auto", [1.0, 0.9, 0.8, 0.7, 0.6], 5),
])
def test_early_stopping_mode(monitor, mode, values, expected):
    stop = callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=1)
    assert epochs_run(run([Script(monitor, values), stop], epochs=5)[1]) == expected


def test_early_stopping_baseline():
    """The wait restarts only on epochs that also beat the baseline: without beating it, the
    first epoch without improvement after `patience` epochs stops training."""
    values = [1.0, 0.9, 0.95, 0.8, 0.7, 0.6, 0.5, 0.4]
    stop = callbacks.EarlyStopping(patience=2, baseline=0.5)
    _, history = run([Script("val_loss", values), stop], epochs=8)
    assert epochs_run(history) == 3 and stop.best == pytest.approx(0.9) and stop.stopped_epoch == 2
    for baseline in (None, 0.95):  # no baseline, or one beaten at epoch 1: runs on
        assert epochs_run(run([Script("val_loss", values), callbacks.EarlyStopping(patience=2, baseline=baseline)],
                              epochs=8)[1]) == 8


def test_early_stopping_start_from_epoch():
    values = [1.0, 2.0, 3.0, 4.0, 0.5, 0.6, 0.7]
    late = callbacks.EarlyStopping(patience=1, start_from_epoch=4)
    _, history = run([Script("val_loss", values), late], epochs=7)
    assert epochs_run(history) == 6 and late.best == 0.5 and late.best_epoch == 4
    early = callbacks.EarlyStopping(patience=1)
    assert epochs_run(run([Script("val_loss", values), early], epochs=7)[1]) == 2


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_restores_the_best_weights_and_buffers(restore):
    """The model ends with the parameters and the BatchNorm running statistics of the best
    epoch (epoch 1) with restore_best_weights, with the last epoch's otherwise."""
    snaps = Snapshots()
    stop = callbacks.EarlyStopping(patience=2, restore_best_weights=restore)
    model, history = run([Script("val_loss", LOSSES), snaps, stop], batchnorm=True)
    assert epochs_run(history) == 4
    want = 1 if restore else 3
    for got, p1, p3 in zip(model.parameters(), snaps.params[want], snaps.params[3]):
        assert np.array_equal(got.numpy(), p1)
    for got, b in zip(model.buffers(), snaps.buffers[want]):
        assert np.array_equal(got.numpy(), b)
    assert not all(np.array_equal(a, b) for a, b in zip(snaps.params[1], snaps.params[3]))
    assert not np.array_equal(snaps.buffers[1][0], snaps.buffers[3][0])  # running_mean moved on


def test_early_stopping_restores_also_when_not_stopped():
    """Keras restores at the end of training, also when all epochs ran (the best not the last)."""
    snaps = Snapshots()
    model, history = run([Script("val_loss", [3.0, 1.0, 2.0, 2.5]), snaps,
                          callbacks.EarlyStopping(patience=5, restore_best_weights=True)], epochs=4)
    assert epochs_run(history) == 4
    assert all(np.array_equal(p.numpy(), s) for p, s in zip(model.parameters(), snaps.params[1]))


def test_early_stopping_restore_when_nothing_improved_keeps_the_first_epoch():
    snaps = Snapshots()
    model, _ = run([Script("val_loss", [1.0, 2.0, 3.0]), snaps,
                    callbacks.EarlyStopping(patience=5, restore_best_weights=True)], epochs=3)
    assert all(np.array_equal(p.numpy(), s) for p, s in zip(model.parameters(), snaps.params[0]))


def test_a_nan_is_never_the_best(tmp_path):
    nan = float("nan")
    stop = callbacks.EarlyStopping(patience=1)
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "{epoch}.safetensors"), save_best_only=True)
    _, history = run([Script("val_loss", [nan, 2.0, 1.0, nan, 3.0, 0.5]), stop, ckpt], epochs=6)
    assert epochs_run(history) == 4 and stop.best == 1.0 and stop.stopped_epoch == 3
    assert sorted(os.listdir(tmp_path)) == ["2.safetensors", "3.safetensors"]


def test_early_stopping_is_reusable_and_warns_without_its_key():
    stop = callbacks.EarlyStopping(patience=0)
    run([Script("val_loss", [1.0, 2.0]), stop], epochs=2)
    assert stop.stopped_epoch == 1
    with pytest.warns(RuntimeWarning, match=r"'val_loss'.*not in the logs.*validation_data"):
        _, history = run([stop], epochs=3)  # no validation data: never stops, never fails
    assert epochs_run(history) == 3 and stop.stopped_epoch == 0 and stop.best is None


def test_early_stopping_on_real_validation_loss():
    X, y = data(seed=1)
    stop = callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    model, history = run([stop], epochs=40, lr=0.5, validation_data=(X, y))
    assert epochs_run(history) < 40
    best = int(np.argmin(history["val_loss"]))
    assert stop.best_epoch == best and stop.best == history["val_loss"][best]
    assert model.evaluate(X, y)[0] == pytest.approx(history["val_loss"][best], rel=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"patience": -1}, "patience"), ({"patience": 1.5}, "patience"), ({"mode": "lowest"}, "mode"),
    ({"monitor": "time"}, "mode='min' or mode='max'"),
])
def test_early_stopping_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        callbacks.EarlyStopping(**kwargs)


# -- ModelCheckpoint -----------------------------------------------------------------------------

def test_checkpoint_save_best_only(tmp_path):
    """A fixed path holds the best epoch's model; {epoch} names show which epochs were saved."""
    values = [3.0, 2.0, 2.5, 1.0, 1.5, 1.0]
    snaps = Snapshots()
    best = callbacks.ModelCheckpoint(tmp_path / "best.safetensors", save_best_only=True)
    named = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.1f}.safetensors"),
                                      save_best_only=True)
    run([Script("val_loss", values), snaps, best, named], epochs=6)
    assert sorted(os.listdir(tmp_path)) == ["best.safetensors", "m-01-3.0.safetensors", "m-02-2.0.safetensors",
                                           "m-04-1.0.safetensors"]  # (1.0 again at epoch 6: not better)
    saved = lamina.load(tmp_path / "best.safetensors")
    assert all(np.array_equal(p.numpy(), s) for p, s in zip(saved.parameters(), snaps.params[3]))
    assert best.best == 1.0


def test_checkpoint_max_mode_and_threshold(tmp_path):
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "{epoch}.safetensors"), monitor="val_accuracy",
                                     save_best_only=True, initial_value_threshold=0.55)
    run([Script("val_accuracy", [0.5, 0.6, 0.55, 0.7]), ckpt], epochs=4)
    assert sorted(os.listdir(tmp_path)) == ["2.safetensors", "4.safetensors"]


def test_checkpoint_every_epoch_and_missing_monitor(tmp_path):
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.safetensors"))
    run([ckpt], epochs=3)
    assert sorted(os.listdir(tmp_path)) == ["e1.safetensors", "e2.safetensors", "e3.safetensors"]
    best = callbacks.ModelCheckpoint(str(tmp_path / "b.safetensors"), save_best_only=True)
    with pytest.warns(RuntimeWarning, match="'val_loss'"):
        run([best], epochs=1)
    assert not (tmp_path / "b.safetensors").exists()


def test_checkpoint_with_optimizer_resumes_exactly(tmp_path):
    """4 epochs straight equal 2 epochs, the checkpoint of epoch 2, and 2 more from it."""
    def build():
        lamina.seed(0)
        model = nn.Sequential(nn.Dense(5, 8), nn.ReLU(), nn.Dense(8, 2))
        opt = optim.Adam(model.parameters(), lr=1e-2)
        return model, opt, optim.StepLR(opt, step_size=1, gamma=0.5)

    X, y = data()
    straight, opt, sched = build()
    straight.fit(X, y, epochs=4, batch_size=16, optimizer=opt, callbacks=[sched], seed=0, verbose=0)
    model, opt, sched = build()
    path = str(tmp_path / "ckpt-{epoch}.safetensors")
    ckpt = callbacks.ModelCheckpoint(path, monitor="loss", include_optimizer=True, scheduler=sched,
                                     extra={"note": "run"})
    model.fit(X, y, epochs=2, batch_size=16, optimizer=opt, callbacks=[sched, ckpt], seed=0, verbose=0)
    c = lamina.load_checkpoint(path.format(epoch=2))
    assert c.epoch == 2 and c.extra == {"note": "run"} and type(c.optimizer).__name__ == "Adam"
    c.model.fit(X, y, epochs=4, initial_epoch=c.epoch, batch_size=16, optimizer=c.optimizer,
                callbacks=[c.scheduler], seed=0, verbose=0)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(c.model.parameters(), straight.parameters()))
    with pytest.raises(ValueError, match="optimizer"):  # a plain model file has no optimiser state
        model_only = tmp_path / "plain.safetensors"
        callbacks.ModelCheckpoint(model_only, scheduler=sched)


def test_checkpoint_without_optimizer_is_a_model_file(tmp_path):
    path = tmp_path / "m.safetensors"
    model, _ = run([callbacks.ModelCheckpoint(path, monitor="loss")], epochs=1)
    assert lamina.load_checkpoint(path).optimizer is None
    assert np.array_equal(lamina.load(path).predict(data()[0]), model.predict(data()[0]))


def test_checkpoint_every_n_batches(tmp_path):
    """96 samples in batches of 16: 6 batches an epoch, 12 in two; every 5th -> batches 5 and 10."""
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.safetensors"), save_freq=5)
    run([ckpt], epochs=2)
    assert sorted(os.listdir(tmp_path)) == ["e1-b5.safetensors", "e2-b4.safetensors"]


def test_checkpoint_file_name_errors(tmp_path):
    with pytest.raises(KeyError, match=r"names 'val_acc'.*there are: .*val_loss"):
        run([Script("val_loss", [1.0]), callbacks.ModelCheckpoint(str(tmp_path / "{val_acc}.safetensors"))], epochs=1)
    for bad in (0, -3, "batch", True, 1.5):
        with pytest.raises(ValueError, match="save_freq"):
            callbacks.ModelCheckpoint(tmp_path / "m.safetensors", save_freq=bad)


def test_checkpoint_leaves_no_temporary_files_and_replaces_atomically(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"an older file")
    run([callbacks.ModelCheckpoint(path, monitor="loss")], epochs=3)
    assert os.listdir(tmp_path) == ["m.safetensors"] and lamina.load(path) is not None


# -- CSVLogger -----------------------------------------------------------------------------------

def read_csv(path, sep=","):
    lines = open(path, encoding="utf-8").read().splitlines()
    return [line.split(sep) for line in lines]


def test_csv_logger_rows_equal_the_history(tmp_path):
    path = tmp_path / "log.csv"
    X, y = data(seed=2)
    _, history = run([callbacks.CSVLogger(path, separator=";")], epochs=3, validation_data=(X, y))
    rows = read_csv(path, ";")
    keys = sorted(history)
    assert rows[0] == ["epoch", *keys] and len(rows) == 4
    for epoch, row in enumerate(rows[1:]):
        assert row[0] == str(epoch)
        for k, v in zip(keys, row[1:]):
            assert float(v) == pytest.approx(history[k][epoch], rel=1e-12)


_KILLED_RUN = textwrap.dedent("""
    import os, sys
    import numpy as np
    sys.path.insert(0, {here!r})
    from test_callbacks import run
    from lamina import callbacks

    class Die(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                os._exit(3)  # killed: no cleanup, no close, no flush of Python's buffers

    run([callbacks.CSVLogger({path!r}, append={append}), Die()], epochs=10, **{fit})
""")


def test_csv_logger_survives_a_killed_run_and_resumes_with_one_header(tmp_path):
    path = str(tmp_path / "log.csv")
    code = _KILLED_RUN.format(here=HERE, path=path, append=False, fit={})
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 3, p.stderr
    rows = read_csv(path)
    assert rows[0][0] == "epoch" and [r[0] for r in rows[1:]] == ["0", "1", "2"]
    # the resumed run appends epochs 3.. under the same header
    _, history = run([callbacks.CSVLogger(path, append=True)], epochs=5, initial_epoch=3)
    rows2 = read_csv(path)
    assert rows2[:4] == rows and [r[0] for r in rows2[1:]] == ["0", "1", "2", "3", "4"]
    assert sum(r[0] == "epoch" for r in rows2) == 1
    assert float(rows2[4][rows2[0].index("loss")]) == pytest.approx(history["loss"][0], rel=1e-12)


def test_csv_logger_append_drops_a_torn_last_line_and_keeps_the_columns(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss,lr,extra\n0,0.5,0.05,x\n1,0.4", encoding="utf-8")  # killed mid-row
    run([callbacks.CSVLogger(path, append=True)], epochs=3, initial_epoch=1)
    rows = read_csv(path)
    assert rows[0] == ["epoch", "loss", "lr", "extra"] and [r[0] for r in rows] == ["epoch", "0", "1", "2"]
    assert rows[2][3] == "NA" and float(rows[2][2]) == 0.05 and len(rows[2]) == 4


def test_csv_logger_without_append_starts_afresh(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("old,file\n1,2\n", encoding="utf-8")
    run([callbacks.CSVLogger(path)], epochs=2)
    rows = read_csv(path)
    assert rows[0][0] == "epoch" and len(rows) == 3 and "val_loss" in rows[0]
    assert rows[1][rows[0].index("val_loss")] == "NA"


def test_csv_logger_append_to_a_missing_or_empty_file_writes_the_header(tmp_path):
    for path in (tmp_path / "missing.csv", tmp_path / "empty.csv"):
        if path.name == "empty.csv":
            path.write_text("", encoding="utf-8")
        run([callbacks.CSVLogger(path, append=True)], epochs=2)
        rows = read_csv(path)
        assert rows[0][0] == "epoch" and [r[0] for r in rows[1:]] == ["0", "1"]


# -- LearningRateScheduler -----------------------------------------------------------------------

def test_lr_scheduler_sets_each_epochs_rate():
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch >= 2 else lr)
    _, history = run([sched], epochs=5, lr=0.4)
    assert history["lr"] == [0.4, 0.4, 0.2, 0.1, 0.05]
    # what a callback adds to the epoch's logs reaches the History (Keras's key)
    assert history["learning_rate"] == [0.4, 0.4, 0.2, 0.1, 0.05]
    one_arg = callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    _, history = run([one_arg], epochs=3)
    assert history["lr"] == pytest.approx([0.01, 0.02, 0.03])


def test_lr_scheduler_rate_is_the_one_used():
    """A zero rate in epoch 1 leaves the weights as they were after epoch 0 (momentum aside:
    plain SGD)."""
    snaps = Snapshots()
    model, opt = model_and_opt()
    opt = optim.SGD(model.parameters(), lr=0.1)
    X, y = data()
    model.fit(X, y, epochs=3, batch_size=16, optimizer=opt, seed=0, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch, lr: 0.0 if epoch == 1 else 0.1), snaps])
    assert all(np.array_equal(a, b) for a, b in zip(snaps.params[0], snaps.params[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(snaps.params[1], snaps.params[2]))


def test_lr_scheduler_logs_and_errors():
    class Seen(callbacks.Callback):
        rates = []

        def on_epoch_end(self, epoch, logs=None):
            self.rates.append(logs["learning_rate"])
    run([callbacks.LearningRateScheduler(lambda e, lr: 0.2 / (e + 1)), Seen()], epochs=2)
    assert Seen.rates == [0.2, 0.1]
    for bad in (lambda e, lr: None, lambda e, lr: -0.1, lambda e, lr: float("nan"), lambda e, lr: "0.1"):
        with pytest.raises(ValueError, match="finite float >= 0"):
            run([callbacks.LearningRateScheduler(bad)], epochs=1)
    with pytest.raises(TypeError, match="callable"):
        callbacks.LearningRateScheduler(0.1)


# -- distributed: rank 0 alone writes ------------------------------------------------------------

_RANKS = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    sys.path.insert(0, {here!r})
    from test_callbacks import data, model_and_opt
    from lamina import callbacks, distributed

    rank, world = distributed.init()
    folder = {folder!r}
    X, y = data()
    model, opt = model_and_opt()
    stop = callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1.0, restore_best_weights=True)
    history = model.fit(X, y, epochs=6, batch_size=32, optimizer=opt, seed=0, verbose=0, distributed=True,
                        callbacks=[callbacks.CSVLogger(os.path.join(folder, f"log-{{rank}}.csv")),
                                   callbacks.ModelCheckpoint(os.path.join(folder, f"m-{{rank}}.safetensors"),
                                                             monitor="loss"),
                                   callbacks.LearningRateScheduler(lambda e, lr: 0.05 / (e + 1)), stop])
    # (each rank's result in a file of its own: the two ranks' stdout lines may interleave)
    with open({results!r} + f"-{{rank}}.json", "w", encoding="utf-8") as f:
        json.dump({{"rank": rank, "epochs": len(history["loss"]), "lr": history["lr"],
                   "w": float(sum(np.abs(p.numpy()).sum() for p in model.parameters()))}}, f)
""")


def test_distributed_only_rank_zero_writes_and_every_rank_stops_alike(tmp_path):
    from test_distributed import mpirun, needs_mpi

    if needs_mpi.args[0]:
        pytest.skip(needs_mpi.kwargs["reason"])
    script = tmp_path / "ranks.py"
    folder = tmp_path / "out"
    folder.mkdir()
    results = str(tmp_path / "result")
    script.write_text(_RANKS.format(here=HERE, folder=str(folder), results=results), encoding="utf-8")
    p = mpirun(2, [str(script)])
    assert p.returncode == 0, p.stdout + p.stderr
    results = [json.loads(open(f"{results}-{r}.json", encoding="utf-8").read()) for r in (0, 1)]
    assert [r["rank"] for r in results] == [0, 1]
    assert sorted(os.listdir(folder)) == ["log-0.csv", "m-0.safetensors"]  # rank 1 wrote nothing
    a, b = results
    # min_delta 1.0: the loss never improves that much, so both ranks stop after epoch 1, with the
    # rates the scheduler set on each of them, and the same restored weights
    assert a["epochs"] == b["epochs"] == 2 and a["lr"] == b["lr"] == [0.05, 0.025]
    assert a["w"] == b["w"]
    assert len(read_csv(folder / "log-0.csv")) == 3


# -- lamina train --early-stopping / --checkpoint-best ---------------------------------------------

def test_cli_early_stopping_and_checkpoint_best(tmp_path, capsys):
    best, out = tmp_path / "best.safetensors", tmp_path / "out.safetensors"
    rc = cli.main(["train", "--model", "mlp", "--epochs", "8", "--limit", "400", "--batch-size", "32", "--lr", "0.5",
                   "--momentum", "0.9", "--schedule", "none", "--early-stopping", "0", "--checkpoint-best", str(best),
                   "--out", str(out), "--threads", "1"])
    text = capsys.readouterr().out
    assert rc == 0 and "(40 held out for validation)" in text
    epochs = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert 2 <= len(epochs) < 8, text  # lr 0.5 with momentum: the validation loss soon gets worse
    val = [float(line.split("val_loss ")[1].split()[0]) for line in epochs]
    ckpt = lamina.load_checkpoint(best)
    assert ckpt.epoch == int(np.argmin(val)) + 1 and ckpt.extra["model"] == "mlp"
    # restore_best_weights and the best-only checkpoint agree: --out is the best epoch's model
    final = lamina.load(out)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(final.parameters(), ckpt.model.parameters()))


def test_cli_bad_early_stopping_arguments(capsys):
    for argv in (["train", "--early-stopping", "-1"], ["train", "--validation-split", "1.5"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert "--" in capsys.readouterr().err


def test_the_callback_modules_are_attributes_of_the_package():
    import importlib
    import subprocess
    import sys
    code = ("import lamina; print(lamina.callbacks.EarlyStopping.__name__, lamina.onnx.export.__name__, "
            "lamina.training.History.__name__)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["EarlyStopping", "export", "History"]
    assert importlib.import_module("lamina").linalg.__name__ == "lamina.linalg"
