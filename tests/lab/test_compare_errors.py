"""Bad input to ``descend compare`` and ``descend report``: one clear line on stderr, exit
status 2, no traceback, and nothing trained or written first."""

from __future__ import annotations

import pytest

from descend.cli import main


def error_of(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["--optimizers", "adamm"], ["unknown optimizer 'adamm'", "Did you mean adam"]),
    (["--task", "mnsit"], ["unknown task 'mnsit'", "Did you mean mnist"]),
    (["--optimizers", "adam:lr"], ["malformed hyperparameter 'lr'", "KEY=VALUE"]),
    (["--optimizers", "adam:momentum=0.9"], ["adam has no hyperparameter 'momentum'"]),
    (["--batch-size", "half"], ["batch size 'half' is not allowed", "full", "mini-batch"]),
    (["--lr-grid", "0.1", "-1"], ["learning rate -1", "positive"]),
    (["--seeds", "0"], ["--seeds must be a positive integer"]),
    (["--target-accuracy", "85"], ["--target-accuracy 85 must be in (0, 1]"]),
    (["--dtype", "int8"], ["--dtype int8 is not supported", "bfloat16"]),
    (["--optimizers", "adam:state_dtype=int8"], ["not a storage dtype", "bfloat16"]),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, expected):
    message = error_of(capsys, "compare", "--out", str(tmp_path / "out"), *args)
    assert message.startswith("descend compare: error: ")
    for part in expected:
        assert part in message
    assert not (tmp_path / "out").exists()  # nothing written


def test_an_unwritable_output_folder_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    message = error_of(capsys, "compare", "--out", str(blocker / "report"))
    assert "cannot write to the output folder" in message and "--out" in message


def test_missing_idx_files(tmp_path, capsys):
    message = error_of(capsys, "compare", "--out", str(tmp_path / "out"), "--data-dir",
                       str(tmp_path))
    assert "train-images-idx3-ubyte" in message and "missing" in message
    assert not (tmp_path / "out").exists()


def test_corrupt_idx_files(tmp_path, capsys):
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"\x00\x00\x08\x03garbage")
    message = error_of(capsys, "compare", "--out", str(tmp_path / "out"), "--data-dir",
                       str(tmp_path))
    assert "idx" in message.lower()


def test_data_dir_on_a_task_without_files(tmp_path, capsys):
    message = error_of(capsys, "compare", "--out", str(tmp_path / "out"), "--task", "digits",
                       "--data-dir", str(tmp_path))
    assert "does not read data from a folder" in message


def test_report_of_a_folder_without_a_store(tmp_path, capsys):
    message = error_of(capsys, "report", str(tmp_path))
    assert "has no runs.sqlite" in message and "descend compare --out" in message
