"""Late training in bfloat16: nearest rounding loses small updates, stochastic keeps them.

Late in training (a trained model, a small learning rate) most updates lr * g are far smaller
than the gap between neighbouring bfloat16 numbers around the weights (8 significant bits: the
gap above 1.0 is 2^-7 = 0.0078), so rounding the new weight to nearest writes the old one back
and the update is lost. Stochastic rounding rounds up with the probability of the fraction of
the gap the value lies above the number below (E[round(x)] = x), so updates count on average.

The experiment: train the task's model in float32 with the optimizer at --pretrain-lr for
--pretrain-epochs; from that point, train --epochs more at the small --lr three ways, on the
same minibatches: in float32, in --dtype (bfloat16) rounded to nearest-even, and in --dtype with
stochastic rounding (descend's ``stochastic_rounding=True``). Measured: the training loss (on the
whole training split, 10 times an epoch), and how far the weights got along the direction
float32 moved them (stochastic rounding's noise averages out along it; it makes the plain
distance from the start point, also recorded, larger). Writes OUT/precision.png and
OUT/precision.json and prints the numbers.

examples:
  descend precision
  descend precision --task digits --lr 3e-4
  descend precision --optimizer adam --pretrain-lr 1e-3 --lr 1e-5
  descend precision --dtype float16
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from copy import deepcopy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from descend.cli import UserError
from descend.lab import tasks
from descend.lab.spec import OptimizerSpec, parse_spec
from descend.lab.tasks.base import Split, Splits, Task

EVALS_PER_EPOCH = 10
PATH_POINTS = 60  # how many times the weights are looked at in the measured phase
DEFAULT_TASK = "mnist"
DEFAULT_OPTIMIZER = "sgd"
DEFAULT_PRETRAIN_LR = 0.1
DEFAULT_LR = 1e-3
DEFAULT_EPOCHS = 3
LOW_PRECISION = ("bfloat16", "float16")
FIGURE, NUMBERS = "precision.png", "precision.json"


@dataclass
class Run:
    """One way of training from the start point: the training loss at each evaluation, and
    where the weights went: their distance from the start point and how far they got along
    the direction float32 moved them (the component of their displacement along it)."""

    label: str  # "float32", "bfloat16, nearest", "bfloat16, stochastic"
    dtype: str  # the parameters' dtype, as trained
    stochastic_rounding: bool
    steps: list[int] = field(default_factory=list)  # the optimizer steps of the evaluations
    train_loss: list[float] = field(default_factory=list)
    path_steps: list[int] = field(default_factory=list)  # where the weights were looked at
    moved: list[float] = field(default_factory=list)  # ||w - w_start||
    along: list[float] = field(default_factory=list)  # (w - w_start) . d / ||d||, d: float32's
    unchanged: float = math.nan  # share of the weights still at their start value at the end
    seconds: float = 0.0  # training seconds (forward, backward, step)
    stop_reason: str | None = None

    @property
    def decrease(self) -> float:
        """How much the training loss fell from the start point to the end."""
        return self.train_loss[0] - self.train_loss[-1] if self.train_loss else math.nan


@dataclass
class PrecisionResult:
    task: str
    optimizer: str
    batch_size: int | str
    seed: int
    pretrain_lr: float
    pretrain_epochs: int
    pretrained_loss: float  # the training loss at the start point, in float32
    lr: float
    epochs: int
    runs: list[Run]

    def run(self, label: str) -> Run:
        return next(r for r in self.runs if r.label == label)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for run, saved in zip(self.runs, data["runs"], strict=True):
            saved["decrease"] = run.decrease
        return data


def compare_precisions(task: Task, spec: OptimizerSpec, *, dtype: str = "bfloat16",
                       pretrain_lr: float = DEFAULT_PRETRAIN_LR,
                       pretrain_epochs: int | None = None, lr: float = DEFAULT_LR,
                       epochs: int = DEFAULT_EPOCHS, seed: int = 0,
                       batch_size: int | str | None = None, splits: Splits | None = None,
                       threads: int | None = 1) -> PrecisionResult:
    """The experiment of the module doc; ``spec``'s own lr is replaced by the two rates."""
    from descend.lab.train import batch_size_for, train

    if dtype not in LOW_PRECISION:
        raise ValueError(f"dtype {dtype!r}: compare float32 with one of {', '.join(LOW_PRECISION)}")
    splits = task.load(seed) if splits is None else splits
    pretrain_epochs = task.epochs if pretrain_epochs is None else pretrain_epochs
    batch_size = task.batch_size if batch_size is None else batch_size
    model = task.build_model(seed)
    early = train(task, spec.with_lr(pretrain_lr), seed=seed, epochs=pretrain_epochs,
                  batch_size=batch_size, splits=splits, threads=threads, model=model)
    if early.diverged:
        raise ValueError(f"the float32 training before the measured phase {early.stop_reason}; "
                         "lower --pretrain-lr")
    n = len(splits.train)
    steps = epochs * math.ceil(n / batch_size_for(batch_size, n))
    how = {"seed": seed, "epochs": epochs, "batch_size": batch_size, "splits": splits,
           "threads": threads, "stride": max(1, math.ceil(steps / PATH_POINTS))}
    reference, direction = _from(model, task, spec.with_lr(lr), "float32", False, None, **how)
    runs = [reference] + [_from(model, task, spec.with_lr(lr), dtype, stochastic, direction,
                                **how)[0] for stochastic in (False, True)]
    return PrecisionResult(task.name, spec.without_lr().label, early.batch_size, seed,
                           pretrain_lr, pretrain_epochs, early.final.train_loss, lr, epochs, runs)


