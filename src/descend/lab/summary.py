"""The numbers of a compare, one row per optimizer and batch size: the test metric over seeds
(mean +- sample standard deviation), the chosen learning rate, steps and seconds to the target
accuracy and the mean time of one ``optimizer.step()``."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from descend.lab.store import RunRecord
from descend.lab.sweep import OptimizerResult


@dataclass(frozen=True)
class Row:
    label: str
    batch_size: int | str
    chosen_lr: float | None
    chosen_at_edge: bool
    seeds: int
    accuracy: bool  # True: metric is test accuracy; False: test loss
    metric_mean: float
    metric_std: float
    train_loss_mean: float
    target: float | None
    target_reached: int  # seeds that reached the target
    steps_to_target: float  # mean over the seeds that reached it
    seconds_to_target: float
    step_ms: float  # mean milliseconds per optimizer.step()
    run_seconds: float  # mean training seconds per run
    steps: float  # mean optimizer steps per run
    diverged_lrs: tuple[float, ...]
    failed_lrs: tuple[float, ...]
    diverged_seeds: int

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["diverged_lrs"] = list(self.diverged_lrs)
        data["failed_lrs"] = list(self.failed_lrs)
        return data

    @property
    def lr_text(self) -> str:
        return "—" if self.chosen_lr is None else f"{self.chosen_lr:g}"

    @property
    def metric_text(self) -> str:
        if self.seeds == 0 or math.isnan(self.metric_mean):
            return "—"
        if self.accuracy:
            text = f"{100 * self.metric_mean:.2f}"
            return (f"{text} ± {100 * self.metric_std:.2f} %" if self.seeds > 1
                    else f"{text} %")
        text = f"{self.metric_mean:.4g}"
        return f"{text} ± {self.metric_std:.2g}" if self.seeds > 1 else text

    @property
    def step_ms_text(self) -> str:
        return "—" if math.isnan(self.step_ms) else f"{self.step_ms:.3f}"


def summarize(results: Sequence[OptimizerResult], target: float | None,
              accuracy: bool) -> list[Row]:
    return [_row(r, target, accuracy) for r in results]


def _row(result: OptimizerResult, target: float | None, accuracy: bool) -> Row:
    finished = [r for r in result.seeds if r.status == "finished" and r.metrics]
    key = "test_accuracy" if accuracy else "test_loss"
    hits = [h for r in finished if (h := first_reaching(r, target)) is not None] \
        if accuracy and target is not None else []
    status = {lr: run.status for lr, run in result.sweep.items() if run is not None}
    return Row(
        label=result.label, batch_size=result.batch_size, chosen_lr=result.chosen_lr,
        chosen_at_edge=result.chosen_at_edge, seeds=len(finished), accuracy=accuracy,
        metric_mean=_mean(r.final.get(key) for r in finished),
        metric_std=_std(r.final.get(key) for r in finished),
        train_loss_mean=_mean(r.final.get("train_loss") for r in finished),
        target=target if accuracy else None, target_reached=len(hits),
        steps_to_target=_mean(h["step"] for h in hits),
        seconds_to_target=_mean(h["seconds"] for h in hits),
        step_ms=1e3 * _mean(r.timings.get("step_time") for r in finished),
        run_seconds=_mean(r.timings.get("seconds") for r in finished),
        steps=_mean(r.timings.get("steps") for r in finished),
        diverged_lrs=tuple(lr for lr, s in status.items() if s == "diverged"),
        failed_lrs=tuple(lr for lr, s in status.items() if s == "failed"),
        diverged_seeds=sum(r.status == "diverged" for r in result.seeds))


def first_reaching(run: RunRecord, target: float | None) -> dict[str, Any] | None:
    """The first evaluation whose test accuracy is at least ``target`` (None: never)."""
    if target is None:
        return None
    return next((p for p in run.metrics if (p.get("test_accuracy") or 0.0) >= target), None)


def _finite(values) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]


def _mean(values) -> float:
    values = _finite(values)
    return statistics.fmean(values) if values else math.nan


def _std(values) -> float:
    values = _finite(values)
    return statistics.stdev(values) if len(values) > 1 else 0.0
