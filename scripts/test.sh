#!/usr/bin/env bash
# Sets everything up and runs the whole test suite (lint, types, import contracts, then pytest). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
bash scripts/setup_reference_env.sh
bash scripts/setup_test_tools.sh
# The tests need a real Redis; start a throw-away one when none answers (stopped on exit).
eval "$(.venv/bin/python -m devstack.redis_for_tests)"
trap 'if [[ -n "${NARRATE_TEST_REDIS_PID:-}" ]]; then kill "$NARRATE_TEST_REDIS_PID" 2>/dev/null || true; fi' EXIT

.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Types (pyright, standard mode, over the shipped packages) and the room rules (import contracts), both
# configured in pyproject.toml.
.venv/bin/pyright
.venv/bin/lint-imports
# pytest exits 5 when it collected no test: with `set -e` that fails the run, as it must. The tests run
# in one process per core (pytest-xdist); `-n 0` among the arguments runs them in this process.
.venv/bin/python -m pytest -n auto "$@"
