"""Bad input to ``descend benchmark`` gets a one-line error and exit status 2 before anything
runs: no output folder, no storage, no trial."""

from __future__ import annotations

import subprocess
import sys

import pytest

from descend.cli import main

BAD = [
    (["--workloads", "mnist-mpl"], "unknown workload 'mnist-mpl'", "Did you mean mnist-mlp"),
    (["--optimizers", "sgd", "adamm"], "unknown optimizer 'adamm'", "Did you mean"),
    (["--optimizers", "adam:lr=0.1"], "--optimizers takes registry names", "--space"),
    (["--space", "adam:lr=1e-2..1e-4"], "bad range lr=", "LOW < HIGH"),
    (["--space", "adam:lr=0..1e-2"], "log scale", "LOW must be > 0"),
    (["--space", "adam:gamma=0.1..0.2"], "no hyperparameter 'gamma'", "allowed: lr"),
    (["--space", "adam:lr=one..two"], "bad range", "LOW..HIGH"),
    (["--space", "adam"], "names no parameter", "e.g. --space"),
    (["--space", "lion:lr=1e-5..1e-3"], "lion is not benchmarked", "--optimizers"),
    (["--trials", "0"], "--trials must be a positive integer", ""),
    (["--jobs", "0"], "--jobs must be a positive integer", ""),
    (["--storage", "postgresql://nobody@127.0.0.1:1/nothing"], "storage", "postgresql://"),
    (["--storage", "nonsense://x"], "cannot open the storage", "nonsense://"),
    (["--storage", "sqlite:////no/such/folder/b.sqlite"], "cannot open the storage", ""),
    (["--workloads", "mnist-cnn", "--data-dir", "/no/such/mnist"], "workload mnist-cnn",
     "/no/such/mnist"),
    (["--workloads", "quadratic", "--data-dir", "/tmp"], "none of the workloads reads data",
     "mnist-mlp, mnist-cnn"),
    (["--resume"], "holds no benchmark to resume", ""),
    (["--report-only"], "holds no benchmark to report", ""),
]


@pytest.mark.parametrize("argv, message, hint", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_is_one_line_and_exit_2_before_anything_runs(argv, message, hint, tmp_path,
                                                                capsys):
    out = tmp_path / "out"
    assert main(["benchmark", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("descend benchmark: error: ") and err.count("\n") == 1, err
    assert message in err and hint in err
    assert not (out / "benchmark.sqlite").exists()


def test_resume_with_new_options_or_a_second_benchmark_in_one_store_is_refused(tmp_path,
                                                                                capsys):
    out = str(tmp_path / "out")
    tiny = ["--workloads", "quadratic", "--optimizers", "sgd", "--trials", "1", "--seeds", "1"]
    assert main(["benchmark", "--out", out, *tiny]) == 0
    capsys.readouterr()
    assert main(["benchmark", "--out", out, *tiny]) == 2
    assert "already holds a benchmark; pass --resume" in capsys.readouterr().err
    assert main(["benchmark", "--out", out, "--resume", "--trials", "3"]) == 2
    assert "--trials: --resume and --report-only take" in capsys.readouterr().err


def test_the_command_line_exits_2_with_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "descend", "benchmark", "--out",
                           str(tmp_path / "o"), "--workloads", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "Traceback" not in done.stderr
