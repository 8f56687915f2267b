#!/usr/bin/env bash
# Installs descend with the lab and dev extras into .venv (torch pinned to the CPU wheel) and runs
# the whole test suite. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e '.[lab,dev]'
.venv/bin/ruff check src tests
# The compiled per-step checks, built once per machine (the tests run with them; ~30 s the first time).
.venv/bin/descend build-native || echo "warning: the compiled per-step checks did not build; tests/test_engine_native.py will say why"
.venv/bin/python -m pytest -q "$@"
# The engine tests once more without the compiled per-step checks (the Python checks they replace).
if [ $# -eq 0 ]; then
  DESCEND_NATIVE=0 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_engine_exactness.py
fi
