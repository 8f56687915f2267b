"""Pictures of optimizer trajectories on a landscape: a contour plot (PNG) and an animation (GIF).

Importable from :mod:`descend.lab.landscapes` as well.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from PIL import Image

from descend.lab.files import write_bytes_atomic
from descend.lab.landscapes import Landscape, Trajectory, get, run_all
from descend.lab.plotting import optimizer_colors, save
from descend.lab.spec import OptimizerSpec

_GRID = 300
# A pale background under the tab10 paths (darker is lower): the paths stay readable.
_CMAP, _ALPHA = "viridis", 0.4


def outcome(landscape: Landscape, run: Trajectory) -> str:
    """A few words on how a run went, for legends and captions."""
    if run.diverged:
        return f"diverged at step {run.steps_run}"
    if landscape.is_saddle:
        return f"escaped in {run.escaped_step} steps" if run.escaped else "stuck at the saddle"
    if run.reached_step is None:
        return "minimum not reached"
    if len(landscape.minima) == 1:
        return f"minimum in {run.reached_step} steps"
    return f"{landscape.describe_minimum(run.reached_minimum)} in {run.reached_step} steps"


def _draw_landscape(ax: Axes, landscape: Landscape) -> None:
    (x0, x1), (y0, y1) = landscape.bounds
    x, y = np.meshgrid(np.linspace(x0, x1, _GRID), np.linspace(y0, y1, _GRID))
    with torch.no_grad():
        z = landscape.fn(torch.from_numpy(np.stack([x, y], axis=-1))).numpy()
    if landscape.log_contours:
        # Shift so the lowest value is a small positive number, then space levels by decades.
        z = z - z.min() + 1e-3 * (z.max() - z.min()) / 1e4
        levels = np.geomspace(z.min(), z.max(), 30)
        ax.contourf(x, y, z, levels=levels, norm=LogNorm(), cmap=_CMAP, alpha=_ALPHA)
        ax.contour(x, y, z, levels=levels[::2], norm=LogNorm(), colors="white", linewidths=0.4,
                   alpha=0.6)
    else:
        # Levels up to a high percentile: steep corners would otherwise use up the colors.
        levels = np.linspace(z.min(), np.percentile(z, 90), 30)
        ax.contourf(x, y, z, levels=levels, cmap=_CMAP, alpha=_ALPHA, extend="max")
        ax.contour(x, y, z, levels=levels[::2], colors="white", linewidths=0.4, alpha=0.6)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ratio = (y1 - y0) / (x1 - x0)
    ax.set_aspect("equal" if 0.3 <= ratio <= 3 else "auto")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    _mark_minima(ax, landscape)


def _mark_minima(ax: Axes, landscape: Landscape) -> None:
    best = landscape.global_minima
    local = [m for m in landscape.minima if m not in best]
    if best:
        ax.scatter(*zip(*best, strict=True), marker="*", s=260, c="gold", edgecolors="black",
                   zorder=4, label="global minimum")
    if local:
        ax.scatter(*zip(*local, strict=True), marker="D", s=22 if len(local) < 10 else 10,
                   c="white", edgecolors="black", linewidths=0.6, zorder=4, label="local minimum")
    if landscape.is_saddle:
        ax.scatter([0], [0], marker="X", s=120, c="white", edgecolors="black", zorder=4,
                   label="saddle point")


def _mark_start(ax: Axes, runs: list[Trajectory]) -> None:
    starts = {tuple(run.points[0]) for run in runs}
    ax.scatter(*zip(*starts, strict=True), marker="o", s=90, c="white", edgecolors="black",
               linewidths=1.5, zorder=5, label="start")


def _finite(points: np.ndarray) -> np.ndarray:
    return points[np.isfinite(points).all(axis=1)]


def _title(ax: Axes, landscape: Landscape, runs: list[Trajectory]) -> None:
    steps = max((run.steps_run for run in runs), default=0)
    ax.set_title(f"{landscape.name}: {landscape.formula}\n{landscape.description}, "
                 f"{steps} steps", fontsize=10)


def plot_trajectories(landscape: Landscape, trajectories: list[Trajectory], path: Path) -> Path:
    """Filled contours (log-spaced where the function spans decades) with each optimizer's
    path, the start and the minima marked, and a legend that says how each run went."""
    fig, ax = plt.subplots(figsize=(9, 6))
    _draw_landscape(ax, landscape)
    colors = optimizer_colors([run.label for run in trajectories])
    for run, color in zip(trajectories, colors, strict=True):
        points = _finite(run.points)
        every = max(1, len(points) // 40)
        ax.plot(points[:, 0], points[:, 1], "-o", color=color, lw=1.6, ms=2.5,
                markevery=every, label=f"{run.label} ({outcome(landscape, run)})", zorder=3)
        ax.scatter(*points[-1], s=40, color=color, edgecolors="black", zorder=6)
    _mark_start(ax, trajectories)
    _title(ax, landscape, trajectories)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return save(fig, path)


def animate_trajectories(landscape: Landscape, trajectories: list[Trajectory], path: Path,
                         frames: int = 60, fps: int = 12) -> Path:
    """An animated GIF of the runs moving together, at most ``frames`` frames (paths are
    subsampled evenly, the last frame shows every run's end, and stays a while).

    The contour background is drawn once and each frame only draws the paths on a copy of it
    (matplotlib blitting), which is what keeps a 60-frame GIF to about a second.
    """
    fig, ax = plt.subplots(figsize=(7.6, 4.4), dpi=72)
    fig.subplots_adjust(left=0.08, right=0.7, bottom=0.12, top=0.9)
    _draw_landscape(ax, landscape)
    _mark_start(ax, trajectories)
    colors = optimizer_colors([run.label for run in trajectories])
    paths = [_finite(run.points) for run in trajectories]
    lines = [ax.plot([], [], "-", color=c, lw=1.6, label=run.label, animated=True)[0]
             for run, c in zip(trajectories, colors, strict=True)]
    heads = [ax.plot([], [], "o", color=c, mec="black", ms=6, animated=True)[0]
             for c in colors]
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    title = ax.set_title(landscape.name, fontsize=10, animated=True)
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)
    longest = max(len(p) for p in paths) - 1
    stride = max(1, math.ceil(longest / max(1, frames - 1)))
    images = []
    for step in [*range(0, longest, stride), longest]:
        fig.canvas.restore_region(background)
        for points, line, head in zip(paths, lines, heads, strict=True):
            upto = points[: step + 1]
            line.set_data(upto[:, 0], upto[:, 1])
            head.set_data(upto[-1:, 0], upto[-1:, 1])
            ax.draw_artist(line)
            ax.draw_artist(head)
        title.set_text(f"{landscape.name}: step {step}")
        ax.draw_artist(title)
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB"))
    plt.close(fig)
    # One palette for all frames, from the last (it has every path's color): per-frame
    # palettes would make the background flicker.
    palette = images[-1].quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    frames_p = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    durations = [1000 // fps] * (len(frames_p) - 1) + [2000]
    gif = io.BytesIO()
    frames_p[0].save(gif, format="GIF", save_all=True, append_images=frames_p[1:],
                     duration=durations, loop=0, optimize=True)
    return write_bytes_atomic(path, gif.getvalue())


def report_figures(out_dir: Path, specs: list[OptimizerSpec] | None = None,
                   names: tuple[str, ...] = ("elongated-bowl", "saddle", "rosenbrock"),
                   ) -> list[tuple[str, Path]]:
    """(caption, PNG path) for each landscape in ``names``: the runs of ``specs`` (default:
    the seed optimizers at each landscape's learning rates) from its default start."""
    figures = []
    for name in names:
        landscape = get(name)
        runs = run_all(landscape, specs)  # run_trajectory fills in the landscape's lr
        png = plot_trajectories(landscape, runs, Path(out_dir) / f"landscape-{name}.png")
        figures.append((caption(landscape, runs), png))
    return figures


def caption(landscape: Landscape, runs: list[Trajectory]) -> str:
    """One paragraph: the landscape, the start, and each optimizer's steps to the minimum (or
    to escape the saddle), fastest first."""
    if not runs:
        return f"{landscape.name}: {landscape.description}."
    start = ", ".join(f"{v:g}" for v in runs[0].points[0])
    head = f"{landscape.name.capitalize()}: {landscape.description}; from ({start})."
    step = (lambda r: r.escaped_step) if landscape.is_saddle else (lambda r: r.reached_step)
    done = sorted((r for r in runs if step(r) is not None), key=step)
    missed = [r.label for r in runs if step(r) is None]
    tol = runs[0].tol
    goal = "Steps to escape" if landscape.is_saddle else f"Steps to within {tol:g} of a minimum"
    parts = [", ".join(f"{r.label} {step(r)}" for r in done)] if done else []
    if missed:
        parts.append(f"not within {max(r.steps_run for r in runs)} steps: {', '.join(missed)}")
    return f"{head} {goal}: {'; '.join(parts)}."
