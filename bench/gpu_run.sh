#!/usr/bin/env bash
# The whole KaniTTS2 GPU run in one call of under 5 minutes: device checks, then the benchmark at the
# real dimensions (random weights), then 64 mixed jobs through the real worker path against the
# engine's figure at the same batch; figures written to $OUT (the device tool brings that folder back).
#
# Before the call, here:   .venv/bin/python bench/gpu_bundle.py      (fills the git-ignored .whl/)
# The call (device tool):  run(command="NARRATE_COMMIT=<sha> bash bench/gpu_run.sh", carry=[".whl"],
#                              timeout_s=330)
# Smoke test on CPU:       bash bench/gpu_run.sh --smoke     (tiny model and codec, .venv's python)
#
# On the GPU machine python3 is the image's (torch, no NeMo, transformers 5.17, no network): the
# bundle's pure-Python packages and CPython 3.12 wheels go into a scratch site that PYTHONPATH puts
# first; the reference's transformers 4.56 set goes into a second one that only the reference
# subprocess sees. Extra arguments go to bench/gpu_run.py (and from there to bench/kanitts2_engine.py).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

smoke=0
for arg in "$@"; do [[ "$arg" == "--smoke" ]] && smoke=1; done
if [[ $smoke == 1 ]]; then
  PY="${PYTHON:-.venv/bin/python}"
  OUT_DIR="${OUT:-bench/results/gpu-smoke}"
else
  PY="${PYTHON:-python3}"
  OUT_DIR="${OUT:-bench/results/gpu-run}"
fi
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1

if [[ $smoke == 0 && -f .whl/site-main.tar.gz ]]; then
  site="$(mktemp -d)"
  ref_site="$(mktemp -d)"
  tar -xzf .whl/site-main.tar.gz -C "$site"
  tar -xzf .whl/site-ref.tar.gz -C "$ref_site"
  pip_install=("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade)
  "${pip_install[@]}" --target "$site" .whl/cp312-main/*.whl || echo "bundle: main wheels did not install"
  "${pip_install[@]}" --target "$ref_site" .whl/cp312-ref/*.whl || echo "bundle: reference wheels did not install"
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  export REF_PYTHON="$PY" REF_PYTHONPATH="$ref_site"
elif [[ $smoke == 0 ]]; then
  echo "no .whl bundle: the codec (NeMo) and the reference will be missing; run bench/gpu_bundle.py here first"
fi

{
  date -u
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem \
    --format=csv
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  "$PY" -c "import nemo; print('nemo', nemo.__version__)" 2>&1 | tail -1
} 2>&1 | tee "$OUT_DIR/environment.txt"

budget=150
[[ $smoke == 1 ]] && budget=900
timeout $((budget + 40)) "$PY" bench/gpu_run.py --out "$OUT_DIR" --time-budget "$budget" "$@" 2>&1 |
  grep --line-buffered -v -E "Warning|warnings.warn|^ *$|USDT:" | tee "$OUT_DIR/log.txt"
status=${PIPESTATUS[0]}

# Then 64 mixed jobs through the real worker path (Redis, a Celery worker of 64 unit threads, one engine
# of 64 slots) against the engine benchmark's figure at the same batch, just written above.
units_args=(--out "$OUT_DIR" --timeout 60)
[[ $smoke == 1 ]] && units_args+=(--smoke --timeout 600)
timeout $([[ $smoke == 1 ]] && echo 900 || echo 120) "$PY" bench/gpu_units.py "${units_args[@]}" 2>&1 |
  grep --line-buffered -v -E "Warning|warnings.warn|^ *$|USDT:" | tee "$OUT_DIR/units-log.txt"
units_status=${PIPESTATUS[0]}
[[ $status == 0 ]] && status=$units_status
ls -la "$OUT_DIR"
exit "$status"
