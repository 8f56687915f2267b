"""Build the compiled per-step checks (plan_check.cpp), which make small models' steps cheaper.

A small model's step is mostly bookkeeping in Python (see ``descend.batch``); this C++ extension
does the same checks in one pass. Build it once per machine, torch and Python version with
``descend build-native`` (``torch.utils.cpp_extension``: needs a C++ compiler and ninja, which
``descend[fast]`` installs; about 30 s on 2 cores) into the kernel cache directory; every later
process loads the built library in milliseconds at its first prepared step. Nothing is built at
a step: until it is built, or where it cannot be, the Python checks run, with the same results
(both only decide whether the same kernel runs).

``DESCEND_NATIVE=0`` turns it off (nothing is loaded).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import torch

from descend.engines.codegen import cache_dir

SOURCE = Path(__file__).with_name("plan_check.cpp")
NAME = "descend_plan_check"
log = logging.getLogger("descend.engines")

module: ModuleType | None = None  # the loaded helper, once there
_tried = False


def enabled() -> bool:
    return os.environ.get("DESCEND_NATIVE", "1").strip().lower() not in ("0", "off", "false")


def library_path() -> Path:
    """Where the built helper lives: one per source, torch and Python version."""
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), torch.__version__.encode(),
                                     sys.version.encode()])).hexdigest()[:20]
    return cache_dir() / "native" / key / f"{NAME}.so"


def load() -> None:
    """Loads the built helper if it is there; at most one try per process (the first prepared
    step calls it). Never builds, never raises."""
    global _tried
    if _tried or not enabled():
        return
    _tried = True
    try:
        path = library_path()
        if path.exists():
            load_library(path)
        else:
            log.debug("compiled per-step checks not built (descend build-native): the Python "
                      "checks run")
    except (ImportError, OSError):  # an incompatible build, an unreadable cache...
        pass


def compile_library(path: Path | None = None) -> Path:
    """Builds the helper into ``path`` in a child process (the compiler's output stays there)
    and waits for it; raises RuntimeError with the build's output if it fails."""
    path = path or library_path()
    bin_dirs = [os.path.dirname(sys.executable)]  # a venv's ninja, when the venv is not active
    env = dict(os.environ, PATH=os.pathsep.join([*bin_dirs, os.environ.get("PATH", "")]))
    result = subprocess.run([sys.executable, "-m", "descend.engines.native", str(path)],
                            env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0 or not path.exists():
        raise RuntimeError(f"building {SOURCE.name} failed:\n{result.stdout}{result.stderr}")
    return path


def _build(path: Path) -> None:
    """The child process's work: compile, then move the library into place atomically. One
    build at a time per library (a file lock): the ranks of a job started together on a new
    machine wait for the first one's build instead of compiling side by side."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name("build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():  # built while this process waited
            return
        from torch.utils.cpp_extension import load

        work = Path(tempfile.mkdtemp(prefix="build-", dir=path.parent))
        try:
            load(name=NAME, sources=[str(SOURCE)], build_directory=str(work),
                 extra_cflags=["-O2"], verbose=False)
            os.replace(work / f"{NAME}.so", path)  # a reader sees the whole library or none
        finally:
            shutil.rmtree(work, ignore_errors=True)


def load_library(path: Path) -> ModuleType:
    """Loads a built helper and makes it the one steps use."""
    global module
    loader = importlib.machinery.ExtensionFileLoader(NAME, str(path))
    spec = importlib.util.spec_from_file_location(NAME, path, loader=loader)
    loaded = importlib.util.module_from_spec(spec)
    loader.exec_module(loaded)
    module = loaded
    return loaded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="build again even if built")


def run(args: argparse.Namespace) -> int:
    """``descend build-native``: builds the helper (or says where the built one is)."""
    path = library_path()
    if path.exists() and not args.force:
        print(f"compiled per-step checks already built: {path}")
        return 0
    if args.force:
        path.unlink(missing_ok=True)
    try:
        compile_library(path)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        raise ValueError(f"{e}\nthe Python checks keep running (same results, slower on small "
                         "models); install a C++ compiler and ninja, then run this again") from e
    load_library(path)
    print(f"compiled per-step checks built: {path}")
    return 0


if __name__ == "__main__":
    _build(Path(sys.argv[1]))
