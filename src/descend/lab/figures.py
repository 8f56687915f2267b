"""The report's plots (matplotlib, Agg): learning curves with seed bands, the learning-rate
sweep, the gradient-descent variants side by side, and update rules typeset with mathtext.

Every function returns PNG bytes; the caller decides where they go (a file, a data URI).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from descend.lab.cheatsheet import rule_lines
from descend.lab.plotting import STYLE, colour, plt, png_bytes
from descend.lab.store import RunRecord
from descend.lab.sweep import OptimizerResult

DPI = 110
_LINESTYLES = ("-", "--", ":", "-.")



@dataclass(frozen=True)
class Band:
    """A metric over the seeds, aligned by evaluation: x (mean over seeds), mean, min, max."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: int


def band(runs: Sequence[RunRecord], x_key: str, y_key: str) -> Band | None:
    """Aligns the runs' evaluations by index (same steps for every seed) and takes mean, min
    and max over the seeds that got that far (a diverged seed stops contributing)."""
    histories = [r.metrics for r in runs if r.metrics]
    if not histories:
        return None
    length = max(len(h) for h in histories)

    def grid(key: str) -> np.ndarray:
        table = np.full((len(histories), length), np.nan)
        for i, history in enumerate(histories):
            values = [_number(p.get(key)) for p in history]
            table[i, :len(values)] = values
        return table

    xs, ys = grid(x_key), grid(y_key)
    keep = ~np.all(np.isnan(ys), axis=0)
    with np.errstate(all="ignore"):
        return Band(np.nanmean(xs, axis=0)[keep], np.nanmean(ys, axis=0)[keep],
                    np.nanmin(ys, axis=0)[keep], np.nanmax(ys, axis=0)[keep], len(histories))


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _draw(ax, b: Band, *, colour: str, label: str, linestyle: str = "-") -> None:
    ax.plot(b.x, b.mean, color=colour, linestyle=linestyle, linewidth=1.6, label=label)
    if b.seeds > 1:
        ax.fill_between(b.x, b.low, b.high, color=colour, alpha=0.15, linewidth=0)


def learning_curves(results: Sequence[OptimizerResult], colours: dict[str, str],
                    accuracy: bool) -> bytes:
    """2x2: train loss and test accuracy (or test loss) against steps and against seconds."""
    y_keys = [("train_loss", "train loss"),
              ("test_accuracy", "test accuracy") if accuracy else ("test_loss", "test loss")]
    x_keys = [("step", "optimizer steps"), ("seconds", "training seconds")]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 2, figsize=(10.5, 7), layout="constrained")
        for row, (y_key, y_label) in enumerate(y_keys):
            for col, (x_key, x_label) in enumerate(x_keys):
                ax = axes[row, col]
                for result in results:
                    b = band(result.seeds, x_key, y_key)
                    if b is not None:
                        _draw(ax, b, colour=colours[result.label],
                              label=f"{result.label} (lr {result.chosen_lr:g})")
                ax.set_xlabel(x_label)
                ax.set_ylabel(y_label)
                _format_y(ax, y_key)
                ax.set_title(f"{y_label} vs {x_label.split()[-1]}")
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center",
                   ncols=min(4, len(results)))
        return _png(fig)


def lr_sweep(results: Sequence[OptimizerResult], colours: dict[str, str],
             accuracy: bool) -> bytes:
    """Validation metric at the end of training against the learning rate (seed 0); diverged
    rates as crosses at the bottom, the chosen rate ringed."""
    key, label = ("val_accuracy", "validation accuracy") if accuracy else ("val_loss",
                                                                          "validation loss")
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(10.5, 4.2), layout="constrained")
        diverged_any = False
        for i, result in enumerate(results):
            c = colours[result.label]
            points = sorted((lr, _number(run.final.get(key))) for lr, run in
                            result.sweep.items() if run is not None and run.status == "finished")
            if points:
                lrs, values = zip(*points, strict=True)
                ax.plot(lrs, values, marker="o", color=c, label=result.label, linewidth=1.4)
            if result.chosen_lr is not None and result.sweep.get(result.chosen_lr):
                chosen = _number(result.sweep[result.chosen_lr].final.get(key))
                ax.plot([result.chosen_lr], [chosen], marker="o", markersize=13,
                        markerfacecolor="none", markeredgecolor=c, markeredgewidth=1.5)
            bad = [lr for lr, run in result.sweep.items() if run and run.status != "finished"]
            if bad:
                diverged_any = True
                # in a strip along the bottom, nudged sideways so coinciding crosses all show
                nudge = 1.07 ** (i - (len(results) - 1) / 2)
                ax.plot([lr * nudge for lr in bad], [0.03] * len(bad), marker="x",
                        linestyle="none", color=c, transform=ax.get_xaxis_transform(),
                        markersize=7, markeredgewidth=1.6)
        ax.set_xscale("log")
        _format_y(ax, key)
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"{label} (seed 0, end of training)")
        note = "; x at the bottom: diverged" if diverged_any else ""
        ax.set_title(f"Learning-rate sweep (ring: the chosen rate{note})")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
        return _png(fig)


