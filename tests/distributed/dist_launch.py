"""Spawns ranks as real processes on 127.0.0.1 and never lets a crashed or hung rank hang a test.

Each rank is ``python <script> <args>`` in its own process group with RANK / WORLD_SIZE /
MASTER_ADDR / MASTER_PORT set (what torchrun sets), OMP_NUM_THREADS=1 and gloo on loopback. The
first rank that exits non-zero, or the deadline, kills every rank's process group and fails the
test with each rank's exit status and the tail of its output.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
RANKS_SCRIPT = HERE / "dist_ranks.py"
TAIL_CHARS = 3000


class RanksFailed(AssertionError):
    """A rank crashed or the ranks did not finish in time."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_env(rank: int, world_size: int, port: int) -> dict[str, str]:
    return {
        **os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
    }


def run_command(command: Sequence[str], *, timeout: float, log: Path,
                env: dict[str, str] | None = None) -> str:
    """Runs one command (e.g. torchrun) in its own process group with the same guarantees as
    ``run_ranks``; returns its output."""
    _supervise([_start(command, env or {**os.environ, "OMP_NUM_THREADS": "1"}, log)],
               [log], timeout, what=" ".join(map(str, command)), unit="process")
    return log.read_text()


def run_ranks(job: str, out_dir: Path, *, world_size: int = 2, timeout: float = 60,
              args: Sequence[str] = ()) -> None:
    """Runs ``dist_ranks.py job out_dir *args`` on ``world_size`` ranks; returns when all exit 0.

    Raises RanksFailed (with each rank's output) as soon as one rank fails, or at ``timeout``
    seconds, after killing every rank.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    logs = [out_dir / f"rank{rank}.log" for rank in range(world_size)]
    command = [sys.executable, str(RANKS_SCRIPT), job, str(out_dir), *args]
    procs = [_start(command, loopback_env(rank, world_size, port), log)
             for rank, log in enumerate(logs)]
    _supervise(procs, logs, timeout, what=f"job {job!r} on {world_size} ranks", unit="rank")


def _start(command: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as sink:
        return subprocess.Popen(list(command), env=env, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _supervise(procs: list[subprocess.Popen], logs: list[Path], timeout: float,
               what: str, unit: str) -> None:
    deadline = time.monotonic() + timeout
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                _kill(procs)
                raise RanksFailed(f"{what}: {unit} {failed[0]} exited with status "
                                  f"{codes[failed[0]]}\n" + _report(procs, logs, unit))
            if all(code == 0 for code in codes):
                return
            if time.monotonic() > deadline:
                hung = [i for i, code in enumerate(codes) if code is None]
                _kill(procs)
                raise RanksFailed(f"{what}: {unit}(s) {hung} still running after "
                                  f"{timeout:.0f} s (hung or too slow), killed\n"
                                  + _report(procs, logs, unit))
            time.sleep(0.05)
    finally:
        _kill(procs)


def _kill(procs: list[subprocess.Popen]) -> None:
    """SIGKILL each rank's whole process group (the rank and anything it started)."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        p.wait()


def _report(procs: list[subprocess.Popen], logs: list[Path], unit: str) -> str:
    parts = []
    for rank, (p, log) in enumerate(zip(procs, logs, strict=True)):
        text = log.read_text(errors="replace") if log.exists() else ""
        parts.append(f"--- {unit} {rank} (exit status {p.returncode}), last output:\n"
                     f"{text[-TAIL_CHARS:]}")
    return "\n".join(parts)
