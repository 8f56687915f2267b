"""Several workers, for real: worker processes on one SQLite study finish every trial exactly
once; kill -9 in the middle of a study loses no finished trial and --resume continues it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

from descend.cli import main
from descend.lab.benchmark import storage as store

# Tiny budgets: the noisy quadratic trains in a fraction of a second.
TINY = ["--workloads", "quadratic", "--optimizers", "sgd", "momentum", "adam",
        "--trials", "4", "--seeds", "2"]
PER_OPTIMIZER = 4 + 2 + 1  # search trials, default seeds, tuned seeds 1..S-1


def trials(out: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = store.open_storage(f"sqlite:///{out / store.FILENAME}")
    return {s.study_name: s.get_trials(deepcopy=False)
            for s in map(lambda name: store.load(storage, name), store.study_names(storage))
            if s.study_name != store.META}


def done_once(studies: dict[str, list[optuna.trial.FrozenTrial]]) -> Counter:
    """(study, index) -> how many finished trials ran it."""
    return Counter((name, t.user_attrs["index"]) for name, ts in studies.items() for t in ts
                   if t.state == TrialState.COMPLETE)


def test_worker_processes_on_one_sqlite_study_run_every_trial_exactly_once(tmp_path):
    out = tmp_path / "out"
    assert main(["benchmark", "--out", str(out), "--jobs", "2", *TINY]) == 0
    studies = trials(out)
    counts = done_once(studies)
    assert len(counts) == 3 * PER_OPTIMIZER
    assert set(counts.values()) == {1}  # no trial done twice
    for name in studies:  # and none done by no one
        phase = name.rsplit("/", 1)[1]
        assert sorted(i for (n, i) in counts if n == name) == list(
            range({"search": 4, "default": 2, "tuned": 1}[phase]))
    workers = {t.user_attrs["worker"] for ts in studies.values() for t in ts
               if t.state == TrialState.COMPLETE}
    assert len(workers) >= 2, workers  # the work was shared


def test_kill_9_loses_no_finished_trial_and_resume_continues(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "descend", "benchmark", "--out", str(out),
               "--workloads", "mnist1d", "--optimizers", "adam", "--trials", "3",
               "--seeds", "2"]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:  # the worker may be creating the file's tables at this moment
                studies = trials(out) if (out / store.FILENAME).exists() else {}
            except ValueError:
                continue
            if studies:
                running = [t for ts in studies.values() for t in ts
                           if t.state == TrialState.RUNNING]
                if len(done_once(studies)) >= 3 and running:
                    break
        else:
            raise AssertionError("the worker never had 3 finished trials and one running")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    stderr = worker.stderr.read()
    assert worker.returncode == -signal.SIGKILL
    assert "mnist1d/" in stderr and "/search trial " in stderr  # the progress bar's labels
    before = {(name, t.number): (t.value, t.user_attrs["history"])
              for name, ts in trials(out).items() for t in ts if t.state == TrialState.COMPLETE}
    killed = [(name, t.user_attrs["index"]) for name, ts in trials(out).items() for t in ts
              if t.state == TrialState.RUNNING]
    assert len(before) >= 3 and killed

    assert main(["benchmark", "--out", str(out), "--resume"]) == 0
    studies = trials(out)
    after = {(name, t.number): (t.value, t.user_attrs["history"])
             for name, ts in studies.items() for t in ts if t.state == TrialState.COMPLETE}
    assert all(after[key] == value for key, value in before.items())  # kept, not run again
    counts = done_once(studies)
    assert len(counts) == 3 + 2 + 1 and set(counts.values()) == {1}
    for name, index in killed:  # the killed trial: failed by its heartbeat, then run again
        states = [t.state for t in studies[name] if t.user_attrs.get("index") == index]
        assert TrialState.FAIL in states and states.count(TrialState.COMPLETE) == 1
    assert (out / "report.html").is_file()


def test_a_second_command_joins_a_running_benchmark_with_resume(tmp_path):
    """What a second machine does on a shared --storage: the same command with --resume, while
    the first runs. Both work on the one study; every trial is still done exactly once."""
    out = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-m", "descend", "benchmark", "--out", str(out),
                              *TINY], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the first has stored its configuration
            time.sleep(0.2)
            try:
                if (out / store.FILENAME).exists() and store.stored_config(
                        store.open_storage(f"sqlite:///{out / store.FILENAME}")):
                    break
            except ValueError:  # its tables are being created
                continue
        else:
            raise AssertionError("the first command never stored its benchmark")
        second = subprocess.run([sys.executable, "-m", "descend", "benchmark", "--out",
                                 str(out), "--resume"], capture_output=True, text=True,
                                timeout=600)
        assert second.returncode == 0, second.stderr[-2000:]
        assert first.wait(timeout=600) == 0, first.stderr.read()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
    studies = trials(out)
    counts = done_once(studies)
    assert len(counts) == 3 * PER_OPTIMIZER and set(counts.values()) == {1}
    workers = {t.user_attrs["worker"] for ts in studies.values() for t in ts
               if t.state == TrialState.COMPLETE}
    assert len(workers) == 2, workers
