"""Writing files so that a reader never sees half of one: write a temporary file in the same
folder, flush it to disk, then ``os.replace`` it over the target (atomic on POSIX and Windows)."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (creating its folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private (0600); be ordinary
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def strict_json(value: Any, significant: int | None = None) -> Any:
    """``value`` with NaN and infinities (a diverged run) as None: strict JSON has no spelling
    for them. ``significant`` rounds floats to that many significant digits (long paths)."""
    if isinstance(value, dict):
        return {k: strict_json(v, significant) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v, significant) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{significant}g}") if significant else value
    return value


def check_writable(folder: str | os.PathLike) -> Path:
    """Creates ``folder`` if needed and proves a file can be written in it, before any long
    work starts; raises ValueError saying what to do otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ValueError(f"cannot write to the output folder {str(folder)!r} ({reason}); "
                         "choose another with --out") from None
    return folder
