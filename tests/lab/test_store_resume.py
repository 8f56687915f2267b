"""An interrupted compare loses no finished run and ``--resume`` trains only what is missing:
killed with SIGKILL in a real subprocess, and interrupted with Ctrl-C (KeyboardInterrupt)."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from descend.cli import main

# 2 optimizers x (3 lrs + 1 more seed) = 8 runs
ARGS = ["--max-train", "500", "--epochs", "1", "--no-landscapes", "--optimizers", "sgd",
        "adam", "--lr-grid", "0.003", "0.03", "0.3", "--seeds", "2"]
TOTAL = 8
RESULT_COLUMNS = ("label", "batch_size", "chosen_lr", "seeds", "metric_mean", "metric_std",
                  "train_loss_mean", "steps")


def runs(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "runs.sqlite") as db:
        return db.execute("SELECT id, key, status, finished_at FROM runs ORDER BY id").fetchall()


def finished_count(out: Path) -> int:
    try:
        with sqlite3.connect(f"file:{out / 'runs.sqlite'}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def table(out: Path) -> list[tuple]:
    """results.csv without the timing columns (seconds differ from run to run)."""
    with open(out / "results.csv", newline="") as f:
        return [tuple(row[c] for c in RESULT_COLUMNS) for row in csv.DictReader(f)]


def test_kill_9_then_resume_reruns_only_the_missing_runs(tmp_path):
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "descend", "compare", "--out", str(out),
                                *ARGS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while finished_count(out) < 2 and process.poll() is None:
            assert time.monotonic() < deadline, "no run finished in 2 minutes"
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the compare finished before it was killed"
    survived = runs(out)
    assert 2 <= len(survived) < TOTAL
    assert {status for _, _, status, _ in survived} == {"finished"}

    # the experiment's options come from the store
    assert main(["compare", "--out", str(out), "--resume", "--no-landscapes"]) == 0
    resumed = runs(out)
    assert resumed[:len(survived)] == survived  # kept as they were, not retrained
    assert len(resumed) == TOTAL and len({key for _, key, _, _ in resumed}) == TOTAL

    fresh = tmp_path / "fresh"
    assert main(["compare", "--out", str(fresh), *ARGS]) == 0
    assert table(out) == table(fresh)  # training is deterministic for a seed


def test_ctrl_c_keeps_the_finished_runs(tmp_path, monkeypatch, capsys):
    from descend.lab import train as train_module

    real_train, calls = train_module.train, []

    def train(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(train_module, "train", train)
    assert main(["compare", "--out", str(tmp_path), *ARGS]) == 130
    assert "continue with --resume" in capsys.readouterr().err
    assert len(runs(tmp_path)) == 2
    monkeypatch.setattr(train_module, "train", real_train)
    before = runs(tmp_path)
    assert main(["compare", "--out", str(tmp_path), *ARGS, "--resume"]) == 0
    assert runs(tmp_path)[:2] == before and len(runs(tmp_path)) == TOTAL
