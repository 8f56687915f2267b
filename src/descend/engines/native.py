"""An optional compiled helper: the per-step checks of a prepared param group (plan_check.cpp).

A small model's step is mostly bookkeeping in Python (see ``descend.step_plan``); this C++
extension does the same checks in one pass. It is built once per machine and torch version with
``torch.utils.cpp_extension`` (needs a C++ compiler and ninja; about 30 s on 2 cores) into the
kernel cache directory, in a background thread so that no step waits for it; later processes load
the built library in milliseconds. Until it is there, or where it cannot be built, the Python
checks run: results are the same either way (both only decide whether the same kernel runs).

``DESCEND_NATIVE=0`` turns it off (nothing is built or loaded). A background build that fails
(no compiler, say) leaves its output in ``build-failed.txt`` beside the library's place and is not
tried again by later processes; delete that file to try again.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType

import torch

from descend.engines.codegen import cache_dir

SOURCE = Path(__file__).with_name("plan_check.cpp")
NAME = "descend_plan_check"
BUILD_THREAD = "descend-native-build"

module: ModuleType | None = None  # the loaded helper, once there
_started = False
_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get("DESCEND_NATIVE", "1").strip().lower() not in ("0", "off", "false")


def library_path() -> Path:
    """Where the built helper lives: one per source, torch and Python version."""
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), torch.__version__.encode(),
                                     sys.version.encode()])).hexdigest()[:20]
    return cache_dir() / "native" / key / f"{NAME}.so"


def start() -> None:
    """Loads the built helper, or starts building it in the background; at most once per process
    (the first prepared step calls it). Never raises, never waits for a build."""
    global _started
    with _lock:
        if _started or not enabled():
            return
        _started = True
    try:
        path = library_path()
        if path.exists():
            _load_quietly(path)
        elif not failure_report(path).exists():
            threading.Thread(target=_build_and_load, args=(path,), name=BUILD_THREAD,
                             daemon=True).start()
    except OSError:  # the source missing from an install, an unreadable cache...
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
    failure_report(path).unlink(missing_ok=True)
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


def failure_report(path: Path) -> Path:
    return path.with_name("build-failed.txt")


def _build_and_load(path: Path) -> None:
    try:
        compile_library(path)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        try:  # no compiler, no ninja...: the Python checks go on running
            path.parent.mkdir(parents=True, exist_ok=True)
            failure_report(path).write_text(f"{e}\n")
        except OSError:
            pass
        return
    _load_quietly(path)


def _load_quietly(path: Path) -> None:
    try:
        load_library(path)
    except (ImportError, OSError):  # a library from an incompatible build: ignore it
        pass


def load_library(path: Path) -> ModuleType:
    """Loads a built helper and makes it the one steps use."""
    global module
    loader = importlib.machinery.ExtensionFileLoader(NAME, str(path))
    spec = importlib.util.spec_from_file_location(NAME, path, loader=loader)
    loaded = importlib.util.module_from_spec(spec)
    loader.exec_module(loaded)
    module = loaded
    return loaded


if __name__ == "__main__":
    _build(Path(sys.argv[1]))
