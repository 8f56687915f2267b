"""The LR range test: its schedule and smoothing by hand, suggestions inside known good ranges,
and ``descend lr-find`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from descend.cli import main
from descend.lab import tasks
from descend.lab.lrfind import find_lr, lr_schedule, smooth
from descend.lab.spec import parse_spec


def test_schedule_grows_geometrically_from_min_to_max():
    lrs = lr_schedule(1e-6, 1.0, 7)
    np.testing.assert_allclose(lrs, [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def test_smoothing_is_a_bias_corrected_moving_average():
    assert smooth([3.0] * 5) == pytest.approx([3.0] * 5)  # no pull towards the zero start
    # by hand, beta 0.98: avg1 = 0.02 * 1 = 0.02 -> 0.02 / 0.02 = 1;
    # avg2 = 0.98 * 0.02 + 0.02 * 2 = 0.0596 -> 0.0596 / (1 - 0.9604) = 1.50505...
    assert smooth([1.0, 2.0]) == pytest.approx([1.0, 0.0596 / 0.0396])


def test_suggestion_on_the_noisy_quadratic_is_below_the_stability_limit():
    """Gradient descent on a quadratic is stable for lr < 2 / lambda_max; the suggestion must
    be below that limit, and not absurdly far below (within a factor 100)."""
    from descend.lab.tasks.quadratic import hessian

    limit = 2 / torch.linalg.eigvalsh(hessian())[-1].item()
    for seed in (0, 1):
        found = find_lr(tasks.get("quadratic"), parse_spec("sgd"), seed=seed)
        assert found.method == "steepest"
        assert limit / 100 < found.suggested_lr < limit
        assert found.min_loss_lr < 3 * limit  # the loss bottoms out near the limit


def test_suggestion_for_adam_on_mnist_is_in_the_known_good_range():
    """A 3-epoch sweep of Adam on this MLP peaks at lr 3e-3 .. 3e-2 (validation accuracy
    >= 0.90); 1e-3 .. 3e-2 is the range everyone uses for Adam on MNIST."""
    found = find_lr(tasks.get("mnist"), parse_spec("adam"), seed=0)
    assert 1e-3 <= found.suggested_lr <= 3e-2


def test_range_test_stops_once_the_loss_blows_up():
    """On the bowl x^2 + y^2 an SGD step scales the point by |1 - 2 lr|: beyond lr = 1 the
    loss grows geometrically, so the test must stop soon after."""
    found = find_lr(tasks.get("bowl"), parse_spec("sgd"), min_lr=1e-3, max_lr=100.0, steps=60)
    assert found.stop_reason.startswith("loss exceeded 4x its best")
    assert 1.0 < found.lrs[-1] < 10.0
    assert found.suggested_lr < 1.0


def test_lr_find_command_writes_the_plot_and_the_json(tmp_path, capsys):
    out = tmp_path / "lr"
    code = main(["lr-find", "--task", "digits", "--optimizer", "momentum:momentum=0.8",
                 "--steps", "40", "--min-lr", "1e-5", "--max-lr", "10", "--batch-size", "32",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "lr_find.json").read_text())
    assert data["optimizer"] == "momentum:momentum=0.8" and data["task"] == "digits"
    assert 1e-5 <= data["suggested_lr"] <= 10
    assert f"{data['suggested_lr']:.3g}" in printed
    assert len(data["lrs"]) == len(data["losses"]) == len(data["smoothed"]) <= 40
    with Image.open(out / "lr_find.png") as image:
        assert image.width > 400 and image.height > 250
        assert len(np.unique(np.asarray(image.convert("L")))) > 20  # a drawn plot, not blank


@pytest.mark.parametrize(("argv", "message"), [
    (["--task", "mnits"], "Did you mean mnist"),
    (["--optimizer", "adma"], "adam"),
    (["--min-lr", "1", "--max-lr", "0.1"], "need 0 < --min-lr < --max-lr"),
    (["--steps", "1"], "--steps must be at least 2"),
    (["--batch-size", "zero"], "batch size 'zero' is not allowed"),
    (["--data-dir", "/nonexistent/mnist"], "does not read data from a folder"),
    (["--task", "mnist", "--data-dir", "/nonexistent/mnist"], "is not a folder"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code = main(["lr-find", "--task", "digits", "--steps", "5", *argv,
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_unwritable_output_folder_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["lr-find", "--task", "digits", "--out", str(blocker / "out")]) == 2
    assert "cannot write to the output folder" in capsys.readouterr().err
