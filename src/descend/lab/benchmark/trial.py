"""One trial: a workload trained with one optimizer at one point of its space and one seed,
stopped at its target, with the time it took to get there (``steps_to_target`` and
``seconds_to_target``, inf when it never did).

The lab's training loop does the work (``descend.lab.train.train``): validation is evaluated
``evals_per_epoch`` times an epoch, the test split is left out (the target is on validation),
and the training loss is measured on the first ``TRAIN_EVAL`` examples. A run that diverges,
or whose training raises, is recorded with infinite time, not as a crash: the benchmark goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from functools import lru_cache
from typing import Any

from descend.lab.benchmark.scoring import time_to_target
from descend.lab.benchmark.spaces import hyperparameters
from descend.lab.benchmark.workloads import Workload
from descend.lab.spec import OptimizerSpec
from descend.lab.tasks.base import Split, Splits

TRAIN_EVAL = 512
_POINT_KEYS = ("epoch", "step", "seconds", "train_loss", "val_loss", "val_accuracy")


@lru_cache(maxsize=8)
def _splits(workload: Workload, data_dir: str | None, seed: int) -> Splits:
    data = workload.load_task(data_dir).load(seed)
    return Splits(data.train, data.val, Split(data.test.x[:0], data.test.y[:0]))


def check_data(workload: Workload, data_dir: str | None) -> None:
    """Loads the workload's data once, so a bad --data-dir fails before anything runs."""
    _splits(workload, data_dir, 0)


def run_trial(workload: Workload, optimizer: str, values: dict[str, float], seed: int, *,
              data_dir: str | None = None, threads: int = 1,
              on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Trains once and returns what a trial records (JSON-ready; inf where not reached)."""
    from descend.lab.train import train

    spec = OptimizerSpec(optimizer, hyperparameters(optimizer, values))
    outcome: dict[str, Any] = {"hyperparameters": spec.label, "diverged": False,
                               "stop_reason": None, "error": None, "history": [],
                               "steps": 0, "seconds": 0.0}
    try:
        result = train(workload.load_task(data_dir), spec, seed=seed, epochs=workload.epochs,
                       batch_size=workload.batch_size, splits=_splits(workload, data_dir, seed),
                       evals_per_epoch=workload.evals_per_epoch,
                       max_seconds=workload.max_seconds, target_accuracy=None,
                       stop=lambda point: workload.reached(getattr(point, workload.metric)),
                       threads=threads, on_step=on_step, train_eval_limit=TRAIN_EVAL)
    except Exception as e:  # a broken optimizer is a result (never reached), not a crash
        outcome["error"] = f"{type(e).__name__}: {e}"
    else:
        outcome.update(diverged=result.diverged, stop_reason=result.stop_reason,
                       steps=result.steps, seconds=result.seconds,
                       history=[{k: asdict(p)[k] for k in _POINT_KEYS} for p in result.history])
    steps, seconds = time_to_target(outcome["history"], workload.reached, workload.metric)
    outcome.update(steps_to_target=steps, seconds_to_target=seconds,
                   reached=math.isfinite(steps), final=_final(workload, outcome["history"]))
    return outcome


def _final(workload: Workload, history: list[dict[str, Any]]) -> float:
    """The last validation value, as a loss (lower is better): ties between trials that never
    reached the target are broken by how close they came."""
    value = history[-1].get(workload.metric) if history else None
    if value is None or not math.isfinite(value):
        return math.inf
    return -value if workload.higher_is_better else value
