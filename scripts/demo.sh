#!/usr/bin/env bash
# Sets everything up and narrates the sample chapter through the real API, Redis queue and Celery worker.
# Arguments go to narrate-demo (e.g. another text file, -o out.mp3, --format flac).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
exec .venv/bin/narrate-demo "$@"