def _from(start: nn.Module, task: Task, spec: OptimizerSpec, dtype: str, stochastic: bool,
          direction: Tensor | None, stride: int, **how: Any) -> tuple[Run, Tensor]:
    """Trains a copy of ``start`` in ``dtype``, looking at the weights every ``stride`` steps;
    returns the run and the unit direction its weights moved in. ``direction`` is the one
    ``along`` measures against (None: this run's own, for the float32 reference)."""
    from descend.lab.train import DTYPES, train

    label = dtype if dtype == "float32" else (
        f"{dtype}, {'stochastic' if stochastic else 'nearest'}")
    model = deepcopy(start).to(DTYPES[dtype])
    origin = [p.detach().clone() for p in model.parameters()]
    flat_origin = _flat(model)
    path: list[tuple[int, Tensor]] = [(0, torch.zeros_like(flat_origin))]

    def on_step(step: int, loss: float) -> None:
        if step % stride == 0:
            path.append((step, _flat(model) - flat_origin))

    if stochastic:
        spec = OptimizerSpec(spec.name, {**spec.hyperparameters, "stochastic_rounding": True})
    result = train(task, spec, on_step=on_step, evals_per_epoch=EVALS_PER_EPOCH, dtype=dtype,
                   model=model, **how)
    end = _flat(model) - flat_origin
    if path[-1][0] != result.steps:
        path.append((result.steps, end))
    own = end / end.norm() if float(end.norm()) > 0 else end
    unit = own if direction is None else direction
    with torch.no_grad():
        same = sum(int((p == o).sum()) for p, o in zip(model.parameters(), origin, strict=True))
    run = Run(label, result.dtype, stochastic, [p.step for p in result.history],
              [p.train_loss for p in result.history], [step for step, _ in path],
              [float(d.norm()) for _, d in path], [float(d @ unit) for _, d in path],
              same / len(flat_origin), result.seconds, result.stop_reason)
    return run, own


@torch.no_grad()
def _flat(model: nn.Module) -> Tensor:
    """``model``'s weights as one float32 vector."""
    return torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])


# ---- the figure and the table ----------------------------------------------------------------



def _looks(run: Run) -> dict[str, Any]:
    from descend.lab.plotting import colour

    if run.dtype == "float32":
        return {"color": "#404040", "linestyle": "-", "linewidth": 2.2}
    if run.stochastic_rounding:
        return {"color": colour(0), "linestyle": "-", "linewidth": 1.8}
    return {"color": colour(3), "linestyle": "--", "linewidth": 1.8}


def plot(result: PrecisionResult) -> bytes:
    """Left: the training loss from the start point; right: how far the weights got along the
    direction float32 moved them."""
    from descend.lab.plotting import STYLE, plt, png_bytes

    reference = result.run("float32")
    with plt.rc_context({**STYLE, "legend.fontsize": 9}):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.4), layout="constrained")
        for run in result.runs:
            looks = _looks(run)
            left.plot(run.steps, run.train_loss, marker="o", markersize=2.5, **looks,
                      label=f"{run.label}: {run.decrease:.4f} ({_share(run, result)})")
            share = run.along[-1] / reference.along[-1] if reference.along[-1] > 0 else math.nan
            right.plot(run.path_steps, run.along, **looks,
                       label=f"{run.label}: {100 * share:.0f} %")
        left.set_ylabel("training loss")
        left.set_title("Training loss")
        left.legend(loc="lower left", title="loss decrease")
        right.set_ylabel("distance along float32's direction")
        right.set_title("How far the weights got along float32's path")
        right.legend(loc="upper left", title="of float32's distance")
        for ax in (left, right):
            ax.set_xlabel("optimizer steps from the start point")
        fig.suptitle(f"{result.task}, {result.optimizer}: lr {result.lr:g} for {result.epochs} "
                     f"epoch(s), from the model trained {result.pretrain_epochs} epoch(s) at "
                     f"lr {result.pretrain_lr:g} in float32", fontsize=11)
        return png_bytes(fig, dpi=110)


def share_of_float32(run: Run, result: PrecisionResult) -> float:
    """The run's loss decrease as a fraction of float32's (NaN where float32's is not > 0)."""
    reference = result.run("float32").decrease
    return run.decrease / reference if reference > 0 else math.nan


def _share(run: Run, result: PrecisionResult) -> str:
    if run.dtype == "float32":
        return "the reference"
    share = share_of_float32(run, result)
    return f"{100 * share:.0f} % of float32's" if math.isfinite(share) else "float32's: none"


