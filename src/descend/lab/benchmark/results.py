"""The benchmark's results, read from the storage alone: per tuning mode, workload and
optimizer the runs that count (external tuning: the chosen search trial, which is seed 0, and
its seeds 1..S-1; self-tuning: the defaults at seeds 0..S-1), their times to target, medians
and interquartile ranges, and the tables the scores are computed from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial

from descend.lab.benchmark import scoring
from descend.lab.benchmark import storage as store
from descend.lab.benchmark.config import MODES, BenchmarkConfig
from descend.lab.benchmark.worker import best_search_trial

MEASURES = ("steps", "seconds")


@dataclass
class Cell:
    """The runs of one optimizer on one workload in one tuning mode (one per seed)."""

    runs: list[dict[str, Any]]  # trial user attributes, ordered by seed
    hyperparameters: str

    def times(self, measure: str) -> list[float]:
        return [r[f"{measure}_to_target"] for r in self.runs]

    def median(self, measure: str) -> float:
        return scoring.median_iqr(self.times(measure))[0]

    def iqr(self, measure: str) -> tuple[float, float]:
        _, q1, q3 = scoring.median_iqr(self.times(measure))
        return q1, q3

    @property
    def reached(self) -> int:
        return sum(bool(r["reached"]) for r in self.runs)

    @property
    def chosen(self) -> dict[str, Any]:
        """The run whose learning curve the report shows (seed 0)."""
        return self.runs[0]


@dataclass
class Results:
    config: BenchmarkConfig
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)  # mode, w, o
    trials: list[dict[str, Any]] = field(default_factory=list)  # every finished trial
    missing: list[str] = field(default_factory=list)  # cells with fewer runs than seeds

    def cell(self, mode: str, workload: str, optimizer: str) -> Cell | None:
        return self.cells.get((mode, workload, optimizer))

    def table(self, mode: str, measure: str = "steps") -> dict[str, dict[str, float]]:
        """workload -> optimizer -> median time to target over the seeds (inf: not reached
        by the median seed; an optimizer without runs is left out, that is inf)."""
        return {w: {o: c.median(measure) for o in self.config.optimizers
                    if (c := self.cell(mode, w, o)) is not None}
                for w in self.config.workloads}

    def scores(self, measure: str = "steps") -> dict[str, dict[str, float]]:
        """mode -> optimizer -> AlgoPerf benchmark score."""
        return {mode: _complete(scoring.benchmark_score(self.table(mode, measure)),
                                self.config.optimizers) for mode in MODES}


def _complete(scores: dict[str, float], optimizers: tuple[str, ...]) -> dict[str, float]:
    return {o: scores.get(o, 0.0) for o in optimizers}


def collect(storage: RDBStorage, config: BenchmarkConfig) -> Results:
    """Everything the report shows, from ``storage``."""
    results = Results(config)
    names = store.study_names(storage)
    for w in config.workloads:
        for o in config.optimizers:
            phases = {p: _done(storage, config.study_name(w, o, p), names)
                      for p in ("search", "default", "tuned")}
            for phase, done in phases.items():
                results.trials += [_row(w, o, phase, t) for t in done.values()]
            _add(results, "self", w, o, list(phases["default"].values()))
            best = (best_search_trial(storage, config, w, o)
                    if len(phases["search"]) >= config.trials else None)
            tuned = [best, *phases["tuned"].values()] if best is not None else []
            _add(results, "external", w, o, tuned)
    return results


def _done(storage: RDBStorage, name: str, names: set[str]) -> dict[int, FrozenTrial]:
    if name not in names:
        return {}
    return dict(sorted(store.done_trials(store.load(storage, name)).items()))


def _add(results: Results, mode: str, workload: str, optimizer: str,
         trials: list[FrozenTrial]) -> None:
    trials = sorted(trials, key=lambda t: t.user_attrs["seed"])
    if len(trials) < results.config.seeds:
        results.missing.append(f"{MODES[mode]}: {workload} / {optimizer} "
                               f"({len(trials)} of {results.config.seeds} seeds)")
    if trials:
        results.cells[mode, workload, optimizer] = Cell(
            [t.user_attrs for t in trials], trials[0].user_attrs["hyperparameters"])


def _row(workload: str, optimizer: str, phase: str, trial: FrozenTrial) -> dict[str, Any]:
    a = trial.user_attrs
    return {"workload": workload, "optimizer": optimizer, "phase": phase, "index": a["index"],
            "seed": a["seed"], "hyperparameters": a["hyperparameters"],
            "steps_to_target": a["steps_to_target"],
            "seconds_to_target": a["seconds_to_target"], "reached": a["reached"],
            "diverged": a["diverged"], "steps": a["steps"], "seconds": a["seconds"],
            "error": a["error"], "trial": trial.number}


def show_time(value: float, measure: str) -> str:
    if not math.isfinite(value):
        return "never"
    return f"{value:.0f}" if measure == "steps" else f"{value:.2f} s"
