"""The benchmark's workloads: a lab task, a fixed validation target and a step budget.

A run reaches its target at the first evaluation whose validation accuracy is at least the
target (``metric="val_accuracy"``) or whose validation loss is at most it (``"val_loss"``).
The budget is ``epochs`` of ``batch_size`` mini-batches, evaluated ``evals_per_epoch`` times an
epoch, and at most ``max_seconds`` of training: about a minute per run on two cores at most.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from descend.lab import tasks
from descend.lab.tasks.base import Task


@dataclass(frozen=True)
class Workload:
    name: str
    task: str  # the lab task's name
    metric: str  # "val_accuracy" (reach >= target) or "val_loss" (reach <= target)
    target: float
    epochs: int
    batch_size: int
    evals_per_epoch: int = 4
    max_seconds: float = 60.0
    why: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "val_accuracy"

    def reached(self, value: float | None) -> bool:
        """Whether a validation value is at or past the target."""
        if value is None or value != value:  # None or NaN
            return False
        return value >= self.target if self.higher_is_better else value <= self.target

    def load_task(self, data_dir: str | None = None) -> Task:
        """The lab task, reading ``data_dir`` where the task reads folders (MNIST)."""
        task = tasks.get(self.task)
        return task.with_data_dir(data_dir) if task.load_dir is not None else task

    def show_target(self) -> str:
        what = "validation accuracy" if self.higher_is_better else "validation loss"
        sign = ">=" if self.higher_is_better else "<="
        return f"{what} {sign} {self.target:g}"


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("mnist-mlp", "mnist", "val_accuracy", 0.90, epochs=6, batch_size=64,
             why="a fully connected network on real digits"),
    Workload("mnist-cnn", "mnist-cnn", "val_accuracy", 0.92, epochs=4, batch_size=64,
             evals_per_epoch=2, why="convolutions, where adaptive methods and SGD part ways"),
    Workload("mnist1d", "mnist1d", "val_accuracy", 0.60, epochs=30, batch_size=100,
             evals_per_epoch=2, why="a small problem that is hard for an MLP"),
    Workload("charlm", "charlm", "val_loss", 2.35, epochs=6, batch_size=32,
             evals_per_epoch=2, why="a sequence model: a character-level transformer"),
    Workload("quadratic", "quadratic", "val_loss", 233.0, epochs=40, batch_size=128,
             evals_per_epoch=1, why="DeepOBS's noisy quadratic: ill-conditioned and noisy"),
)}
QUICK = ("mnist-mlp", "mnist1d", "quadratic")


def get(name: str) -> Workload:
    """The workload called ``name``, or a ValueError with the known names and a did-you-mean."""
    if name in WORKLOADS:
        return WORKLOADS[name]
    close = difflib.get_close_matches(name, WORKLOADS, n=2)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ValueError(f"unknown workload {name!r}; available: {', '.join(WORKLOADS)}.{hint}")
