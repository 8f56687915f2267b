"""The SQLite run store: what a row holds, WAL durability settings, replacement, bad files."""

from __future__ import annotations

import math
import sqlite3

import pytest

from descend.lab.store import RunRecord, RunStore, canonical_json


def record(lr: float = 0.1, seed: int = 0, status: str = "finished") -> RunRecord:
    config = {"task": "mnist", "optimizer": "adam:betas=0.9/0.99", "lr": lr, "seed": seed,
              "batch_size": "full", "epochs": 2, "data_dir": None, "max_train": None}
    metrics = [{"epoch": 0.0, "step": 0, "train_loss": 2.3, "test_accuracy": 0.1},
               {"epoch": 1.0, "step": 1, "train_loss": math.nan, "test_accuracy": 0.5}]
    return RunRecord(config, status, metrics, {"step_time": 1e-4, "seconds": 0.5})


def test_a_run_round_trips_with_its_columns(tmp_path):
    with RunStore.in_folder(tmp_path) as store:
        stored = store.add(record())
        assert stored.id == 1
        again = store.get(record().config)
    assert again.config == record().config and again.status == "finished"
    assert again.metrics[0] == record().metrics[0] and math.isnan(again.metrics[1]["train_loss"])
    assert again.timings == {"step_time": 1e-4, "seconds": 0.5}
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        row = db.execute("SELECT task, optimizer, lr, seed, batch_size, status FROM runs"
                         ).fetchone()
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert row == ("mnist", "adam:betas=0.9/0.99", 0.1, 0, "full", "finished")
    assert mode == "wal"


def test_the_key_ignores_dict_order():
    a = {"lr": 0.1, "seed": 0}
    assert canonical_json(a) == canonical_json({"seed": 0, "lr": 0.1})


def test_a_retried_run_replaces_the_failed_one(tmp_path):
    with RunStore.in_folder(tmp_path) as store:
        store.add(record(status="failed"))
        store.add(record(lr=0.01))
        store.add(record(status="finished"))
        runs = store.runs()
    assert [(r.config["lr"], r.status) for r in runs] == [(0.01, "finished"), (0.1, "finished")]


def test_config_is_kept_across_connections(tmp_path):
    with RunStore.in_folder(tmp_path) as store:
        assert store.config() is None
        store.set_config({"task": "digits", "seeds": 3})
    with RunStore.in_folder(tmp_path) as store:
        assert store.config() == {"task": "digits", "seeds": 3}


def test_unknown_status_is_refused(tmp_path):
    with RunStore.in_folder(tmp_path) as store, pytest.raises(ValueError, match="status"):
        store.add(record(status="done"))


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path):
    (tmp_path / "runs.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="not a descend run store.*choose another --out"):
        RunStore.in_folder(tmp_path)


def test_a_store_from_another_schema_is_refused(tmp_path):
    with RunStore.in_folder(tmp_path) as store:
        store._set_meta("schema_version", 99)
    with pytest.raises(ValueError, match="another version of descend"):
        RunStore.in_folder(tmp_path)
