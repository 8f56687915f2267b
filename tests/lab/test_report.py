"""The report: ``descend report DIR`` re-renders it from the store alone, and it looks right in a
real browser (Debian's chromium driven by Playwright): no console error, no broken image, the
plots visible on the screenshot, nothing fetched from outside the file."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from browser import browse, close, images, ink_and_colour

from descend.cli import main


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """A tiny compare of sgd and adam, landscapes included, with one diverged rate."""
    out = tmp_path_factory.mktemp("report")
    assert main(["compare", "--out", str(out), "--max-train", "500", "--epochs", "1",
                 "--optimizers", "sgd", "adam", "--lr-grid", "0.01", "0.1", "100",
                 "--seeds", "2"]) == 0
    return out


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_report_re_renders_from_the_store_alone(report_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(report_dir / "runs.sqlite", copy)  # the store and nothing else
    assert main(["report", str(copy), "--no-landscapes"]) == 0
    printed = capsys.readouterr().out
    assert "sgd" in printed and "adam" in printed and "report.html" in printed
    assert read(copy / "results.csv") == read(report_dir / "results.csv")
    assert read(copy / "runs.csv") == read(report_dir / "runs.csv")
    html = (copy / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # curves, sweep, two update rules


def test_report_in_headless_chromium(report_dir):
    page, errors, outside, shot, closers = browse(report_dir / "report.html")
    try:
        assert errors == []
        assert outside == []
        shown = images(page)
        assert len(shown) >= 6  # curves, sweep, 3 landscapes, 2 rules
        broken = [i["alt"] for i in shown if not i["complete"] or i["natural"] == 0]
        assert broken == []
        for title in ("Learning curves", "Learning-rate sweep"):
            (plot,) = [i for i in shown if i["alt"].startswith(title)]
            assert plot["width"] > 800 and plot["height"] > 250, plot  # big enough to read
            ink, colour = ink_and_colour(shot, plot)
            assert ink > 0.01, f"{title}: the plot region is nearly blank ({ink:.3f} ink)"
            assert colour > 0.002, f"{title}: no coloured curves ({colour:.4f})"
        text = page.inner_text("body")
        assert "Optimizers compared on mnist" in text
        assert "diverged" in text  # lr 100 diverges, and the table and sweep say so
        assert "Landscapes" in text and "unavailable" not in text
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # no overflow
    finally:
        close(page, closers)
