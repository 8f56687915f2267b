"""`descend landscape` end to end, on tiny settings, through the real command-line entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from descend.cli import main
from descend.lab.landscapes import LANDSCAPES, report_figures


def _image(path):
    with Image.open(path) as im:
        im.load()
        return im.size, getattr(im, "n_frames", 1), np.asarray(im.convert("RGB"))


def test_landscape_writes_table_picture_animation_and_numbers(tmp_path, capsys):
    rc = main(["landscape", "bowl", "--optimizers", "sgd:lr=0.1", "momentum", "adam:lr=0.3",
               "--steps", "40", "--gif", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    # By hand: sgd's distance 5 * 0.8^k first drops below 0.01 at k = 28.
    row = next(line for line in out.splitlines() if line.startswith("sgd:lr=0.1"))
    assert row.split()[1:3] == ["28", "global"]
    assert "momentum:lr=0.05" in out  # the bowl's own lr filled in for momentum

    results = json.loads((tmp_path / "bowl.json").read_text())
    sgd = results["runs"][0]
    assert sgd["optimizer"] == "sgd:lr=0.1" and sgd["reached_step"] == 28
    assert sgd["ended_in"] == "global (0, 0)" and sgd["diverged"] is False
    assert len(sgd["path"]) == 41 and sgd["path"][1] == pytest.approx([-3.2, 2.4])

    (width, height), _, pixels = _image(tmp_path / "bowl.png")
    assert width > 600 and height > 400
    assert pixels.std() > 20  # contours and paths, not a blank canvas
    _, frames, _ = _image(tmp_path / "bowl.gif")
    assert frames > 10 and (tmp_path / "bowl.gif").stat().st_size < 2_000_000


def test_saddle_table_says_who_escaped(tmp_path, capsys):
    rc = main(["landscape", "saddle", "--optimizers", "sgd:lr=0.1", "sgd:lr=0.001",
               "--steps", "60", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "steps to escape" in out
    lines = out.splitlines()
    fast = next(line for line in lines if line.startswith("sgd:lr=0.1 "))
    slow = next(line for line in lines if line.startswith("sgd:lr=0.001 "))
    assert fast.split()[1] == "38" and " yes " in fast  # 1e-3 * 1.2^k passes 1 at k = 38
    assert "not escaped" in slow and " no " in slow


def test_a_diverged_run_is_reported_and_its_json_stays_strict(tmp_path, capsys):
    assert main(["landscape", "beale", "--optimizers", "sgd:lr=0.01", "--steps", "50",
                 "--out", str(tmp_path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("sgd"))
    assert row.split()[-1] == "yes"
    text = (tmp_path / "beale.json").read_text()
    run = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))["runs"][0]
    assert run["diverged"] is True and run["steps_run"] < 50


def test_start_option_moves_the_start(tmp_path, capsys):
    # "--start=X,Y": argparse would take a separate "-3,-3" for an option.
    assert main(["landscape", "himmelblau", "--optimizers", "sgd:lr=0.01", "--start=-3,-3",
                 "--steps", "150", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "from (-3, -3)" in out and "global (-3.78, -3.28)" in out


def test_list_names_every_landscape(capsys):
    assert main(["landscape", "--list"]) == 0
    out = capsys.readouterr().out
    for name in LANDSCAPES:
        assert name in out


@pytest.mark.parametrize("argv, message", [
    (["landscape", "rosenbrok"], "unknown landscape 'rosenbrok'"),
    (["landscape"], "name a landscape"),
    (["landscape", "bowl", "--optimizers", "adamm"], "Did you mean adam"),
    (["landscape", "bowl", "--optimizers", "adam:lr"], "malformed hyperparameter"),
    (["landscape", "bowl", "--start", "1;2"], "--start takes two numbers"),
    (["landscape", "bowl", "--steps", "0"], "--steps must be a positive integer"),
    (["landscape", "bowl", "--tol", "-1"], "--tol must be a positive distance"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)] if len(argv) > 1 else argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    if argv[1:2] == ["rosenbrok"]:
        assert "Did you mean rosenbrock" in err


def test_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["landscape", "bowl", "--steps", "5", "--out", str(blocker / "sub")]) == 2
    assert "cannot write to the output folder" in capsys.readouterr().err


def test_report_figures_give_captioned_pngs(tmp_path):
    figures = report_figures(tmp_path, specs=None, names=("saddle",))
    assert len(figures) == 1
    caption, png = figures[0]
    assert "Saddle" in caption and png.exists()
    assert "sgd:lr=0.1 38" in caption  # the hand-computed escape step of plain GD at lr 0.1
    assert _image(png)[0][0] > 600
