"""The compare experiment as data: which runs it needs, running the missing ones, choosing the
learning rate, and collecting the results for the report.

Protocol (DeepOBS, Schneider, Balles and Hennig 2019): for every batch size and optimizer, train
with seed 0 at each learning rate of a small log-spaced grid, choose the rate with the best
*validation* metric at the end of training (accuracy, or loss for regression tasks; a diverged or
failed rate is never chosen), then train that rate with seeds ``0 .. seeds-1`` and report the
*test* metrics over those seeds. A best rate on the edge of the grid says the grid was too narrow:
the sweep then goes one grid step further out, a bounded number of times.

A run is identified by its configuration (task, data, optimizer and its hyperparameters, lr,
seed, batch size, epochs, and the dtype it trains in where that is not float32): the store keeps
it under that key, so a run is never trained twice, whichever compare asked for it first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from descend.lab.spec import parse_spec
from descend.lab.store import RunRecord, RunStore, canonical_json

BatchSize = int | str  # "full" (batch gradient descent), 1 (stochastic) or N (mini-batch)


@dataclass(frozen=True)
class CompareConfig:
    """What ``descend compare`` was asked to do; stored with the runs, so ``descend report``
    and ``--resume`` need nothing else. ``grids`` maps each optimizer label to the learning
    rates it is swept over (one rate when the spec sets ``lr``); ``widen`` is how many times
    a sweep may add a rate beyond the grid's edge when the best rate lies on it. ``dtype`` is
    what the models are trained in (``float32``, ``bfloat16`` or ``float16``)."""

    task: str
    optimizers: tuple[str, ...]
    seeds: int
    epochs: int
    batch_sizes: tuple[BatchSize, ...]
    grids: dict[str, tuple[float, ...]]
    lr_find: bool = False
    widen: int = 0
    target_accuracy: float | None = None
    max_train: int | None = None
    data_dir: str | None = None
    dtype: str = "float32"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["grids"] = {k: list(v) for k, v in self.grids.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompareConfig:
        data = dict(data)
        data["optimizers"] = tuple(data["optimizers"])
        data["batch_sizes"] = tuple(data["batch_sizes"])
        data["grids"] = {k: tuple(v) for k, v in data["grids"].items()}
        return cls(**data)

    def run_config(self, label: str, lr: float, seed: int, batch_size: BatchSize
                   ) -> dict[str, Any]:
        """The key of one run: everything that changes what training does, nothing else. (A
        float32 run's key has no dtype: the keys of stores written before there was a choice.)"""
        base = parse_spec(label).without_lr().label
        key = {"task": self.task, "data_dir": self.data_dir, "max_train": self.max_train,
               "optimizer": base, "lr": float(lr), "seed": int(seed),
               "batch_size": batch_size, "epochs": self.epochs}
        if self.dtype != "float32":
            key["dtype"] = self.dtype
        return key

    def total_runs(self) -> int:
        """How many runs the compare trains at least (seed 0 of the chosen lr is a sweep run;
        widening a sweep adds runs)."""
        per_batch = sum(len(self.grids[label]) + max(self.seeds - 1, 0)
                        for label in self.optimizers)
        return per_batch * len(self.batch_sizes)


@dataclass
class OptimizerResult:
    """One optimizer at one batch size: its sweep (seed 0, one run per lr, ``None`` where the
    run is missing), the chosen lr and the runs at that lr over all seeds."""

    label: str
    batch_size: BatchSize
    sweep: dict[float, RunRecord | None]
    chosen_lr: float | None
    seeds: list[RunRecord] = field(default_factory=list)

    @property
    def chosen_at_edge(self) -> bool:
        """The best lr is the smallest or largest tried: the grid may be too narrow."""
        lrs = sorted(self.sweep)
        return len(lrs) > 1 and self.chosen_lr in (lrs[0], lrs[-1])


def selection_metric(run: RunRecord, classification: bool) -> float | None:
    """Higher is better: final validation accuracy, or minus the final validation loss.
    None when the run cannot be chosen (diverged, failed, or a non-finite metric)."""
    if run.status != "finished" or not run.metrics:
        return None
    final = run.final
    value = final.get("val_accuracy") if classification else final.get("val_loss")
    if value is None or not math.isfinite(value):
        return None
    return value if classification else -value


def choose_lr(sweep: dict[float, RunRecord | None], classification: bool) -> float | None:
    """The lr whose run has the best validation metric (ties: the smaller lr)."""
    scored = [(metric, -lr, lr) for lr, run in sweep.items() if run is not None
              and (metric := selection_metric(run, classification)) is not None]
    return max(scored)[2] if scored else None


# Trains one run and returns its record; the second argument describes it for progress bars.
TrainOne = Callable[[dict[str, Any], str], RunRecord]
# The run of (label, lr, seed, batch size): trained or fetched; None where it is missing.
GetRun = Callable[[str, float, int, BatchSize], RunRecord | None]


def _cells(config: CompareConfig) -> Iterator[tuple[BatchSize, str]]:
    for batch_size in config.batch_sizes:
        for label in config.optimizers:
            yield batch_size, label


def _describe(label: str, lr: float, seed: int, batch_size: BatchSize) -> str:
    rate = "" if "lr" in parse_spec(label).hyperparameters else f" lr={lr:g}"
    return f"{label}{rate} seed={seed} batch={batch_size}"


def _cell(config: CompareConfig, label: str, batch_size: BatchSize, get: GetRun,
          classification: bool) -> OptimizerResult:
    """One optimizer at one batch size: the sweep on seed 0, widened one grid step at a time
    (at most ``config.widen`` times) while the best rate sits at the grid's edge, then the
    chosen rate over the seeds. The same walk fetches runs for the report."""
    sweep = {lr: get(label, lr, 0, batch_size) for lr in config.grids[label]}
    chosen = choose_lr(sweep, classification)
    for _ in range(config.widen):
        beyond = next_beyond_edge(sorted(sweep), chosen)
        if beyond is None:
            break
        sweep[beyond] = get(label, beyond, 0, batch_size)
        if sweep[beyond] is None:
            break
        chosen = choose_lr(sweep, classification)
    seeds = [] if chosen is None else [
        run for seed in range(config.seeds) if (run := get(label, chosen, seed, batch_size))]
    return OptimizerResult(label, batch_size, dict(sorted(sweep.items())), chosen, seeds)


def next_beyond_edge(lrs: list[float], chosen: float | None) -> float | None:
    """When ``chosen`` is the smallest or largest of the (sorted) ``lrs``, the next rate out,
    one grid step further (the grid's own spacing, e.g. x10); otherwise None."""
    if chosen is None or len(lrs) < 2 or chosen not in (lrs[0], lrs[-1]):
        return None
    step = lrs[-1] / lrs[-2] if chosen == lrs[-1] else lrs[0] / lrs[1]
    return float(f"{chosen * step:.3g}")


def execute(config: CompareConfig, store: RunStore, train_one: TrainOne,
            on_run_done: Callable[[RunRecord, bool], None] | None = None) -> None:
    """Trains every run the compare needs that the store does not hold yet (a failed run is
    retried; a diverged one is kept). ``on_run_done(run, reused)`` is called once per run."""
    seen: dict[str, RunRecord] = {}

    def ensure(label: str, lr: float, seed: int, batch_size: BatchSize) -> RunRecord:
        run_config = config.run_config(label, lr, seed, batch_size)
        key = canonical_json(run_config)
        if key in seen:  # seed 0 of the chosen rate is also a sweep run
            return seen[key]
        run = store.get(run_config)
        reused = run is not None and run.status != "failed"
        if not reused:
            run = store.add(train_one(run_config, _describe(label, lr, seed, batch_size)))
        seen[key] = run
        if on_run_done is not None:
            on_run_done(run, reused)
        return run

    classification = _is_classification(config)
    for batch_size, label in _cells(config):
        _cell(config, label, batch_size, ensure, classification)


def collect(config: CompareConfig, store: RunStore) -> list[OptimizerResult]:
    """What the store holds for this compare, cell by cell (missing runs are left out)."""
    classification = _is_classification(config)

    def get(label: str, lr: float, seed: int, batch_size: BatchSize) -> RunRecord | None:
        return store.get(config.run_config(label, lr, seed, batch_size))

    return [_cell(config, label, batch_size, get, classification)
            for batch_size, label in _cells(config)]


def _is_classification(config: CompareConfig) -> bool:
    from descend.lab import tasks

    return tasks.get(config.task).classification


def centred_grid(lr: float, points: int = 3, decades_apart: float = 0.5) -> tuple[float, ...]:
    """``points`` learning rates spaced ``decades_apart`` decades around ``lr`` (lr-find's
    suggestion), e.g. 3e-3 -> (9.5e-4, 3e-3, 9.5e-3)."""
    half = (points - 1) / 2
    return tuple(float(f"{lr * 10 ** (decades_apart * (i - half)):.3g}") for i in range(points))
