"""The run store of a benchmark: Optuna's relational storage (a SQLite file by default, any
database URL Optuna takes with --storage, e.g. postgresql://, shared by several machines).

One Optuna study per workload, optimizer and phase (``mnist-mlp/adam/search``), plus the meta
study ``benchmark`` that keeps the configuration. Every unit of work is an enqueued trial: the
process that creates a study (creation is atomic in the database: one process wins) enqueues
its trials, each with an ``index``; workers pop waiting trials, which Optuna hands to exactly
one worker. A trial is written when it finishes, so kill -9 loses only the trials running.
Workers send heartbeats; a trial whose worker stopped beating is marked failed after
``GRACE_SECONDS`` and enqueued again (Optuna's RetryHeartbeatStaleTrialCallback).

SQLite: every transaction starts with ``BEGIN IMMEDIATE``, so that Optuna's read-then-write of
a trial's state (taking a waiting trial) is atomic between processes as it is on PostgreSQL
(where Optuna locks the row).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from descend.lab.benchmark.config import BenchmarkConfig

META = "benchmark"
FILENAME = "benchmark.sqlite"
HEARTBEAT_SECONDS = 2
GRACE_SECONDS = 8

optuna.logging.set_verbosity(logging.WARNING)


def open_storage(url: str) -> RDBStorage:
    """Optuna's storage at ``url``; a ValueError in one line when it cannot be reached."""
    sqlite = url.startswith("sqlite")
    engine_kwargs: dict[str, Any] = ({"connect_args": {"timeout": 120}} if sqlite
                                     else {"pool_pre_ping": True})
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(url, engine_kwargs=engine_kwargs,
                                 heartbeat_interval=HEARTBEAT_SECONDS,
                                 grace_period=GRACE_SECONDS,
                                 heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())
    except ImportError as e:
        raise ValueError(f"storage {url!r} needs a database driver that is not installed "
                         f"({e.name or e}); pip install it, or use sqlite:///FILE") from None
    except Exception as e:  # sqlalchemy's many connection errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot open the storage {url!r} ({reason[:200]})") from None
    if sqlite:
        _immediate_transactions(storage)
    return storage


def _immediate_transactions(storage: RDBStorage) -> None:
    """pysqlite begins transactions lazily, at the first write, so a read-check-write is not
    atomic; make every transaction take the write lock up front (SQLAlchemy's recipe)."""
    from sqlalchemy import event

    @event.listens_for(storage.engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" event emit BEGIN

    @event.listens_for(storage.engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    storage.engine.dispose()  # connections opened before the events do not have them


def stored_config(storage: RDBStorage) -> BenchmarkConfig | None:
    """The benchmark kept in ``storage``, if there is one."""
    try:
        study = optuna.load_study(study_name=META, storage=storage)
    except KeyError:
        return None
    data = study.user_attrs.get("config")
    return BenchmarkConfig.from_json(data) if data else None


def save_config(storage: RDBStorage, config: BenchmarkConfig) -> None:
    study = optuna.create_study(study_name=META, storage=storage, load_if_exists=True)
    study.set_user_attr("config", config.to_json())


def study_names(storage: RDBStorage) -> set[str]:
    return {s.study_name for s in storage.get_all_studies()}


def load(storage: RDBStorage, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def plan(storage: RDBStorage, name: str, trials: list[tuple[dict[str, float], int]],
         fill: bool = False) -> bool:
    """Creates the study ``name`` and enqueues ``trials`` ((params, seed), index = position).
    Only the process that creates the study enqueues; ``fill`` (resume) also enqueues what a
    creator killed while planning left out. Returns whether this call enqueued anything."""
    try:
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=False)
    except optuna.exceptions.DuplicatedStudyError:
        study = load(storage, name)
        if study.user_attrs.get("planned") or not fill:
            return False
    have = {t.user_attrs.get("index") for t in study.get_trials(deepcopy=False)}
    for index, (params, seed) in enumerate(trials):
        if index not in have:
            study.enqueue_trial(params, user_attrs={"index": index, "seed": seed})
    study.set_user_attr("planned", True)
    return True


def done_trials(study: optuna.Study) -> dict[int, FrozenTrial]:
    """index -> the study's finished trial for that index (the first, were there two)."""
    done: dict[int, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "steps_to_target" in t.user_attrs:
            done.setdefault(t.user_attrs["index"], t)
    return done


def fail_stale(study: optuna.Study) -> None:
    """Marks the trials of workers that stopped beating as failed (and so enqueued again)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)


def trial_states(storage: RDBStorage, study_id: int) -> dict[TrialState, int]:
    counts: dict[TrialState, int] = {}
    for t in storage.get_all_trials(study_id, deepcopy=False):
        counts[t.state] = counts.get(t.state, 0) + 1
    return counts
