"""Re-render the report of a compare from its output folder's run store alone.

Reads DIR/runs.sqlite (written by descend compare) and writes DIR/report.html (one
self-contained file: images embedded, CSS inline, no external resources) plus the figures as
PNG and the numbers as CSV and JSON. Runs that are missing (an interrupted compare) are left
out; continue the compare with descend compare --resume --out DIR.

example:
  descend report descend-report
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import time
from pathlib import Path
from typing import Any

from descend.cli import UserError
from descend.lab.files import (
    check_writable,
    strict_json,
    write_bytes_atomic,
    write_text_atomic,
)
from descend.lab.report_html import Figure, render
from descend.lab.spec import OptimizerSpec, parse_spec
from descend.lab.store import FILENAME, RunRecord, RunStore
from descend.lab.summary import Row, summarize
from descend.lab.sweep import CompareConfig, OptimizerResult, collect

REPORT = "report.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="the output folder of a descend compare")
    parser.add_argument("--no-landscapes", action="store_true",
                        help="leave the landscape trajectory pictures out")


def run(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not (folder / FILENAME).is_file():
        raise UserError(f"{folder} has no {FILENAME}; run descend compare --out {folder} first")
    check_writable(folder)
    with RunStore.in_folder(folder) as store:
        stored = store.config()
        if stored is None:
            raise UserError(f"{folder / FILENAME} holds no compare; run descend compare "
                            f"--out {folder} --resume")
        config = CompareConfig.from_json(stored)
        html, summary = write_report(folder, config, store, landscapes=not args.no_landscapes)
        print(summary)
    print(f"report: {html}")
    return 0


def write_report(folder: str | Path, config: CompareConfig, store: RunStore,
                 landscapes: bool = True) -> tuple[Path, str]:
    """Writes report.html, the PNGs, results.csv, runs.csv and results.json into ``folder``
    (each file atomically); returns the HTML's path and the results table as text."""
    from descend.lab import figures
    from descend.lab import tasks as task_registry

    folder = Path(folder)
    accuracy = task_registry.get(config.task).classification
    results = collect(config, store)
    rows = summarize(results, config.target_accuracy, accuracy)
    colours = {label: figures.colour(i) for i, label in enumerate(config.optimizers)}
    main_batch = config.batch_sizes[0]

    plots: list[Figure] = []

    def add(name: str, title: str, caption: str, png: bytes) -> None:
        write_bytes_atomic(folder / name, png)
        plots.append(Figure(name, title, caption, png))

    for batch_size in config.batch_sizes:
        cell = [r for r in results if r.batch_size == batch_size and r.seeds]
        if not cell:
            continue
        suffix = "" if batch_size == main_batch else f"-batch-{batch_size}"
        precision = "" if config.dtype == "float32" else f", {config.dtype}"
        add(f"learning-curves{suffix}.png",
            f"Learning curves, {figures.batch_label(batch_size)}{precision}",
            f"Each optimizer at its chosen learning rate: mean over {config.seeds} seed(s); "
            "the band spans the best and worst seed. Seconds count training only "
            "(forward, backward, step), not evaluation.",
            figures.learning_curves(cell, colours, accuracy))
    swept = [r for r in results if len(r.sweep) > 1 and r.batch_size == main_batch]
    if swept:
        add("lr-sweep.png", "Learning-rate sweep",
            "Seed 0 at every rate of the grid; the rate with the best validation metric at the "
            "end of training is chosen (the test split is never used to choose).",
            figures.lr_sweep(swept, colours, accuracy))
    if len(config.batch_sizes) > 1:
        add("gd-variants.png", "Gradient-descent variants: batch, stochastic, mini-batch",
            "The same optimizer with the whole training split per step (batch), one example "
            "per step (stochastic) and mini-batches, each at its own best learning rate; "
            "against epochs (equal data seen) and against seconds (equal compute time).",
            figures.gd_variants([r for r in results if r.seeds], accuracy))
    landscape_figures, landscape_note = _landscapes(folder, config) if landscapes else ([], "")

    runs, env = store.runs(), environment()
    write_text_atomic(folder / "results.csv", _csv([row.as_dict() for row in rows]))
    write_text_atomic(folder / "runs.csv", _csv(_run_points(runs)))
    write_text_atomic(folder / "results.json", json.dumps(strict_json({
        "config": config.to_json(), "environment": env,
        "results": [row.as_dict() for row in rows],
        "sweeps": [_sweep_json(r) for r in results],
        "runs": [{"id": r.id, "config": r.config, "status": r.status, "metrics": r.metrics,
                  "timings": r.timings, "error": r.error} for r in runs],
    }), indent=1))
    html = render(config=config, rows=rows, results=results, plots=plots,
                  landscapes=landscape_figures, landscape_note=landscape_note,
                  environment=env, accuracy=accuracy, missing=_missing(results, config.seeds))
    return write_text_atomic(folder / REPORT, html), summary_text(rows, accuracy)


