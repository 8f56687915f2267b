"""Run optimizers on a 2-D test function and draw their paths (descend landscape NAME).

Writes NAME.png (and NAME.gif with --gif) with every optimizer's trajectory on the contour plot,
prints per optimizer the steps to reach a minimum within --tol, which minimum it ended in,
whether it escaped the saddle, its final loss and whether it diverged, and writes the numbers
to NAME.json. Optimizers default to the seed list at per-landscape learning rates; give your own
as registry specs, e.g. --optimizers sgd adam:lr=0.05. `descend landscape --list` lists names.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from descend.cli import UserError
from descend.lab import landscapes
from descend.lab.files import check_writable, strict_json, write_text_atomic
from descend.lab.landscapes import DEFAULT_TOL, LANDSCAPES, Landscape, Trajectory
from descend.lab.spec import parse_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="landscape, e.g. rosenbrock (see --list)")
    parser.add_argument("--list", action="store_true", help="list the landscapes and exit")
    parser.add_argument("--optimizers", nargs="+", metavar="SPEC",
                        help="registry specs, e.g. sgd momentum adam:lr=0.05 (default: the "
                        "seed optimizers at this landscape's learning rates)")
    parser.add_argument("--steps", type=int, help="steps per optimizer (default: per landscape)")
    parser.add_argument("--tol", type=float, default=DEFAULT_TOL,
                        help="a minimum is reached within this distance in (x, y) "
                        f"(default {DEFAULT_TOL})")
    parser.add_argument("--start", metavar="X,Y", help="start point (default: per landscape); "
                        "write --start=-2,2 when X is negative")
    parser.add_argument("--gif", action="store_true", help="also write an animated GIF")
    parser.add_argument("--out", type=Path, default=Path("descend-landscapes"),
                        help="output folder (default ./descend-landscapes)")


def run(args: argparse.Namespace) -> int:
    if args.list:
        for landscape in LANDSCAPES.values():
            print(f"{landscape.name:<16} start {_point(landscape.start):<12} "
                  f"{landscape.description}")
        return 0
    if not args.name:
        raise UserError("name a landscape (descend landscape rosenbrock) or use --list")
    landscape = landscapes.get(args.name)
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be a positive integer, got {args.steps}")
    if not args.tol > 0:
        raise UserError(f"--tol must be a positive distance, got {args.tol}; e.g. --tol 0.01")
    specs = [parse_spec(text) for text in args.optimizers] if args.optimizers else None
    start = _parse_start(args.start) if args.start else None
    out = check_writable(args.out)

    from descend.lab.landscape_plots import animate_trajectories, plot_trajectories

    runs = landscapes.run_all(landscape, specs, args.steps, args.tol, start)
    print(_table(landscape, runs))
    written = [plot_trajectories(landscape, runs, out / f"{landscape.name}.png")]
    if args.gif:
        written.append(animate_trajectories(landscape, runs, out / f"{landscape.name}.gif"))
    written.append(_write_json(landscape, runs, args, out / f"{landscape.name}.json"))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _point(p: tuple[float, float]) -> str:
    return f"({p[0]:g}, {p[1]:g})"


def _parse_start(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        x, y = (float(part) for part in parts)
    except ValueError:
        raise UserError(f"--start takes two numbers X,Y, e.g. --start=-2,2; got {text!r}") from None
    return x, y


def _table(landscape: Landscape, runs: list[Trajectory]) -> str:
    header = ["optimizer", "steps to min", "ended in", "escaped", "final loss", "diverged"]
    if landscape.is_saddle:
        header[1] = "steps to escape"
    rows = [header]
    for run in runs:
        if landscape.is_saddle:
            steps = str(run.escaped_step) if run.escaped else "not escaped"
        else:
            steps = str(run.reached_step) if run.reached_step is not None else "not reached"
        rows.append([
            run.label, steps, landscape.describe_minimum(run.ended_in),
            {True: "yes", False: "no", None: "-"}[run.escaped], f"{run.final_loss:.4g}",
            "yes" if run.diverged else "no",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    title = (f"{landscape.name} from {_point(tuple(runs[0].points[0]))}, "
             f"tol {runs[0].tol:g}" if runs else landscape.name)
    return title + "\n" + "\n".join(lines)


def _write_json(landscape: Landscape, runs: list[Trajectory], args: argparse.Namespace,
                path: Path) -> Path:
    data = {
        "landscape": landscape.name,
        "formula": landscape.formula,
        "start": [float(v) for v in runs[0].points[0]] if runs else list(landscape.start),
        "tol": args.tol,
        "minima": [list(m) for m in landscape.minima],
        "runs": [{**run.summary(landscape), "path": run.points.tolist(),
                  "losses": run.losses.tolist()} for run in runs],
    }
    text = json.dumps(strict_json(data, significant=10), separators=(",", ":"))
    return write_text_atomic(path, text)