def gd_variants(results: Sequence[OptimizerResult], accuracy: bool) -> bytes:
    """One row per optimizer: its runs at each batch size (full / 1 / N) against epochs and
    against seconds, so batch, stochastic and mini-batch descent sit side by side."""
    labels = list(dict.fromkeys(r.label for r in results))
    batch_sizes = list(dict.fromkeys(r.batch_size for r in results))
    y_key, y_label = ("test_accuracy", "test accuracy") if accuracy else ("test_loss",
                                                                         "test loss")
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(labels), 2, figsize=(10.5, 3.3 * len(labels)),
                                 layout="constrained", squeeze=False)
        for row, label in enumerate(labels):
            for col, (x_key, x_label) in enumerate((("epoch", "epochs"),
                                                   ("seconds", "training seconds"))):
                ax = axes[row, col]
                for result in results:
                    if result.label != label:
                        continue
                    i = batch_sizes.index(result.batch_size)
                    b = band(result.seeds, x_key, y_key)
                    if b is not None:
                        _draw(ax, b, colour=colour(i), linestyle=_LINESTYLES[i % 4],
                              label=f"{batch_label(result.batch_size)} (lr {result.chosen_lr:g})")
                ax.set_xlabel(x_label)
                ax.set_ylabel(y_label)
                if x_key == "seconds":
                    ax.set_xscale("symlog", linthresh=0.1)
                _format_y(ax, y_key)
                ax.set_title(f"{label}: {y_label} vs {x_label.split()[-1]}")
            axes[row, 0].legend(loc="lower right" if accuracy else "upper right")
        return _png(fig)


def _format_y(ax, key: str) -> None:
    """Losses spanning more than a decade on a log axis with plain numbers (0.5, not 5x10^-1);
    accuracies in percent."""
    if not key.endswith("loss"):
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        return
    low, high = ax.dataLim.y0, ax.dataLim.y1
    if low > 0 and math.isfinite(high) and high / low > 10:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(_two_and_five))


def _two_and_five(value: float, _: object) -> str:
    """Minor log ticks labelled at 2 and 5 times a power of ten only, so they stay legible."""
    if value <= 0:
        return ""
    leading = round(value / 10 ** math.floor(math.log10(value)))
    return f"{value:g}" if leading in (2, 5) else ""


def batch_label(batch_size: int | str) -> str:
    """The seeds' names for the three variants of gradient descent."""
    if batch_size == "full":
        return "batch GD (full batch)"
    if int(batch_size) == 1:
        return "stochastic GD (batch 1)"
    return f"mini-batch GD (batch {batch_size})"


def rule(latex: str, fontsize: float = 15) -> bytes:
    """An update rule typeset by matplotlib's mathtext, cropped to its ink; the registry's
    ``;\\quad``-separated statements go on lines of their own, like an algorithm."""
    lines = rule_lines(latex)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(0.01, 0.01))
        fig.text(0, 0, "\n".join(f"${line}$" for line in lines), fontsize=fontsize,
                 linespacing=1.9)
        return _png(fig, dpi=150, tight=True)


def _png(fig: Figure, dpi: int = DPI, tight: bool = False) -> bytes:
    extra = {"bbox_inches": "tight", "pad_inches": 0.04, "transparent": True} if tight else {}
    return png_bytes(fig, dpi=dpi, **extra)
