"""Workers: processes that take waiting trials from the storage and run them until every study
is done. Several workers (``--jobs N`` here, or the same command with ``--resume`` on other
machines sharing a ``--storage`` URL) share the work through the storage alone.

The loop: plan the tuned seeds of every search that has finished, run one waiting trial
(search before defaults before tuned seeds), and when none is waiting, fail the trials of
workers that stopped beating (they are enqueued again) and wait for the running ones.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from descend.lab.benchmark import storage as store
from descend.lab.benchmark.config import BenchmarkConfig
from descend.lab.benchmark.spaces import halton_points
from descend.lab.benchmark.trial import run_trial

POLL_SECONDS = 1.0


def plan_all(storage: RDBStorage, config: BenchmarkConfig, fill: bool = False) -> None:
    """Enqueues every search and every default run (and the tuned seeds of finished
    searches). Idempotent: a study that exists is left alone (``fill``: completed)."""
    for w in config.workloads:
        for o in config.optimizers:
            space = config.spaces[o]
            points = halton_points(space, config.trials, seed=o)
            store.plan(storage, config.study_name(w, o, "search"),
                       [(p, 0) for p in points], fill)
            store.plan(storage, config.study_name(w, o, "default"),
                       [({}, s) for s in range(config.seeds)], fill)
    plan_tuned(storage, config, fill)


def plan_tuned(storage: RDBStorage, config: BenchmarkConfig, fill: bool = False) -> None:
    """Enqueues seeds 1..S-1 of the best trial of every finished search."""
    existing = store.study_names(storage)
    for w in config.workloads:
        for o in config.optimizers:
            name = config.study_name(w, o, "tuned")
            if name in existing and not fill:
                continue
            best = best_search_trial(storage, config, w, o)
            if best is not None:
                store.plan(storage, name, [(best.params, s) for s in range(1, config.seeds)],
                           fill)


def best_search_trial(storage: RDBStorage, config: BenchmarkConfig, workload: str,
                      optimizer: str) -> FrozenTrial | None:
    """The search trial with the shortest validation time to target (steps, then seconds,
    then how close it came), once all K are done; None before."""
    done = store.done_trials(store.load(storage, config.study_name(workload, optimizer,
                                                                   "search")))
    if len(done) < config.trials:
        return None
    return min(done.values(), key=lambda t: (t.user_attrs["steps_to_target"],
                                            t.user_attrs["seconds_to_target"],
                                            t.user_attrs["final"], t.user_attrs["index"]))


@dataclass
class Worker:
    """Runs trials from ``url`` until the benchmark is done. ``on_trial(study, index)`` is
    called before each trial, ``on_done()`` after it and ``on_step(step, loss)`` during it
    (progress bars)."""

    url: str
    config: BenchmarkConfig
    threads: int = 1
    on_trial: Callable[[str, int], None] | None = None
    on_done: Callable[[], None] | None = None
    on_step: Callable[[int, float], None] | None = None

    def run(self) -> None:
        self.storage = store.open_storage(self.url)
        while True:
            plan_tuned(self.storage, self.config)
            if self.run_one():
                continue
            if self.finished():
                return
            time.sleep(POLL_SECONDS)

    def run_one(self) -> bool:
        """Runs one waiting trial, if any study has one; fails stale trials on the way."""
        studies = {s.study_name: s._study_id for s in self.storage.get_all_studies()}
        for w, o, phase in self.config.studies():
            name = self.config.study_name(w, o, phase)
            if name not in studies:
                continue
            states = store.trial_states(self.storage, studies[name])
            if states.get(TrialState.RUNNING):
                store.fail_stale(store.load(self.storage, name))
                states = store.trial_states(self.storage, studies[name])
            if states.get(TrialState.WAITING):
                study = store.load(self.storage, name)
                study.optimize(lambda t, w=w, o=o, p=phase: self.objective(t, w, o, p),
                               n_trials=1, catch=(Exception,))
                if self.on_done is not None:
                    self.on_done()
                return True
        return False

    def finished(self) -> bool:
        """Whether every study holds all its trials, done."""
        names = store.study_names(self.storage)
        for w, o, phase in self.config.studies():
            name = self.config.study_name(w, o, phase)
            if name not in names:
                return False
            if len(store.done_trials(store.load(self.storage, name))) < self.config.planned(
                    phase):
                return False
        return True

    def objective(self, trial: optuna.Trial, workload: str, optimizer: str,
                  phase: str) -> float:
        index = trial.user_attrs.get("index")
        if index is None or _taken(trial, index):
            # Not a planned trial (a worker asked just as the last one was taken), or one a
            # second planner enqueued again: leave it to the first.
            raise optuna.TrialPruned("not a planned trial, or one already taken")
        if self.on_trial is not None:
            self.on_trial(self.config.study_name(workload, optimizer, phase), index)
        space = self.config.spaces[optimizer] if phase != "default" else ()
        values = {p.name: trial.suggest_float(p.name, p.low, p.high, log=p.log) for p in space}
        outcome = run_trial(self.config.workload(workload), optimizer, values,
                            trial.user_attrs["seed"], data_dir=self.config.data_dir,
                            threads=self.threads, on_step=self.on_step)
        outcome["worker"] = f"{socket.gethostname()}:{os.getpid()}"
        for key, value in outcome.items():
            trial.set_user_attr(key, value)
        return outcome["steps_to_target"]


def _taken(trial: optuna.Trial, index: int) -> bool:
    """Whether a trial of the same index and a lower number is done or running."""
    for other in trial.study.get_trials(deepcopy=False,
                                        states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if other.number < trial.number and other.user_attrs.get("index") == index:
            return True
    return False


def worker_main(url: str, config: dict, threads: int) -> None:
    """The entry point of a worker process (``--jobs N``)."""
    Worker(url, BenchmarkConfig.from_json(config), threads).run()
