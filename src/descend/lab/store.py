"""The run store: an embedded SQLite database (``runs.sqlite``) in the output folder.

One row per run: its configuration (JSON, also its unique key), task, optimizer label, learning
rate, seed, batch size, status (``finished``, ``diverged`` or ``failed``), per-epoch metrics
(JSON) and timings (JSON). Each run is written in its own transaction when it finishes, in WAL
mode with ``synchronous=FULL``, so a sweep killed at any moment (Ctrl-C, ``kill -9``) keeps every
run that finished and ``--resume`` continues from there. The compare configuration the runs
belong to is kept in the ``meta`` table, so ``descend report DIR`` needs nothing else.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILENAME = "runs.sqlite"
SCHEMA_VERSION = 1
STATUSES = ("finished", "diverged", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    lr REAL NOT NULL,
    seed INTEGER NOT NULL,
    batch_size TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('finished', 'diverged', 'failed')),
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    timings TEXT NOT NULL,
    error TEXT,
    finished_at REAL NOT NULL
);
"""


def canonical_json(value: Any) -> str:
    """One spelling per value (sorted keys, no spaces): equal configs give equal keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass
class RunRecord:
    """A run as stored. ``metrics`` is a list of per-evaluation dicts (``epoch``, ``step``,
    ``seconds``, ``train_loss``, ``val_loss``, ``test_loss`` and, for classification,
    ``val_accuracy`` and ``test_accuracy``); ``timings`` holds ``steps``, ``seconds``,
    ``step_time`` and the like, and ``dtype``, the parameters' dtype as trained."""

    config: dict[str, Any]
    status: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    id: int | None = None

    @property
    def key(self) -> str:
        return canonical_json(self.config)

    @property
    def final(self) -> dict[str, Any]:
        return self.metrics[-1] if self.metrics else {}


class RunStore:
    """The SQLite file of one output folder. Use as a context manager or call ``close()``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            version = self._meta("schema_version")
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{self.path} is not a descend run store ({e}); remove it or "
                             "choose another --out") from None
        if version is None:
            self._set_meta("schema_version", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise ValueError(f"{self.path} was written by another version of descend (store "
                             f"schema {version}, this one reads {SCHEMA_VERSION}); choose "
                             "another --out")

    @classmethod
    def in_folder(cls, folder: str | Path) -> RunStore:
        return cls(Path(folder) / FILENAME)

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # The compare configuration these runs belong to.
    def config(self) -> dict[str, Any] | None:
        return self._meta("config")

    def set_config(self, config: dict[str, Any]) -> None:
        self._set_meta("config", config)

    def _meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _set_meta(self, key: str, value: Any) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             (key, canonical_json(value)))

    # Runs.
    def add(self, run: RunRecord) -> RunRecord:
        """Stores a finished (or diverged, or failed) run in one transaction; a run with the
        same configuration is replaced (a failed run retried on resume)."""
        if run.status not in STATUSES:
            raise ValueError(f"run status must be one of {STATUSES}, not {run.status!r}")
        c = run.config
        with self._transaction():
            self._db.execute("DELETE FROM runs WHERE key = ?", (run.key,))
            cursor = self._db.execute(
                "INSERT INTO runs (key, task, optimizer, lr, seed, batch_size, status, config,"
                " metrics, timings, error, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (run.key, c["task"], c["optimizer"], float(c["lr"]), int(c["seed"]),
                 str(c["batch_size"]), run.status, canonical_json(c),
                 json.dumps(run.metrics), json.dumps(run.timings), run.error, time.time()))
        run.id = cursor.lastrowid
        return run

    def get(self, config: dict[str, Any]) -> RunRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM runs WHERE key = ?",
                               (canonical_json(config),)).fetchone()
        return None if row is None else _record(row)

    def runs(self) -> list[RunRecord]:
        return [_record(r) for r in self._db.execute(f"SELECT {_COLUMNS} FROM runs ORDER BY id")]

    def _transaction(self):
        return _Transaction(self._db)


_COLUMNS = "id, config, status, metrics, timings, error"


def _record(row: tuple) -> RunRecord:
    run_id, config, status, metrics, timings, error = row
    return RunRecord(config=json.loads(config), status=status, metrics=json.loads(metrics),
                     timings=json.loads(timings), error=error, id=run_id)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): one run, all or nothing."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *exc: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