def table(result: PrecisionResult) -> str:
    """The numbers of the figure, as text for the terminal."""
    head = (f"{result.task}, {result.optimizer}: from the point reached after "
            f"{result.pretrain_epochs} epoch(s) at lr {result.pretrain_lr:g} in float32 "
            f"(training loss {result.pretrained_loss:.4f}), {result.epochs} epoch(s) at lr "
            f"{result.lr:g}")
    columns = ["", "start loss", "end loss", "decrease", "vs float32", "along float32's",
               "distance", "never moved", "train s"]
    rows = [columns]
    for run in result.runs:
        share = share_of_float32(run, result)
        rows.append([run.label, f"{run.train_loss[0]:.4f}", f"{run.train_loss[-1]:.4f}",
                     f"{run.decrease:.4f}", f"{100 * share:.0f} %" if math.isfinite(share)
                     else "-", f"{run.along[-1]:.4f}", f"{run.moved[-1]:.4f}",
                     f"{100 * run.unchanged:.1f} %", f"{run.seconds:.2f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    return "\n".join([head, *lines])


# ---- the command -----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default=DEFAULT_TASK,
                        help=f"what to train (default {DEFAULT_TASK}); one of: "
                        f"{', '.join(tasks.available())}")
    parser.add_argument("--optimizer", default=DEFAULT_OPTIMIZER, metavar="SPEC",
                        help="registry name with optional hyperparameters, e.g. "
                        f"momentum:momentum=0.9, without lr (default {DEFAULT_OPTIMIZER})")
    parser.add_argument("--dtype", default="bfloat16", help="the low precision to compare "
                        "with float32: bfloat16 (default) or float16")
    parser.add_argument("--pretrain-lr", type=float, default=DEFAULT_PRETRAIN_LR, metavar="LR",
                        help=f"learning rate of the float32 training that reaches the start "
                        f"point (default {DEFAULT_PRETRAIN_LR:g})")
    parser.add_argument("--pretrain-epochs", type=int, metavar="N",
                        help="epochs of that training (default: the task's)")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR,
                        help=f"the small learning rate of the measured phase (default "
                        f"{DEFAULT_LR:g})")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, metavar="N",
                        help=f"epochs of the measured phase (default {DEFAULT_EPOCHS})")
    parser.add_argument("--batch-size", metavar="B", help="full, 1 or N (default: the task's)")
    parser.add_argument("--max-train", type=int, metavar="N",
                        help="train on the first N training examples only (quick runs)")
    parser.add_argument("--seed", type=int, default=0, help="model and minibatch seed")
    parser.add_argument("--data-dir", metavar="DIR", help="read the task's data from this "
                        "folder (mnist: the four standard IDX files)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch threads (default 1: fastest for small models)")
    parser.add_argument("--out", default="descend-precision", metavar="DIR",
                        help=f"folder for {FIGURE} and {NUMBERS} (default ./descend-precision)")


def run(args: argparse.Namespace) -> int:
    from descend.lab.files import (
        check_writable,
        strict_json,
        write_bytes_atomic,
        write_text_atomic,
    )
    from descend.lab.train import batch_size_for, dtype_name

    task = tasks.get(args.task).with_data_dir(args.data_dir)
    spec = parse_spec(args.optimizer)
    for key in ("lr", "stochastic_rounding"):
        if key in spec.hyperparameters:
            how = "--lr and --pretrain-lr" if key == "lr" else "the experiment (it runs both)"
            raise UserError(f"--optimizer {args.optimizer}: {key} is set by {how}; drop it")
    dtype = dtype_name(args.dtype)
    if dtype not in LOW_PRECISION:
        raise UserError(f"--dtype {args.dtype}: float32 is the reference; compare it with "
                        "bfloat16 or float16")
    for option, value in (("--lr", args.lr), ("--pretrain-lr", args.pretrain_lr)):
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"{option} must be a positive number, not {value:g} (e.g. 1e-3)")
    for option, value in (("--epochs", args.epochs), ("--pretrain-epochs", args.pretrain_epochs),
                          ("--max-train", args.max_train), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise UserError(f"{option} must be a positive integer, not {value}")
    splits = task.load(args.seed)
    if args.max_train is not None:
        splits = Splits(Split(splits.train.x[:args.max_train], splits.train.y[:args.max_train]),
                        splits.val, splits.test)
    if args.batch_size is not None:
        batch_size_for(args.batch_size, len(splits.train))  # a bad one fails before training
    out = check_writable(args.out)

    print(f"descend precision: {task.name}, {spec.label}: float32, {dtype} nearest and "
          f"{dtype} stochastic rounding", file=sys.stderr)
    result = compare_precisions(task, spec, dtype=dtype, pretrain_lr=args.pretrain_lr,
                                pretrain_epochs=args.pretrain_epochs, lr=args.lr,
                                epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
                                splits=splits, threads=args.threads)
    print(table(result))
    figure = write_bytes_atomic(out / FIGURE, plot(result))
    numbers = write_text_atomic(out / NUMBERS, json.dumps(
        strict_json(result.to_dict(), significant=8), indent=1))
    print(f"wrote {figure} and {numbers}")
    return 0

