"""examples/train_distributed.py under torchrun, 2 processes on this machine (gloo on CPU),
exactly as the README shows it: the loss falls, and a run resumed from a checkpoint ends where
the uninterrupted one does. The FSDP2 run's checkpoint is resumed under DDP: a DCP checkpoint
does not depend on the wrapper (floats then differ in the last bits: another reduction order)."""

from __future__ import annotations

import math
import re
import shutil
import sys
from pathlib import Path

import pytest
from dist_launch import run_command

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))


def torchrun(tmp_path: Path, name: str, *args: str) -> str:
    command = [TORCHRUN, "--standalone", "--nproc-per-node=2",
               str(ROOT / "examples" / "train_distributed.py"), "--task", "digits",
               "--optimizer", "adam:lr=1e-2", "--steps", "24", "--batch-size", "32",
               "--log-every", "6", "--checkpoint-every", "12", *args]
    return run_command(command, timeout=90, log=tmp_path / f"{name}.log")


def losses(output: str) -> list[float]:
    return [float(v) for v in re.findall(r"^step \d+ loss (\S+)$", output, re.MULTILINE)]


def final_norm(output: str) -> float:
    return float(re.search(r"^final step 24 parameter norm (\S+)$", output, re.MULTILINE)[1])


@pytest.mark.timeout(200)
def test_torchrun_two_processes_trains_and_resumes(tmp_path):
    full = torchrun(tmp_path, "full", "--wrapper", "fsdp2",
                    "--checkpoint-dir", str(tmp_path / "full"))
    curve = losses(full)
    assert len(curve) == 4, full
    assert curve[-1] < 0.7 * curve[0], f"loss did not fall: {curve}\n{full}"
    resumed = torchrun(tmp_path, "resumed", "--wrapper", "ddp",
                       "--checkpoint-dir", str(tmp_path / "resumed"),
                       "--resume", str(tmp_path / "full" / "step-000012"))
    assert "at step 12" in resumed, resumed
    resumed_curve = losses(resumed)
    assert len(resumed_curve) == 2 and all(
        math.isclose(a, b, rel_tol=1e-4) for a, b in zip(resumed_curve, curve[2:], strict=True)
    ), f"uninterrupted {curve} vs resumed {resumed_curve}"
    assert math.isclose(final_norm(resumed), final_norm(full), rel_tol=1e-5)
