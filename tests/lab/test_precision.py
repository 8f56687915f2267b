"""Low precision in the lab: ``descend compare --dtype bfloat16`` trains bfloat16 parameters and
gradients, keys and reports its runs apart from float32 ones, leaves float32 as it was; and
``descend precision`` measures round-to-nearest losing the small updates of late training that
stochastic rounding keeps."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.optim.optimizer import register_optimizer_step_pre_hook

from descend.cli import main
from descend.lab import tasks
from descend.lab.spec import parse_spec
from descend.lab.store import RunStore
from descend.lab.train import dtype_name, train

TINY = ["--task", "digits", "--max-train", "300", "--epochs", "1", "--seeds", "1",
        "--no-landscapes"]
PAIR = ["sgd:lr=0.5", "sgd:lr=0.5,stochastic_rounding=true"]


def compare(out: Path, *args: str) -> int:
    return main(["compare", "--out", str(out), *TINY, *args])


def stored(out: Path) -> list[tuple[dict, dict]]:
    """(config, timings) of every run, read with plain sqlite3."""
    with sqlite3.connect(out / "runs.sqlite") as db:
        rows = db.execute("SELECT config, timings FROM runs ORDER BY id").fetchall()
    return [(json.loads(c), json.loads(t)) for c, t in rows]


@pytest.fixture(scope="module")
def bf16(tmp_path_factory) -> tuple[Path, set]:
    """A bfloat16 compare of sgd rounded to nearest and stochastically; what every optimizer
    step saw: the set of (parameter dtype, gradient dtype)."""
    out = tmp_path_factory.mktemp("bf16")
    seen: set = set()

    def look(optimizer, args, kwargs):
        seen.update((p.dtype, p.grad.dtype) for group in optimizer.param_groups
                    for p in group["params"] if p.grad is not None)

    hook = register_optimizer_step_pre_hook(look)
    try:
        assert compare(out, "--dtype", "bfloat16", "--optimizers", *PAIR) == 0
    finally:
        hook.remove()
    return out, seen


def test_bfloat16_compare_steps_bfloat16_parameters_and_gradients(bf16):
    out, seen = bf16
    assert seen == {(torch.bfloat16, torch.bfloat16)}
    runs = stored(out)
    assert len(runs) == 2
    for config, timings in runs:
        assert config["dtype"] == "bfloat16"  # part of the run's key
        assert timings["dtype"] == "bfloat16"  # what the model's parameters were, as trained
    with RunStore.in_folder(out) as store:
        assert store.config()["dtype"] == "bfloat16"
        histories = [r.metrics for r in store.runs()]
    for history in histories:  # both learned: 10 steps take the loss well below its start
        assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.3


def test_bfloat16_report_shows_the_dtype_and_the_rounding(bf16):
    out, _ = bf16
    html = (out / "report.html").read_text()
    assert "Optimizers compared on digits in bfloat16" in html
    assert "bfloat16 parameters and gradients" in html
    assert "stochastic rounding for 1 of 2 optimizers" in html
    assert "<th>dtype</th><th>rounding</th>" in html
    assert "<td>bfloat16</td><td>nearest</td>" in html
    assert "<td>bfloat16</td><td>stochastic</td>" in html
    assert "Learning curves, mini-batch GD (batch 32), bfloat16" in html
    with open(out / "runs.csv", newline="") as f:
        assert {row["dtype"] for row in csv.DictReader(f)} == {"bfloat16"}
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["dtype"] == "bfloat16"


def test_float32_runs_keep_their_keys_and_their_numbers(tmp_path):
    """float32 is the default, its run keys have no dtype (stores written before there was
    a choice resume as they are), and the same run with --dtype float32 is the same run."""
    assert compare(tmp_path, "--optimizers", "sgd:lr=0.05") == 0
    ((config, timings),) = stored(tmp_path)
    assert "dtype" not in config and timings["dtype"] == "float32"
    # a store of the previous version: its compare config has no dtype either
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        meta = json.loads(db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])
        meta.pop("dtype")
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(meta),))
    assert compare(tmp_path, "--optimizers", "sgd:lr=0.05", "--dtype", "float32") == 0
    assert len(stored(tmp_path)) == 1  # reused, not trained again
    task = tasks.get("digits")
    a = train(task, parse_spec("sgd:lr=0.05"), epochs=1)
    b = train(task, parse_spec("sgd:lr=0.05"), epochs=1, dtype="float32")
    assert a.curve == b.curve
    assert [(p.train_loss, p.test_loss) for p in a.history] == [
        (p.train_loss, p.test_loss) for p in b.history]
    html = (tmp_path / "report.html").read_text()
    assert "float32 parameters" in html and "<th>rounding</th>" not in html


def test_another_dtype_is_another_compare(tmp_path, capsys):
    assert compare(tmp_path, "--optimizers", "sgd:lr=0.05") == 0
    assert compare(tmp_path, "--optimizers", "sgd:lr=0.05", "--dtype", "bf16") == 2
    err = capsys.readouterr().err
    assert "different compare" in err and "dtype: float32 -> bfloat16" in err
    assert len(stored(tmp_path)) == 1  # nothing trained
    # with --resume the bfloat16 runs are new runs, kept beside the float32 one
    assert main(["compare", "--out", str(tmp_path), "--resume", "--dtype", "bfloat16",
                 "--no-landscapes"]) == 0
    assert [c.get("dtype", "float32") for c, _ in stored(tmp_path)] == ["float32", "bfloat16"]
    # resuming again takes the dtype from the store: nothing left to train
    assert main(["compare", "--out", str(tmp_path), "--resume", "--no-landscapes"]) == 0
    assert len(stored(tmp_path)) == 2
    assert main(["report", str(tmp_path), "--no-landscapes"]) == 0
    assert "on digits in bfloat16" in (tmp_path / "report.html").read_text()


def test_stochastic_rounding_in_float32_is_noted(tmp_path, capsys):
    assert compare(tmp_path, "--optimizers", "sgd:lr=0.05,stochastic_rounding=true") == 0
    assert "stochastic_rounding changes nothing in float32" in capsys.readouterr().err


def test_train_in_bfloat16_casts_the_model_and_float16_too():
    task = tasks.get("digits")
    # float16 Adam needs float32 state: 1e-3 x g^2 underflows float16, and m / sqrt(0) blows up
    for dtype, spec in (("bfloat16", "adam:lr=1e-3"),
                        (torch.float16, "adam:lr=1e-3,state_dtype=float32")):
        model = task.build_model(0)
        result = train(task, parse_spec(spec), epochs=1, dtype=dtype, model=model)
        assert result.dtype == dtype_name(dtype)
        assert {p.dtype for p in model.parameters()} == {getattr(torch, result.dtype)}
        assert not result.diverged and result.final.test_accuracy > 0.5


def test_dtype_names():
    assert [dtype_name(d) for d in ("bf16", "FP16", "torch.float32", torch.bfloat16)] == [
        "bfloat16", "float16", "float32", "bfloat16"]
    with pytest.raises(ValueError, match="float32, bfloat16, float16"):
        dtype_name("int8")


def test_a_spec_sets_the_state_dtype_by_name():
    spec = parse_spec("adam:lr=1e-3,state_dtype=bfloat16,stochastic_rounding=true")
    assert spec.hyperparameters["state_dtype"] is torch.bfloat16
    assert parse_spec(spec.label) == spec
    model = torch.nn.Linear(3, 2)
    optimizer = spec.build(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    assert optimizer.state[model.weight]["exp_avg"].dtype == torch.bfloat16
    with pytest.raises(ValueError, match="not a storage dtype"):
        parse_spec("adam:state_dtype=int8")


@pytest.fixture(scope="module")
def precision_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("precision")
    assert main(["precision", "--task", "digits", "--pretrain-epochs", "3", "--epochs", "2",
                 "--out", str(out)]) == 0
    return out


def test_precision_shows_round_to_nearest_losing_the_small_updates(precision_run):
    data = json.loads((precision_run / "precision.json").read_text())
    runs = {r["label"]: r for r in data["runs"]}
    assert list(runs) == ["float32", "bfloat16, nearest", "bfloat16, stochastic"]
    assert [r["dtype"] for r in runs.values()] == ["float32", "bfloat16", "bfloat16"]
    fp32, nearest, stochastic = runs.values()
    assert data["lr"] == 1e-3 and fp32["decrease"] > 0
    # round to nearest keeps a small part of float32's loss decrease; stochastic most of it
    assert nearest["decrease"] < 0.25 * fp32["decrease"]
    assert stochastic["decrease"] > 0.75 * fp32["decrease"]
    assert stochastic["decrease"] > 3 * nearest["decrease"]
    # and the weights: nearest barely gets anywhere along float32's direction
    assert fp32["along"][-1] == pytest.approx(fp32["moved"][-1])  # its own direction
    assert nearest["along"][-1] < 0.25 * fp32["along"][-1]
    assert stochastic["along"][-1] > 0.75 * fp32["along"][-1]
    assert nearest["unchanged"] > 0.9 > stochastic["unchanged"]
    # the same minibatches, evaluated at the same steps
    assert fp32["steps"] == nearest["steps"] == stochastic["steps"]


def test_precision_figure_is_a_real_plot(precision_run, capsys):
    image = Image.open(precision_run / "precision.png").convert("RGB")
    assert image.width > 1000 and image.height > 400
    pixels = torch.from_numpy(np.asarray(image).reshape(-1, 3).astype(np.int32))
    red = ((pixels[:, 0] > 180) & (pixels[:, 1] < 80) & (pixels[:, 2] < 80)).float().mean()
    blue = ((pixels[:, 2] > 150) & (pixels[:, 0] < 80)).float().mean()
    assert red > 0.001 and blue > 0.001  # both bfloat16 curves are drawn


@pytest.mark.parametrize(("args", "expected"), [
    (["--dtype", "float32"], "float32 is the reference"),
    (["--optimizer", "sgd:lr=0.1"], "lr is set by --lr and --pretrain-lr"),
    (["--optimizer", "sgd:stochastic_rounding=true"], "it runs both"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--batch-size", "half"], "batch size 'half' is not allowed"),
])
def test_precision_bad_options_are_one_line_errors(tmp_path, capsys, args, expected):
    assert main(["precision", "--task", "digits", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "out").exists()
