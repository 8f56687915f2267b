"""The compare report as one self-contained HTML page: CSS inline, every image a base64 data
URI, no script and no external resource, so the file can be mailed or archived as is."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from descend.lab.summary import Row
from descend.lab.sweep import CompareConfig, OptimizerResult


@dataclass(frozen=True)
class Figure:
    """A PNG of the report: its file name in the output folder, title, caption and bytes."""

    name: str
    title: str
    caption: str
    png: bytes


_CSS = """
:root { --ink: #1f2328; --muted: #5b6470; --line: #d8dee4; --soft: #f4f6f8; --accent: #0b62c4; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.5;
  font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 56px; }
header { border-bottom: 3px solid var(--accent); padding-bottom: 14px; margin-bottom: 8px; }
h1 { font-size: 28px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; }
.sub { color: var(--muted); margin: 0; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 10px; }
.chip { background: var(--soft); border: 1px solid var(--line); border-radius: 999px;
  padding: 1px 10px; font-size: 13px; color: var(--muted); }
.note { background: #fff8e6; border: 1px solid #f0d48a; border-radius: 6px; padding: 8px 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; margin: 8px 0; }
th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: right;
  vertical-align: top; white-space: nowrap; }
th { background: var(--soft); font-weight: 600; white-space: normal; }
th:first-child, td:first-child, th.notes { text-align: left; }
td.best { font-weight: 700; color: var(--accent); }
td.chosen { font-weight: 700; background: #e8f1fc; }
td.bad { color: #b42318; }
td.notes { white-space: normal; text-align: left; min-width: 150px; color: var(--muted);
  font-size: 13px; }
.warn { color: #9a6700; font-size: 12px; }
.scroll { overflow-x: auto; }
figure { margin: 12px 0 24px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line);
  border-radius: 6px; background: #fff; }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 6px; }
.rules { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 14px; }
.rule { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.rule h3 { margin: 0 0 6px; }
.rule img { display: block; max-width: 100%; height: auto; margin: 8px 0; }
.rule p { margin: 4px 0; }
.rule .src { color: var(--muted); font-size: 13px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 13px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px;
  overflow-x: auto; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
"""


def render(*, config: CompareConfig, rows: Sequence[Row], results: Sequence[OptimizerResult],
           plots: Sequence[Figure], landscapes: Sequence[Figure], landscape_note: str,
           environment: dict[str, Any], accuracy: bool, missing: int) -> str:
    """The whole page."""
    from descend.lab import tasks

    task = tasks.get(config.task)
    sections = [
        _header(config, task.description, environment),
        _missing(missing) if missing > 0 else "",
        "<h2>Results</h2>", _results_table(rows, accuracy, config),
        *(_figure(f) for f in plots if f.name != "lr-sweep.png"),
        "<h2>Learning-rate sweep</h2>" if any(len(r.sweep) > 1 for r in results) else "",
        *(_figure(f, title=False) for f in plots if f.name == "lr-sweep.png"),
        _sweep_table(results, accuracy) if any(len(r.sweep) > 1 for r in results) else "",
        _landscapes(landscapes, landscape_note),
        _rules(config),
        _method(config, results, environment, accuracy),
    ]
    body = "\n".join(s for s in sections if s)
    title = escape(f"descend compare: {config.task}{_in_dtype(config)}")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n"
            f"<footer>Written by descend {escape(str(environment.get('descend')))} on "
            f"{escape(str(environment.get('generated')))}. Numbers: results.csv, runs.csv, "
            "results.json; runs: runs.sqlite. Re-render with <code>descend report DIR</code>."
            "</footer>\n</main>\n</body>\n</html>\n")


def _header(config: CompareConfig, description: str, env: dict[str, Any]) -> str:
    batches = ", ".join(str(b) for b in config.batch_sizes)
    chips = [f"{len(config.optimizers)} optimizer(s)", f"{config.seeds} seed(s)",
             f"{config.epochs} epoch(s)", f"batch size {batches}", _dtype_chip(config)]
    if config.dtype != "float32":
        chips.append(_rounding_chip(config))
    if config.target_accuracy is not None:
        chips.append(f"target accuracy {100 * config.target_accuracy:g} %")
    if config.max_train is not None:
        chips.append(f"first {config.max_train} training examples")
    if config.data_dir:
        chips.append(f"data from {config.data_dir}")
    chips.append(f"torch {env.get('torch')} on {env.get('cpus')} CPU(s)")
    return (f"<header><h1>Optimizers compared on {escape(config.task)}"
            f"{escape(_in_dtype(config))}</h1>"
            f'<p class="sub">{escape(description)}</p><div class="chips">'
            + "".join(f'<span class="chip">{escape(c)}</span>' for c in chips)
            + "</div></header>")


def _in_dtype(config: CompareConfig) -> str:
    """`` in bfloat16`` for a low-precision compare; nothing for float32."""
    return "" if config.dtype == "float32" else f" in {config.dtype}"


def _dtype_chip(config: CompareConfig) -> str:
    if config.dtype == "float32":
        return "float32 parameters"
    return f"{config.dtype} parameters and gradients, float32 step math"


def rounding(label: str) -> str:
    """How an optimizer's low-precision stores are rounded: ``stochastic`` or ``nearest``."""
    from descend.lab.spec import parse_spec

    on = parse_spec(label).hyperparameters.get("stochastic_rounding")
    return "stochastic" if on else "nearest"


def _rounding_chip(config: CompareConfig) -> str:
    kinds = [rounding(label) for label in config.optimizers]
    if len(set(kinds)) == 1:
        return ("stochastic rounding" if kinds[0] == "stochastic"
                else "rounded to nearest-even")
    return (f"stochastic rounding for {kinds.count('stochastic')} of {len(kinds)} optimizers, "
            "nearest-even for the others")


def _missing(missing: int) -> str:
    return (f'<p class="note">{missing} run(s) are missing: the compare was interrupted. '
            "Continue it with <code>descend compare --resume --out DIR</code>; finished runs "
            "are kept.</p>")


def _results_table(rows: Sequence[Row], accuracy: bool, config: CompareConfig) -> str:
    metric = "test accuracy" if accuracy else "test loss"
    target = config.target_accuracy
    reach = f"{100 * target:g} %" if (accuracy and target is not None) else None
    low_precision = config.dtype != "float32"
    head = ["optimizer", "batch"] + (["dtype", "rounding"] if low_precision else [])
    head += ["chosen lr", f"{metric} (mean ± std)", "final train loss"]
    if reach:
        head += [f"steps to {reach}", f"seconds to {reach}"]
    head += ["step time (ms)", "train s / run", "notes"]
    finished = [r.metric_mean for r in rows if r.seeds and not math.isnan(r.metric_mean)]
    best = (max(finished) if accuracy else min(finished)) if finished else None
    body = []
    for row in rows:
        cls = ' class="best"' if best is not None and row.metric_mean == best else ""
        cells = [f"<td>{escape(row.label)}</td>", f"<td>{escape(str(row.batch_size))}</td>"]
        if low_precision:
            cells += [f"<td>{escape(config.dtype)}</td>", f"<td>{rounding(row.label)}</td>"]
        cells += [f"<td>{row.lr_text}</td>", f"<td{cls}>{escape(row.metric_text)}</td>",
                 f"<td>{_num(row.train_loss_mean, '.4f')}</td>"]
        if reach:
            cells += [f"<td>{_reached(row, row.steps_to_target, '.0f')}</td>",
                      f"<td>{_reached(row, row.seconds_to_target, '.2f')}</td>"]
        cells += [f"<td>{row.step_ms_text}</td>", f"<td>{_num(row.run_seconds, '.2f')}</td>",
                  f'<td class="notes">{escape(_notes(row))}</td>']
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ('<div class="scroll"><table><thead><tr>' + "".join(
            f'<th class="notes">{h}</th>' if h == "notes" else f"<th>{escape(h)}</th>"
            for h in head) + "</tr></thead><tbody>" + "\n".join(body)
            + "</tbody></table></div>"
            '<p class="sub">Test metrics at the end of training over the seeds at the chosen '
            "rate; steps and seconds to the target are means over the seeds that reached it "
            "(measured at the evaluations, four per epoch); step time is the mean wall time "
            "of one <code>optimizer.step()</code>.</p>")


def _reached(row: Row, value: float, fmt: str) -> str:
    if row.target_reached == 0:
        return "not reached"
    text = format(value, fmt)
    return text if row.target_reached == row.seeds else f"{text} ({row.target_reached}/" \
        f"{row.seeds} seeds)"


def _notes(row: Row) -> str:
    notes = []
    if row.chosen_lr is None:
        notes.append("no usable lr: every run diverged or failed")
    elif row.chosen_at_edge:
        notes.append("best lr at the grid's edge: widen --lr-grid")
    if row.diverged_lrs:
        notes.append("diverged at lr " + ", ".join(f"{lr:g}" for lr in row.diverged_lrs))
    if row.failed_lrs:
        notes.append("failed at lr " + ", ".join(f"{lr:g}" for lr in row.failed_lrs))
    if row.diverged_seeds:
        notes.append(f"{row.diverged_seeds} seed(s) diverged")
    return "; ".join(notes)


def _num(value: float, fmt: str) -> str:
    return "—" if value is None or math.isnan(value) else format(value, fmt)


def _sweep_table(results: Sequence[OptimizerResult], accuracy: bool) -> str:
    lrs = sorted({lr for r in results for lr in r.sweep})
    key = "val_accuracy" if accuracy else "val_loss"
    body = []
    for result in results:
        cells = [f"<td>{escape(result.label)}</td>", f"<td>{escape(str(result.batch_size))}</td>"]
        for lr in lrs:
            run = result.sweep.get(lr, "absent")
            if run == "absent":
                cells.append("<td></td>")
            elif run is None:
                cells.append("<td>missing</td>")
            elif run.status != "finished":
                cells.append(f'<td class="bad">{run.status}</td>')
            else:
                value = run.final.get(key)
                text = _num(100 * value, ".2f") + " %" if accuracy else _num(value, ".4g")
                chosen = ' class="chosen"' if lr == result.chosen_lr else ""
                cells.append(f"<td{chosen}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    metric = "validation accuracy" if accuracy else "validation loss"
    return ('<div class="scroll"><table><thead><tr><th>optimizer</th><th>batch</th>'
            + "".join(f"<th>lr {lr:g}</th>" for lr in lrs) + "</tr></thead><tbody>"
            + "\n".join(body) + "</tbody></table></div>"
            f'<p class="sub">{metric.capitalize()} at the end of training, seed 0; shaded: '
            "the chosen rate.</p>")


def _landscapes(landscapes: Sequence[Figure], note: str) -> str:
    if not landscapes and not note:
        return ""
    intro = ("<p>The same optimizers on 2-D test functions, from the usual start points, each "
             "at the landscape's own learning rate (a rate tuned for the task means nothing "
             "here): the pictures the seed articles draw, computed.</p>")
    if not landscapes:
        return f'<h2>Landscapes</h2><p class="note">{escape(note)}</p>'
    return ("<h2>Landscapes</h2>" + intro
            + "".join(_figure(f, title=False, caption=f.title) for f in landscapes))


def _rules(config: CompareConfig) -> str:
    """Each compared optimizer's update rule from the registry, typeset, with its intuition."""
    from descend.lab import figures
    from descend.lab.spec import parse_spec

    cards = []
    for name in dict.fromkeys(parse_spec(label).name for label in config.optimizers):
        entry = parse_spec(name).entry
        try:
            formula = _img(figures.rule(entry.latex), entry.latex, scale=0.7)
        except Exception:  # mathtext cannot typeset it: show the LaTeX source instead
            formula = f"<pre><code>{escape(entry.latex)}</code></pre>"
        defaults = ", ".join(f"{k}={_show(v)}" for k, v in entry.defaults().items())
        cards.append(f'<div class="rule"><h3>{escape(name)}</h3>{formula}'
                     f"<p>{escape(entry.intuition)}</p>"
                     f'<p class="src">Defaults: <code>{escape(defaults)}</code></p>'
                     f'<p class="src">{escape(entry.source)}</p></div>')
    return ("<h2>Update rules</h2><p>As registered in <code>descend.REGISTRY</code>; "
            "g<sub>t</sub> is the gradient at step t and η the learning rate.</p>"
            f'<div class="rules">{"".join(cards)}</div>')


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _figure(figure: Figure, title: bool = True, caption: str | None = None) -> str:
    heading = f"<h3>{escape(figure.title)}</h3>" if title and figure.title else ""
    caption = figure.caption if caption is None else caption
    return (f"{heading}<figure>{_img(figure.png, figure.title or figure.name)}"
            + (f"<figcaption>{escape(caption)}</figcaption>" if caption else "")
            + "</figure>")


def _img(png: bytes, alt: str, scale: float = 1.0) -> str:
    width, height = png_size(png)
    data = base64.b64encode(png).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}" '
            f'width="{round(width * scale)}" height="{round(height * scale)}">')


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG header (IHDR is always the first chunk)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG image")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _method(config: CompareConfig, results: Sequence[OptimizerResult], env: dict[str, Any],
            accuracy: bool) -> str:
    metric = "accuracy" if accuracy else "loss"
    grids = "".join(f"<li><code>{escape(r.label)}</code>"
                    + (f" (batch {escape(str(r.batch_size))})" if len(config.batch_sizes) > 1
                       else "")
                    + f": {', '.join(f'{lr:g}' for lr in r.sweep)}</li>" for r in results)
    widen = (f" When the best rate lies on the edge of the grid, the sweep goes one grid step "
             f"further out, up to {config.widen} time(s)." if config.widen else "")
    origin = " centred on the LR range test's suggestion (Smith 2017)" if config.lr_find else ""
    env_rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>"
                       for k, v in env.items())
    precision = "" if config.dtype == "float32" else (
        f" The models are trained in {config.dtype}: their parameters, and so their gradients, "
        f"are stored in {config.dtype} and the inputs cast to it; the loss is computed on the "
        "outputs cast to float32. Each optimizer step does its math in float32 and rounds the "
        f"result into {config.dtype}, to nearest-even, or, where a spec sets "
        "<code>stochastic_rounding=true</code>, stochastically (up with the probability of the "
        "fraction of an ulp, so E[round(x)] = x: updates smaller than half an ulp count on "
        "average instead of being lost).")
    return (
        "<h2>How these numbers were made</h2>"
        f"<p>For each optimizer and batch size, seed 0 is trained at every learning rate of "
        f"its grid{origin}; the rate with the best validation {metric} at the end of training "
        f"is chosen, then trained with seeds 0 to {config.seeds - 1}.{widen} Results are "
        "reported on "
        "the test split, which never takes part in the choice (the protocol of DeepOBS, "
        "Schneider et al. 2019). A run whose loss turns non-finite or grows a thousandfold "
        "is stopped and recorded as diverged; a diverged rate is never chosen. Seeds vary "
        "the initialization and the order of the mini-batches. Seconds are wall-clock time on "
        "the machine below: other work running on it at the same time inflates them."
        f"{precision}</p>"
        f"<h3>Learning rates tried</h3><ul>{grids}</ul>"
        '<h3>Machine</h3><table style="width:auto">' + env_rows + "</table>"
        "<details><summary>Configuration (as stored in runs.sqlite)</summary><pre>"
        + escape(json.dumps(config.to_json(), indent=1)) + "</pre></details>")
