"""Time the timed-line fit: Rubber Band (pedalboard) time-stretch of real Piper lines at the fit's
bounds, beside FFmpeg's `atempo` (what `/v1/audio/speech` streams with), and the length it delivers.

Prints seconds of CPU per second of audio (lower is faster) and the worst length error in samples,
and writes bench/results/fit_stretch.json with the machine.
Run: .venv/bin/python bench/fit_stretch.py   (needs the `cpu` extra: Piper)
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.audio.fit import stretch  # noqa: E402
from shared.audio.tempo import change_speed  # noqa: E402
from worker.engines.base import ChunkRequest  # noqa: E402
from worker.engines.piper_engine import PiperEngine  # noqa: E402

LINES = [
    "Halt! Nobody passes this gate after the evening bell.",
    "The merchant counted the coins twice and frowned at the last one.",
    "We ride north at dawn, and we do not stop until the river.",
    "Keep your voice down, the walls of this tavern have ears.",
    "You again? I told you the captain is not seeing anyone today.",
]
RATIOS = (0.8, 0.9, 1.1, 1.25)


def best_of(runs: int, work) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    engine = PiperEngine.load()
    sr = engine.sample_rate
    audios = [result.audio for result in engine.generate([ChunkRequest(f"l{i}", t) for i, t in enumerate(LINES)])]
    seconds = sum(len(a) for a in audios) / sr
    stretch(audios[0], sr, 0.9)  # warm up: loads the extension
    rows = []
    for ratio in RATIOS:
        rubber = best_of(3, lambda r=ratio: [stretch(a, sr, r) for a in audios])
        atempo = best_of(3, lambda r=ratio: [change_speed(a, sr, 1 / r) for a in audios])
        error = max(abs(len(stretch(a, sr, ratio)) - round(len(a) * ratio)) for a in audios)
        atempo_error = max(abs(len(change_speed(a, sr, 1 / ratio)) - round(len(a) * ratio)) for a in audios)
        rows.append(
            {
                "ratio": ratio,
                "rubberband_cpu_per_audio_second": round(rubber / seconds, 4),
                "atempo_cpu_per_audio_second": round(atempo / seconds, 4),
                "rubberband_max_length_error_samples": int(error),
                "atempo_max_length_error_samples": int(atempo_error),
            }
        )
        print(
            f"ratio {ratio:.2f}: Rubber Band {rubber / seconds * 1000:.1f} ms per audio second "
            f"(length error {error} samples), atempo {atempo / seconds * 1000:.1f} ms "
            f"(length error {atempo_error} samples)"
        )
    result = {
        "lines": len(LINES),
        "audio_seconds": round(seconds, 2),
        "sample_rate": sr,
        "rows": rows,
        "runs": "best of 3",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    out = ROOT / "bench" / "results" / "fit_stretch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
