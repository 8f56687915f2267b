"""The benchmark's report, written from the storage alone: ``report.html`` (self-contained,
like the compare report: inline CSS, images as data URIs), ``profile.png``,
``time-to-target.png``, ``curves.png``, ``results.csv`` (one line per mode, workload and
optimizer), ``trials.csv`` (every finished trial) and ``results.json`` (scores, profiles,
tables and findings)."""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

from descend.lab.benchmark import figures, scoring
from descend.lab.benchmark.config import MODES, BenchmarkConfig
from descend.lab.benchmark.findings import Finding, findings
from descend.lab.benchmark.results import MEASURES, Results, show_time
from descend.lab.files import strict_json, write_bytes_atomic, write_text_atomic
from descend.lab.report import _csv, environment
from descend.lab.report_html import _CSS, Figure, _figure

REPORT = "report.html"
PROFILE = "profile.png"


def write_report(folder: str | Path, results: Results, storage_url: str) -> Path:
    """Writes every file of the report into ``folder``; returns report.html's path."""
    folder = Path(folder)
    env = {**environment(), "storage": storage_url}
    found = findings(results)
    pictures = [
        Figure(PROFILE, "Performance profiles", "The fraction of workloads on which each "
               "optimizer reaches the target within a factor tau of the fastest (Dolan and "
               "More 2002), on steps to target; the legend gives the AlgoPerf benchmark score, "
               f"the area under the profile for tau in [1, {scoring.R_MAX:g}] normalized to 1.",
               figures.profile_png(results)),
        Figure("time-to-target.png", "Time to target", "Median steps to the validation target "
               "over the seeds, whiskers the interquartile range: bars external tuning, open "
               "circles the defaults, x never reached (median seed).",
               figures.times_png(results)),
        Figure("curves.png", "Learning curves", "Validation metric of the chosen run (seed 0) "
               "per optimizer: solid the tuned trial, dashed the defaults; dotted the target.",
               figures.curves_png(results)),
    ]
    for picture in pictures:
        write_bytes_atomic(folder / picture.name, picture.png)
    write_text_atomic(folder / "results.csv", _csv(result_rows(results)))
    write_text_atomic(folder / "trials.csv", _csv(results.trials))
    write_text_atomic(folder / "results.json", json.dumps(
        strict_json(summary_json(results, found, env)), indent=1))
    return write_text_atomic(folder / REPORT, render(results, found, pictures, env))


def result_rows(results: Results) -> list[dict[str, Any]]:
    rows = []
    for (mode, w, o), cell in results.cells.items():
        row: dict[str, Any] = {"mode": mode, "workload": w, "optimizer": o,
                               "hyperparameters": cell.hyperparameters,
                               "seeds": len(cell.runs), "reached": cell.reached}
        for measure in MEASURES:
            q1, q3 = cell.iqr(measure)
            row.update({f"median_{measure}": cell.median(measure), f"q1_{measure}": q1,
                        f"q3_{measure}": q3})
        rows.append(row)
    return rows


def summary_json(results: Results, found: list[Finding], env: dict[str, Any]) -> dict[str, Any]:
    taus = [float(t) for t in figures.TAUS[::10]]
    return {
        "config": results.config.to_json(), "environment": env,
        "scores": {m: results.scores(m) for m in MEASURES},
        "tables": {m: {mode: results.table(mode, m) for mode in MODES} for m in MEASURES},
        "profiles": {"taus": taus, **{mode: scoring.profile(results.table(mode), taus)
                                      for mode in MODES}},
        "findings": [{"claim": f.claim, "evidence": f.evidence} for f in found],
        "missing": results.missing,
    }


def summary_text(results: Results, found: list[Finding] | None = None) -> str:
    """The findings and scores as plain text (printed at the end of a run)."""
    found = findings(results) if found is None else found
    scores = results.scores()
    lines = ["benchmark scores (steps to target; 1 = fastest on every workload):"]
    lines += [f"  {o:<16} external {scores['external'][o]:.2f}   self {scores['self'][o]:.2f}"
              for o in results.config.optimizers]
    lines += ["findings:"] + [f"  - {f.claim} ({f.evidence})" for f in found]
    return "\n".join(lines)


