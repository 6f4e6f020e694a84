"""What quality control costs on a CPU: ASR seconds per audio second, per audio hour, and the job's
synthesis-plus-checks time with QC on against QC off (Piper, the CPU engine).

Chunks a book (Pride and Prejudice chapter 1) with `shared.text.chunking.chunk_text` at the default
budget, speaks the first `--chunks` with Piper, then checks each as the worker does
(`worker.qc.QualityControl.check`: heuristics, then pocketsphinx against the chunk's words, scored
with jiwer) on one thread. Also reports the word error rates of these intact chunks: how many the
default threshold would redraw for nothing. Writes bench/results/qc_cost.json with the machine.
Run: .venv/bin/python bench/qc_cost.py [--chunks 12]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from shared.settings import QcAsr, Settings  # noqa: E402
from shared.text.chunking import chunk_text  # noqa: E402
from worker.engines.base import ChunkRequest  # noqa: E402
from worker.engines.piper_engine import PiperEngine  # noqa: E402
from worker.qc import QualityControl  # noqa: E402

SAMPLE = ROOT / "tests" / "shared" / "text" / "data" / "pride-and-prejudice-ch1.txt"


def machine() -> dict:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=12)
    args = parser.parse_args()
    chunks = chunk_text(SAMPLE.read_text(encoding="utf-8"), budget_seconds=25.0)[: args.chunks]
    engine = PiperEngine.load()
    settings = Settings()
    on = QualityControl(settings.model_copy(update={"qc_asr": QcAsr.POCKETSPHINX}))
    off = QualityControl(settings.model_copy(update={"qc_asr": QcAsr.OFF}))
    engine.warm_up()
    on.check(np.zeros(16000, np.float32), 16000, "warm up", 1.0)  # the decoder loads once

    synth = asr = heuristics = audio_seconds = 0.0
    wers: list[float] = []
    for chunk in chunks:
        started = time.perf_counter()
        (result,) = engine.generate([ChunkRequest(key=str(chunk.index), text=chunk.text)])
        synth += time.perf_counter() - started
        audio_seconds += len(result.audio) / engine.sample_rate
        started = time.perf_counter()
        off.check(result.audio, engine.sample_rate, chunk.text, chunk.est_seconds)
        heuristics += time.perf_counter() - started
        started = time.perf_counter()
        found = on.check(result.audio, engine.sample_rate, chunk.text, chunk.est_seconds)
        asr += time.perf_counter() - started
        wers.append(found.wer or 0.0)
    asr_only = max(0.0, asr - heuristics)
    results = {
        "engine": "piper",
        "recogniser": "pocketsphinx 5.1.1 (grammar of the chunk's words)",
        "threads": 1,
        "chunks": len(chunks),
        "audio_seconds": round(audio_seconds, 2),
        "synthesis_seconds": round(synth, 2),
        "heuristics_seconds": round(heuristics, 3),
        "qc_seconds": round(asr, 2),
        "asr_seconds_per_audio_second": round(asr_only / audio_seconds, 4),
        "asr_cpu_seconds_per_audio_hour": round(3600 * asr_only / audio_seconds, 1),
        "job_seconds_qc_off": round(synth + heuristics, 2),
        "job_seconds_qc_on": round(synth + asr, 2),
        "on_off_ratio": round((synth + asr) / (synth + heuristics), 3),
        "wer_intact_mean": round(sum(wers) / len(wers), 4),
        "wer_intact_max": round(max(wers), 4),
        "intact_chunks_over_default_threshold": sum(w > settings.qc_max_wer for w in wers),
        "default_max_wer": settings.qc_max_wer,
        "machine": machine(),
    }
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / "qc_cost.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
