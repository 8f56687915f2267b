"""``descend benchmark --quick`` end to end on real data and real models: it finishes within
its five minutes, every planned trial is done once, the scores and tables agree with the
trials, the report is rebuilt from the storage alone, and it reads right in headless
chromium."""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from pathlib import Path

import pytest
from browser import browse, close, images, ink_and_colour

from descend.cli import main
from descend.lab.benchmark import scoring

QUICK_LIMIT_SECONDS = 300


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("benchmark")
    start = time.monotonic()
    assert main(["benchmark", "--quick", "--out", str(out)]) == 0
    return out, time.monotonic() - start


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_quick_mode_finishes_within_five_minutes(quick):
    _, seconds = quick
    assert seconds < QUICK_LIMIT_SECONDS


def test_every_planned_trial_is_done_exactly_once(quick):
    out, _ = quick
    summary = json.loads((out / "results.json").read_text())
    config = summary["config"]
    trials = read(out / "trials.csv")
    keys = [(t["workload"], t["optimizer"], t["phase"], t["index"]) for t in trials]
    assert len(keys) == len(set(keys))
    per = config["trials"] + config["seeds"] + config["seeds"] - 1
    assert len(trials) == len(config["workloads"]) * len(config["optimizers"]) * per
    assert summary["missing"] == []
    assert {t["workload"] for t in trials} == {"mnist-mlp", "mnist1d", "quadratic"}


def test_results_follow_from_the_trials(quick):
    """The chosen trial is the search trial fewest steps to target; external tuning's median
    is over it and its seeds; self-tuning's over the defaults; the JSON's profile and scores
    are the scoring of results.csv's medians."""
    out, _ = quick
    trials, results = read(out / "trials.csv"), read(out / "results.csv")
    summary = json.loads((out / "results.json").read_text())
    seeds = summary["config"]["seeds"]
    table: dict[str, dict[str, dict[str, float]]] = {"external": {}, "self": {}}
    for row in results:
        w, o, mode = row["workload"], row["optimizer"], row["mode"]
        mine = [t for t in trials if (t["workload"], t["optimizer"]) == (w, o)]
        if mode == "self":
            runs = [t for t in mine if t["phase"] == "default"]
        else:
            search = [t for t in mine if t["phase"] == "search"]
            best = min(float(t["steps_to_target"] or math.inf) for t in search)
            chosen = [t for t in search if float(t["steps_to_target"] or math.inf) == best]
            assert row["hyperparameters"] in {t["hyperparameters"] for t in chosen}
            runs = [chosen[0]] + [t for t in mine if t["phase"] == "tuned"]
            assert all(t["hyperparameters"] == row["hyperparameters"] for t in runs[1:])
        steps = [float(t["steps_to_target"] or math.inf) for t in runs]
        assert len(steps) == seeds == int(row["seeds"])
        expected = scoring.median_iqr(steps)[0]
        got = float(row["median_steps"] or math.inf)
        assert got == expected
        table[mode].setdefault(w, {})[o] = got
    for mode, times in table.items():
        assert summary["scores"]["steps"][mode] == pytest.approx(scoring.benchmark_score(times))
        expected = scoring.profile(times, summary["profiles"]["taus"])
        for optimizer, rho in summary["profiles"][mode].items():
            assert rho == pytest.approx(expected[optimizer])
    assert summary["findings"] and all(f["claim"] and f["evidence"] for f in summary["findings"])


def test_report_is_rebuilt_from_the_storage_alone(quick, tmp_path, capsys):
    out, _ = quick
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(out / "benchmark.sqlite", copy)
    assert main(["benchmark", "--report-only", "--out", str(copy)]) == 0
    assert "findings:" in capsys.readouterr().out
    for name in ("results.csv", "trials.csv"):
        assert read(copy / name) == read(out / name)
    a, b = (json.loads((d / "results.json").read_text()) for d in (out, copy))
    assert a["findings"] == b["findings"] and a["scores"] == b["scores"]
    for name in ("report.html", "profile.png", "time-to-target.png", "curves.png"):
        assert (copy / name).stat().st_size > 1000


def test_report_in_headless_chromium(quick):
    out, _ = quick
    page, errors, outside, shot, closers = browse(out / "report.html")
    try:
        assert errors == [] and outside == []
        shown = images(page)
        assert len(shown) == 3
        assert [i["alt"] for i in shown if not i["complete"] or i["natural"] == 0] == []
        for plot in shown:
            assert plot["width"] > 800 and plot["height"] > 200, plot
            ink, colour = ink_and_colour(shot, plot)
            assert ink > 0.01 and colour > 0.002, (plot["alt"], ink, colour)
        text = page.inner_text("body")
        for heading in ("Findings", "Scores", "Time to target", "Learning curves",
                        "How these numbers were made", "external tuning",
                        "self-tuning (defaults)"):
            assert heading in text
        assert "dominates" in text and "favours" in text and "Tuning" in text
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    finally:
        close(page, closers)