def render(results: Results, found: list[Finding], pictures: list[Figure],
           env: dict[str, Any]) -> str:
    config = results.config
    sections = [
        _header(config, env),
        _missing(results.missing),
        "<h2>Findings</h2><ul>" + "".join(
            f"<li><strong>{escape(f.claim)}</strong> {escape(f.evidence)}</li>" for f in found)
        + "</ul>",
        "<h2>Scores</h2>", _scores_table(results),
        _figure(pictures[0], title=False),
        "<h2>Time to target</h2>", *(_times_table(results, mode) for mode in MODES),
        _figure(pictures[1], title=False),
        "<h2>Learning curves</h2>", _figure(pictures[2], title=False),
        _method(config, env),
    ]
    body = "\n".join(s for s in sections if s)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>descend benchmark</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<main>\n{body}\n<footer>Written by descend {escape(str(env.get('descend')))} on "
            f"{escape(str(env.get('generated')))}. Numbers: results.csv, trials.csv, "
            "results.json. Re-render from the storage alone with <code>descend benchmark "
            "--report-only --out DIR</code>.</footer>\n</main>\n</body>\n</html>\n")


def _header(config: BenchmarkConfig, env: dict[str, Any]) -> str:
    chips = [f"{len(config.workloads)} workload(s)", f"{len(config.optimizers)} optimizer(s)",
             f"{config.trials} trial(s) per optimizer and workload", f"{config.seeds} seed(s)",
             "quick mode" if config.quick else "default budget",
             f"torch {env.get('torch')} on {env.get('cpus')} CPU(s)"]
    return ("<header><h1>descend benchmark</h1><p class=\"sub\">Which optimizer reaches a "
            "fixed validation target fastest, over several workloads, with a fair tuning "
            "budget (AlgoPerf's protocol at CPU scale)?</p><div class=\"chips\">"
            + "".join(f'<span class="chip">{escape(c)}</span>' for c in chips)
            + "</div></header>")


def _missing(missing: list[str]) -> str:
    if not missing:
        return ""
    return ('<p class="note">Incomplete: ' + escape("; ".join(missing)) + ". Continue with "
            "<code>descend benchmark --resume</code>.</p>")


def _scores_table(results: Results) -> str:
    scores = {m: results.scores(m) for m in MEASURES}
    head = "".join(f"<th>{escape(MODES[mode])}, {m}</th>" for mode in MODES for m in MEASURES)
    best = {(mode, m): max(scores[m][mode].values(), default=0) for mode in MODES
            for m in MEASURES}
    rows = "".join(
        f"<tr><td>{escape(o)}</td>" + "".join(
            f'<td class="{"best" if scores[m][mode][o] == best[mode, m] else ""}">'
            f"{scores[m][mode][o]:.3f}</td>" for mode in MODES for m in MEASURES) + "</tr>"
        for o in results.config.optimizers)
    return (f'<div class="scroll"><table><tr><th>optimizer</th>{head}</tr>{rows}</table></div>'
            "<p class=\"sub\">AlgoPerf benchmark score: the area under the performance profile "
            f"for tau in [1, {scoring.R_MAX:g}], normalized; on steps and on seconds to target "
            "(seconds include other work on the machine).</p>")


def _times_table(results: Results, mode: str) -> str:
    optimizers = results.config.optimizers
    head = "".join(f"<th>{escape(o)}</th>" for o in optimizers)
    rows = []
    for w in results.config.workloads:
        cells = [results.cell(mode, w, o) for o in optimizers]
        medians = [c.median("steps") if c else math.inf for c in cells]
        fastest = min(medians, default=math.inf)
        tds = "".join(_time_cell(c, m == fastest and math.isfinite(m), results.config.seeds)
                      for c, m in zip(cells, medians, strict=True))
        rows.append(f"<tr><td>{escape(w)}<br><span class=\"warn\">"
                    f"{escape(results.config.workload(w).show_target())}</span></td>{tds}</tr>")
    return (f"<h3>{escape(MODES[mode])}</h3><div class=\"scroll\"><table><tr><th>workload"
            f"</th>{head}</tr>{''.join(rows)}</table></div>")


