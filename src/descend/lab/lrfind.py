"""Find a learning rate with the LR range test: train briefly while the LR grows exponentially.

The test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks", section 3.3; the
fast.ai variant): step ``i`` of ``steps`` uses ``lr_i = min_lr * (max_lr / min_lr) ** (i /
(steps - 1))``. The minibatch losses are smoothed by an exponential moving average with bias
correction, ``avg_i = beta avg_(i-1) + (1 - beta) loss_i``, ``smoothed_i = avg_i / (1 -
beta ** (i + 1))`` (beta = 0.98), and the test stops once the smoothed loss exceeds 4x its best.

Suggested LR: where the smoothed loss falls fastest against log(lr), looking only at LRs below
the one with the lowest smoothed loss (fast.ai's "steepest" rule): the loss still drops quickly
there, and it lies safely below the LRs where training blows up. When the test is too short
to tell (the minimum is among the first points), the lowest-loss LR / 10 is suggested instead.
``method`` in the result says which rule gave the suggestion.

Writes ``lr_find.png`` (loss against LR on a log axis, the suggestion marked) and
``lr_find.json`` in ``--out`` and prints the suggestion.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from itertools import chain, count
from pathlib import Path
from typing import Any

import numpy as np
import torch

from descend.lab import tasks
from descend.lab.spec import OptimizerSpec, parse_spec
from descend.lab.tasks.base import Splits, Task
from descend.lab.train import BatchSize, auto_threads, batch_size_for, epoch_batches

BETA = 0.98
STOP_FACTOR = 4.0
SAFETY_DECADES = 0.5  # the suggestion stays this far below the lowest-loss LR


@dataclass
class LrFindResult:
    task: str
    optimizer: str
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggested_lr: float | None
    method: str
    min_loss_lr: float | None
    stop_reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lr_schedule(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """``steps`` learning rates growing geometrically from ``min_lr`` to ``max_lr``."""
    return min_lr * (max_lr / min_lr) ** (np.arange(steps) / max(steps - 1, 1))


def smooth(losses: list[float], beta: float = BETA) -> list[float]:
    """Bias-corrected exponential moving average of ``losses``."""
    avg, out = 0.0, []
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[float | None, str]:
    """The LR where the smoothed loss falls fastest against log(lr), searched from the end of
    the moving average's warm-up (the first 10% of the test) to half a decade below the
    lowest-loss LR; the lowest-loss LR / 10 when that range is empty. Returns (lr, rule)."""
    if not smoothed:
        return None, "none: no finite loss"
    lowest = int(np.argmin(smoothed))
    log_lr, loss = np.log10(lrs), np.asarray(smoothed)
    first = len(lrs) // 10
    last = int(np.searchsorted(log_lr, log_lr[lowest] - SAFETY_DECADES, side="right")) - 1
    if last <= first:
        return lrs[lowest] / 10, "min-loss/10"
    # slope over a window of +-5% of the test, so minibatch noise does not pick the point
    half = max(1, len(lrs) // 20)
    ahead = np.minimum(np.arange(len(lrs)) + half, lowest)
    behind = np.maximum(np.arange(len(lrs)) - half, 0)
    slope = (loss[ahead] - loss[behind]) / np.maximum(log_lr[ahead] - log_lr[behind], 1e-12)
    return float(lrs[first + int(np.argmin(slope[first:last + 1]))]), "steepest"


def find_lr(task: Task, spec: OptimizerSpec, seed: int = 0, min_lr: float = 1e-7,
            max_lr: float = 10.0, steps: int = 100, batch_size: BatchSize | None = None,
            splits: Splits | None = None) -> LrFindResult:
    """Runs the range test of ``spec`` (its own lr is ignored) on ``task`` from a fresh model."""
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < --min-lr < --max-lr, got {min_lr:g} and {max_lr:g} "
                         "(e.g. --min-lr 1e-7 --max-lr 10)")
    if steps < 2:
        raise ValueError(f"--steps must be at least 2, got {steps} (e.g. 100)")
    splits = task.load(seed) if splits is None else splits
    x, y = splits.train.x, splits.train.y
    batch = batch_size_for(task.batch_size if batch_size is None else batch_size, len(x))
    torch.manual_seed(seed)
    model = task.build_model(seed)
    optimizer = spec.with_lr(min_lr).build(model.parameters())
    shuffle = torch.Generator().manual_seed(seed)
    lrs = lr_schedule(min_lr, max_lr, steps).tolist()
    losses: list[float] = []
    stop_reason = f"reached --max-lr {max_lr:g}"
    average, best = 0.0, math.inf
    batches = chain.from_iterable(epoch_batches(len(x), batch, shuffle) for _ in count())
    old_threads = torch.get_num_threads()
    torch.set_num_threads(auto_threads(model, batch, old_threads))
    try:
        for lr, index in zip(lrs, batches, strict=False):
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            xb, yb = (x, y) if index is None else (x[index], y[index])
            loss = task.loss(model(xb), yb)
            loss.backward()
            optimizer.step()
            value = loss.item()
            if not math.isfinite(value):
                stop_reason = f"loss not finite at lr {lr:.3g}"
                break
            losses.append(value)
            average = BETA * average + (1 - BETA) * value
            smoothed = average / (1 - BETA ** len(losses))
            best = min(best, smoothed)
            if smoothed > STOP_FACTOR * best:
                stop_reason = f"loss exceeded {STOP_FACTOR:g}x its best at lr {lr:.3g}"
                break
    finally:
        torch.set_num_threads(old_threads)
    smoothed = smooth(losses)
    lrs = lrs[:len(losses)]
    suggestion, method = suggest(lrs, smoothed)
    min_loss_lr = lrs[int(np.argmin(smoothed))] if smoothed else None
    return LrFindResult(task.name, spec.label, lrs, losses, smoothed, suggestion, method,
                        min_loss_lr, stop_reason)


def plot(result: LrFindResult, path: Path) -> Path:
    """Loss against learning rate (log axis), raw and smoothed, with the suggestion marked."""
    from descend.lab.plotting import optimizer_colors, plt, save

    color = optimizer_colors([result.optimizer])[0]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(result.lrs, result.losses, color=color, alpha=0.25, lw=1, label="minibatch loss")
    ax.plot(result.lrs, result.smoothed, color=color, lw=2, label="smoothed (EMA, beta 0.98)")
    if result.suggested_lr is not None:
        at = min(range(len(result.lrs)), key=lambda i: abs(result.lrs[i] - result.suggested_lr))
        ax.axvline(result.suggested_lr, color="black", ls="--", lw=1)
        ax.plot([result.suggested_lr], [result.smoothed[at]], "o", color="black",
                label=f"suggested lr {result.suggested_lr:.3g} ({result.method})")
    if result.smoothed:  # keep the blow-up from flattening the interesting part
        low, start = min(*result.losses, *result.smoothed), result.smoothed[0]
        ax.set_ylim(low - 0.05 * abs(start - low), start + 0.3 * abs(start - low) + 1e-12)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title(f"LR range test: {result.optimizer} on {result.task}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return save(fig, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="mnist",
                        help=f"what to train (default mnist); one of: "
                        f"{', '.join(tasks.available())}")
    parser.add_argument("--optimizer", default="adam", metavar="SPEC",
                        help="registry name with optional hyperparameters, e.g. "
                        "momentum:momentum=0.95 (its lr is ignored; default adam)")
    parser.add_argument("--min-lr", type=float, default=1e-7, help="first LR (default 1e-7)")
    parser.add_argument("--max-lr", type=float, default=10.0, help="last LR (default 10)")
    parser.add_argument("--steps", type=int, default=100, help="number of steps (default 100)")
    parser.add_argument("--batch-size", default=None, metavar="B",
                        help="full, 1 or N (default: the task's)")
    parser.add_argument("--seed", type=int, default=0, help="model and minibatch seed")
    parser.add_argument("--data-dir", metavar="DIR", help="read the task's data from this "
                        "folder (mnist: the four standard IDX files)")
    parser.add_argument("--out", default="descend-lr-find", metavar="DIR",
                        help="folder for lr_find.png and lr_find.json "
                        "(default ./descend-lr-find)")


def run(args: argparse.Namespace) -> int:
    from descend.lab.files import check_writable, write_text_atomic

    task = tasks.get(args.task).with_data_dir(args.data_dir)
    spec = parse_spec(args.optimizer)
    out = check_writable(args.out)
    result = find_lr(task, spec, seed=args.seed, min_lr=args.min_lr, max_lr=args.max_lr,
                     steps=args.steps, batch_size=args.batch_size)
    write_text_atomic(out / "lr_find.json", json.dumps(result.to_dict(), indent=1))
    picture = plot(result, out / "lr_find.png")
    if result.suggested_lr is None:
        print(f"no suggestion: {result.stop_reason}; try a smaller --min-lr")
    else:
        print(f"suggested lr for {result.optimizer} on {result.task}: {result.suggested_lr:.3g}"
              f" ({result.method}; lowest loss at lr {result.min_loss_lr:.3g}; "
              f"{result.stop_reason})")
    print(f"wrote {picture} and {out / 'lr_find.json'}")
    return 0
