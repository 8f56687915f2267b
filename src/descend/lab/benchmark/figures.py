"""The benchmark's pictures: performance profiles, times to target, learning curves."""

from __future__ import annotations

import math

import numpy as np

from descend.lab.benchmark import scoring
from descend.lab.benchmark.config import MODES
from descend.lab.benchmark.results import Results
from descend.lab.plotting import STYLE, optimizer_colors, plt, png_bytes

TAUS = np.linspace(1.0, scoring.R_MAX, 301)


def _colors(results: Results) -> dict[str, tuple[float, float, float]]:
    names = list(results.config.optimizers)
    return dict(zip(names, optimizer_colors(names), strict=True))


def profile_png(results: Results, measure: str = "steps") -> bytes:
    """One panel per tuning mode: rho(tau) per optimizer, its score in the legend."""
    colors, scores = _colors(results), results.scores(measure)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(MODES), figsize=(11, 4), sharey=True)
        for ax, mode in zip(axes, MODES, strict=True):
            rho = scoring.profile(results.table(mode, measure), TAUS)
            for o in results.config.optimizers:
                ax.step(TAUS, rho.get(o, np.zeros_like(TAUS)), where="post", lw=1.8,
                        color=colors[o], label=f"{o} ({scores[mode][o]:.2f})")
            ax.set(title=f"{MODES[mode]}", xlabel=r"$\tau$ (time to target / fastest)",
                   xlim=(1, scoring.R_MAX), ylim=(-0.02, 1.02))
            ax.legend(loc="lower right", title="score")
        axes[0].set_ylabel(r"fraction of workloads within $\tau$")
        fig.suptitle(f"Performance profiles ({measure} to target)", fontsize=12)
        fig.tight_layout()
        return png_bytes(fig, dpi=110)


def times_png(results: Results, measure: str = "steps") -> bytes:
    """One panel per workload: median time to target per optimizer (bars: external tuning,
    open markers: defaults), whiskers the interquartile range, x where never reached."""
    colors, workloads = _colors(results), results.config.workloads
    optimizers = list(results.config.optimizers)
    cols = min(3, len(workloads))
    rows = math.ceil(len(workloads) / cols)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 0.45 * len(optimizers) * rows
                                                      + 1.2 * rows), squeeze=False)
        for ax, w in zip(axes.flat, workloads, strict=False):
            _times_panel(ax, results, w, optimizers, colors, measure)
        for ax in axes.flat[len(workloads):]:
            ax.set_visible(False)
        fig.tight_layout()
        return png_bytes(fig, dpi=110)


def _times_panel(ax, results: Results, workload: str, optimizers: list[str], colors,
                 measure: str) -> None:
    finite = [c.median(measure) for m in MODES for o in optimizers
              if (c := results.cell(m, workload, o)) and math.isfinite(c.median(measure))]
    edge = max(finite, default=1.0) * 1.15
    y = np.arange(len(optimizers))
    for i, o in enumerate(optimizers):
        for mode, offset in (("external", -0.18), ("self", 0.18)):
            cell = results.cell(mode, workload, o)
            if cell is None:
                continue
            median, (q1, q3) = cell.median(measure), cell.iqr(measure)
            if not math.isfinite(median):
                ax.plot(edge, i + offset, "x", color=colors[o], ms=7)
                continue
            spread = [[median - q1], [min(q3, edge) - median]]
            if mode == "external":
                ax.barh(i + offset, median, height=0.34, color=colors[o], xerr=spread,
                        error_kw={"lw": 1, "capsize": 2})
            else:
                ax.errorbar(median, i + offset, xerr=spread, fmt="o", mfc="white",
                            color=colors[o], ms=5, lw=1, capsize=2)
    ax.set_yticks(y, optimizers)
    ax.invert_yaxis()
    ax.set_xlim(0, edge * 1.05)
    ax.set_title(f"{workload}: {results.config.workload(workload).show_target()}", fontsize=9.5)
    ax.set_xlabel(f"{measure} to target (bar tuned, o defaults, x never)")


def curves_png(results: Results) -> bytes:
    """One panel per workload: the validation metric of the chosen external-tuning run
    (seed 0) per optimizer, the target dotted; the defaults' seed 0 dashed."""
    colors, workloads = _colors(results), results.config.workloads
    cols = min(3, len(workloads))
    rows = math.ceil(len(workloads) / cols)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
        for ax, w in zip(axes.flat, workloads, strict=False):
            workload = results.config.workload(w)
            for o in results.config.optimizers:
                for mode, style in (("external", "-"), ("self", "--")):
                    cell = results.cell(mode, w, o)
                    points = [p for p in (cell.chosen["history"] if cell else [])
                              if p.get(workload.metric) is not None]
                    if points:
                        ax.plot([p["step"] for p in points], [p[workload.metric] for p in points],
                                style, color=colors[o], lw=1.4 if mode == "external" else 1.0,
                                label=o if mode == "external" else None)
            ax.axhline(workload.target, color="0.3", ls=":", lw=1)
            ax.set(title=w, xlabel="step", ylabel=workload.metric.replace("_", " "))
            if not workload.higher_is_better:
                _clip_losses(ax, workload.target)
        axes.flat[0].legend(loc="best")
        for ax in axes.flat[len(workloads):]:
            ax.set_visible(False)
        fig.tight_layout()
        return png_bytes(fig, dpi=110)


def _clip_losses(ax, target: float) -> None:
    """Keep a loss panel readable: initial losses can be far above the target."""
    ax.set_ylim(top=min(ax.get_ylim()[1], target * 1.6))