def _time_cell(cell, best: bool, seeds: int) -> str:
    if cell is None:
        return '<td class="bad">missing</td>'
    q1, q3 = cell.iqr("steps")
    median = cell.median("steps")
    steps = (f"{show_time(median, 'steps')} steps" if math.isfinite(median) else "never")
    text = (f"{steps}<br>[{show_time(q1, 'steps')}, {show_time(q3, 'steps')}]<br>"
            f"{show_time(cell.median('seconds'), 'seconds')}"
            f"<br><span class=\"warn\">{cell.reached}/{len(cell.runs)} reached</span>")
    if len(cell.runs) < seeds:
        text += f'<br><span class="warn">{len(cell.runs)} of {seeds} seeds</span>'
    css = "best" if best else ("bad" if not math.isfinite(median) else "")
    return (f'<td class="{css}" title="{escape(cell.hyperparameters)}">{text}'
            f"<br><code>{_short(cell.hyperparameters)}</code></td>")


def _short(label: str) -> str:
    """A spec label's hyperparameters one per line, numbers to 3 digits (the full label is the
    cell's tooltip and in results.csv)."""
    items = [item.partition("=") for item in label.partition(":")[2].split(",") if item]
    if not items:
        return "defaults"
    return "<br>".join(escape(f"{key}={_digits(value)}") for key, _, value in items)


def _digits(value: str) -> str:
    parts = value.split("/")
    try:
        return "/".join(f"{float(p):.3g}" for p in parts)
    except ValueError:
        return value


def _method(config: BenchmarkConfig, env: dict[str, Any]) -> str:
    workloads = "".join(
        f"<tr><td>{escape(w.name)}</td><td>{escape(w.task)}</td>"
        f"<td>{escape(w.show_target())}</td><td>{w.epochs} epochs of batch {w.batch_size}, "
        f"at most {w.max_seconds:g} s</td><td class=\"notes\">{escape(w.why)}</td></tr>"
        for w in map(config.workload, config.workloads))
    spaces = "".join(f"<li><code>{escape(o)}</code>: "
                     f"{escape(', '.join(p.show() for p in config.spaces[o]))}</li>"
                     for o in config.optimizers)
    env_rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>"
                       for k, v in env.items())
    return (
        "<h2>How these numbers were made</h2>"
        f"<p><strong>External tuning</strong>: for each optimizer and workload, {config.trials} "
        "trials drawn quasi-randomly (a scrambled Halton sequence) from the optimizer's search "
        "space below, at seed 0. Each records its time to the validation target in steps and "
        "in seconds of training (evaluation excluded): the first evaluation at or past the "
        "target. The trial with the fewest steps to target is chosen (then fewer seconds, "
        f"then the closest to the target), and run with seeds 1 to {config.seeds - 1}; the "
        "median over the seeds is its time. <strong>Self-tuning</strong>: the registry's "
        f"defaults, seeds 0 to {config.seeds - 1}. A run that never reaches the target within "
        "its budget, or diverges, counts as infinitely slow (AlgoPerf's rule). Performance "
        "profiles and scores follow AlgoPerf (Dahl et al. 2023) and Dolan and More (2002); "
        "the workloads follow DeepOBS (Schneider et al. 2019) and the question of Schmidt et "
        "al. (2021). Trials are scheduled by Optuna on the storage below: several workers, on "
        "this machine or others, share it.</p>"
        "<h3>Workloads</h3><table><tr><th>workload</th><th>task</th><th>target</th>"
        f"<th>budget</th><th class=\"notes\">why</th></tr>{workloads}</table>"
        f"<h3>Search spaces</h3><ul>{spaces}</ul>"
        '<h3>Machine</h3><table style="width:auto">' + env_rows + "</table>"
        "<details><summary>Configuration</summary><pre>"
        + escape(json.dumps(config.to_json(), indent=1)) + "</pre></details>")
