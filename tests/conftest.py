"""Session set-up shared by every test."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def compiled_plan_checks():
    """Builds (once per machine, ~30 s) and loads the compiled per-step checks before any test,
    so that every test runs the same path: compiled checks where a group has a dense plan, unless
    DESCEND_NATIVE=0 (scripts/test.sh runs the engine tests that way too). A build failure is
    left to tests/test_engine_native.py to report."""
    from descend.engines import native

    if not native.enabled():
        yield
        return
    path = native.library_path()
    try:
        native.load_library(path if path.exists() else native.compile_library(path))
    except (RuntimeError, OSError, ImportError):
        pass
    yield
