#!/usr/bin/env bash
# Creates .venv with the service, both engines' Python stacks and the test tools (CPU).
# Idempotent: a second run only installs what changed in pyproject.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" --upgrade pip
# torch first and pinned, so that nothing below can pull a multi-GB CUDA build on a CPU machine. On a GPU
# host the worker image installs the CUDA build of the same release instead (deploy/worker.Dockerfile).
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[cpu,kanitts2,dev]"
echo "setup: .venv ready" >&2
