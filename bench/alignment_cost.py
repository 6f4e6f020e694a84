"""What forced alignment adds to a job: seconds of CPU per hour of audio (pocketsphinx, one process).

Words only (a book's file: cues, word timestamps, read-along) and words with phones (a batch's line
files: lip-sync in the manifest) are timed separately.

Real Piper speech (the CPU preview voice) of Pride and Prejudice chapter 1, chunked as the planner
does (25-second budget), is aligned chunk by chunk with `worker.alignment.Aligner` as the assembly
process does it; the estimate (the fallback, and what `NARRATE_ALIGNMENT=false` gives) and the mapping
to original offsets and sentence cues (`worker.timing`) are timed beside it. Synthesis is not counted.
Prints the figures and writes bench/results/alignment_cost.json with the machine.
Run: .venv/bin/python bench/alignment_cost.py [--minutes 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.jobs import JobCreate  # noqa: E402
from worker.alignment import Aligner, Method, estimate  # noqa: E402
from worker.engines.piper_engine import PiperEngine  # noqa: E402
from worker.planning import build_plan  # noqa: E402
from worker.timing import FileTiming, input_timing  # noqa: E402

SAMPLE = ROOT / "examples" / "pride-and-prejudice-ch1.txt"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=4.0, help="audio to synthesise and align")
    args = parser.parse_args()
    text = SAMPLE.read_text(encoding="utf-8").strip()
    spec = JobCreate.model_validate({"inputs": [{"text": text}]})
    plan = build_plan(spec, budget_seconds=25.0, chars_per_second=14.0, streams=1, voice_default="joe")
    engine = PiperEngine.load()
    from piper import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.667, noise_w_scale=0.8)
    chunks, audio = [], []
    total = 0.0
    for planned in plan.inputs[0]:
        pieces = [c.audio_float_array for c in engine._voice.synthesize(planned.chunk.text, config)]
        clip = np.concatenate(pieces).astype(np.float32)
        chunks.append(planned)
        audio.append(clip)
        total += len(clip) / engine.sample_rate
        if total >= args.minutes * 60:
            break
    sr = engine.sample_rate
    aligner = Aligner()
    aligner.align(audio[0][: sr * 2], sr, chunks[0].chunk.text.split(".")[0])  # load the model: not counted
    # CPU seconds of this process: what alignment costs a core, whatever else shares the machine.
    started, wall = time.process_time(), time.perf_counter()
    pairs = list(zip(chunks, audio, strict=True))
    alignments = [aligner.align(clip, sr, planned.chunk.text, phones=False) for planned, clip in pairs]
    align_seconds, align_wall = time.process_time() - started, time.perf_counter() - wall
    started = time.process_time()
    for planned, clip in pairs:
        aligner.align(clip, sr, planned.chunk.text, phones=True)
    phones_seconds = time.process_time() - started
    started = time.process_time()
    for planned, clip in zip(chunks, audio, strict=True):
        estimate(clip, sr, planned.chunk.text)
    estimate_seconds = time.process_time() - started
    starts, at = [], 0.0
    for clip in audio:
        starts.append(at)
        at += len(clip) / sr + 0.5
    started = time.process_time()
    timing = FileTiming()
    input_timing(
        timing, input_index=0, input_id="0", original=text, chunks=chunks, alignments=alignments, starts=starts
    )
    mapping_seconds = time.process_time() - started
    per_hour = 3600.0 / total
    results = {
        "benchmark": "alignment_cost",
        "audio_seconds": round(total, 1),
        "chunks": len(chunks),
        "words": len(timing.words),
        "cues": len(timing.sentences),
        "chunks_aligned": sum(a.method is Method.ALIGNED for a in alignments),
        "align_cpu_seconds": round(align_seconds, 2),
        "align_cpu_seconds_per_audio_hour": round(align_seconds * per_hour, 1),
        "align_wall_seconds_per_audio_hour": round(align_wall * per_hour, 1),
        "align_real_time_factor": round(align_seconds / total, 4),
        "align_with_phones_cpu_seconds_per_audio_hour": round(phones_seconds * per_hour, 1),
        "estimate_cpu_seconds_per_audio_hour": round(estimate_seconds * per_hour, 2),
        "mapping_and_cues_cpu_seconds_per_audio_hour": round(mapping_seconds * per_hour, 2),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_average_1min": round(os.getloadavg()[0], 1),
            "note": "one process, one thread; a load above cpu_count means it shared the cores with other work",
        },
    }
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / "alignment_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
