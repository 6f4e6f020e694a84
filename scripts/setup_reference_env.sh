#!/usr/bin/env bash
# Creates .venv-ref: the public kani-tts-2 reference model code on the transformers it was written for.
#
# The conformance test (tests/worker/engines/kanitts2/test_conformance.py) and the benchmark
# (bench/kanitts2_engine.py) run the reference's model module in this environment as a subprocess.
# The reference needs transformers 4.56 (it imports Lfm2HybridConvCache, removed in 5.5), which cannot
# share a venv with our transformers 5.x. Only its model module is imported, so the package goes in with
# --no-deps and without NeMo. Idempotent: an existing, complete environment is left as it is.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REF_VENV:-$ROOT/.venv-ref}"
PYTHON="${PYTHON:-python3.11}"
MARKER="$VENV/.narrate-ref-ok"

if [[ -f "$MARKER" ]]; then
  echo "reference env ready: $VENV"
  exit 0
fi

"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/pip" install --quiet --disable-pip-version-check)
# torch 2.13.0 is the same build as our main venv (CPU wheel on CI); never a CUDA build pulled by a dependency.
"${PIP[@]}" "torch==2.13.0"
# What kani_tts/model.py imports: torch and transformers (which brings tokenizers, safetensors, hub client).
"${PIP[@]}" "transformers==4.56.*" "safetensors>=0.4" "numpy>=1.26"
"${PIP[@]}" --no-deps "kani-tts-2==0.0.5"
"$VENV/bin/python" - <<'PY'
import importlib.util, pathlib, sys, sysconfig
path = pathlib.Path(sysconfig.get_paths()["purelib"]) / "kani_tts" / "model.py"
spec = importlib.util.spec_from_file_location("kani_tts_model", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert hasattr(module, "KaniTTS2ForCausalLM"), "reference model class missing"
import transformers
print("reference model importable; transformers", transformers.__version__, file=sys.stderr)
PY
touch "$MARKER"
echo "reference env ready: $VENV"