def _missing(results: list[OptimizerResult], seeds: int) -> int:
    """Runs an interrupted compare still owes: sweep runs not there, seeds not trained."""
    return sum(sum(run is None for run in r.sweep.values()) +
               (seeds - len(r.seeds) if r.chosen_lr is not None else 0) for r in results)


def _landscapes(folder: Path, config: CompareConfig) -> tuple[list[Figure], str]:
    """The landscape pictures, or none and a note saying why (the report never fails on them)."""
    try:
        from descend.lab.landscapes import report_figures

        target = folder / "landscapes"
        target.mkdir(exist_ok=True)
        pictures = report_figures(target, specs=_without_lr(config.optimizers))
        return [Figure(str(Path(path).relative_to(folder)), caption, "",
                       Path(path).read_bytes()) for caption, path in pictures], ""
    except Exception as e:  # a missing or broken plotting module must not lose the report
        return [], f"Landscape pictures are unavailable here ({type(e).__name__}: {e})."


def _without_lr(labels: tuple[str, ...]) -> list[OptimizerSpec]:
    """The compared optimizers without their learning rates: a rate tuned for the task means
    nothing on a 2-D function, so each landscape's own rate is used."""
    specs = [parse_spec(label).without_lr() for label in labels]
    return list({s.label: s for s in specs}.values())


def summary_text(rows: list[Row], accuracy: bool) -> str:
    """The results table as plain text, for the terminal."""
    metric = "test acc" if accuracy else "test loss"
    width = max([22, *(len(row.label) for row in rows)])
    lines = [f"{'optimizer':<{width}} {'batch':>6} {'lr':>8} {metric:>16} {'step ms':>8}"]
    for row in rows:
        lines.append(f"{row.label:<{width}} {str(row.batch_size):>6} {row.lr_text:>8} "
                     f"{row.metric_text:>16} {row.step_ms_text:>8}")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """Where the timings were taken: they only compare within one report."""
    import os

    import torch

    import descend

    return {"descend": getattr(descend, "__version__", "?"), "torch": torch.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "generated": time.strftime("%Y-%m-%d %H:%M:%S")}


def _sweep_json(result: OptimizerResult) -> dict[str, Any]:
    return {"optimizer": result.label, "batch_size": result.batch_size,
            "chosen_lr": result.chosen_lr,
            "lrs": {f"{lr:g}": None if run is None else {
                "status": run.status, "final": run.final} for lr, run in result.sweep.items()}}


def _run_points(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """runs.csv: one line per evaluation of every run."""
    lines = []
    for run in runs:
        head = {"run_id": run.id, "task": run.config["task"],
                "optimizer": run.config["optimizer"], "lr": run.config["lr"],
                "seed": run.config["seed"], "batch_size": run.config["batch_size"],
                "dtype": run.config.get("dtype", "float32"), "status": run.status}
        lines.extend({**head, **point} for point in run.metrics or [{}])
    return lines


def _csv(records: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in records for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(strict_json(records))
    return buffer.getvalue()



__all__ = ["Row", "write_report", "summary_text", "run", "add_arguments"]
