"""A whole book through assembly and encoding: 2,000,000 characters (about 40 hours) of synthetic speech
into one ACX-mastered M4B with chapter marks, peak RSS and time.

The book is the public-domain chapter of tests/shared/text/data repeated into 40 chapters; the job is
planned as the worker plans it (`worker.planning.build_plan`), and each chunk's audio is speech-like
noise-modulated harmonics as long as the planner estimated (at 22.05 kHz, the engine's rate), so only
synthesis is left out. `worker.assembly.build_file` then stitches, resamples to 44.1 kHz, masters and
measures chapter by chapter, and `upload_file` encodes the M4B (64 kb/s: a 192 kb/s 40-hour file is
3.4 GB) into a local storage directory. Prints seconds per phase and the process's peak RSS, and writes
bench/results/book_assembly-<chars>.json with the machine.

Run: .venv/bin/python bench/book_assembly.py [--chars 2000000] [--chapters 40] [--format m4b]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.jobs import JobCreate  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.storage import LocalStorage  # noqa: E402
from worker.assembly import Mastering, build_file, outputs_for, upload_file  # noqa: E402
from worker.phases import Phases  # noqa: E402
from worker.planning import PlannedChunk, build_plan  # noqa: E402

SAMPLE = ROOT / "tests" / "shared" / "text" / "data" / "pride-and-prejudice-ch1.txt"
SR = 22050


def book_inputs(chars: int, chapters: int) -> list[dict[str, str]]:
    chapter_text = SAMPLE.read_text(encoding="utf-8").strip()
    per_chapter = chars // chapters
    inputs = []
    for number in range(1, chapters + 1):
        copies = per_chapter // (len(chapter_text) + 2) + 1
        text = "\n\n".join(chapter_text for _ in range(copies))[:per_chapter]
        inputs.append({"id": f"ch{number:03d}", "title": f"Chapter {number}", "text": text})
    return inputs


def bed(seconds: float = 60.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = round(seconds * SR)
    t = np.arange(n) / SR
    f0 = 130 + 25 * np.sin(2 * np.pi * 0.37 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 4.1 * t), 0, None)
    return (0.12 * envelope * (voiced + 0.4 * rng.standard_normal(n))).astype(np.float32)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chars", type=int, default=2_000_000)
    parser.add_argument("--chapters", type=int, default=40)
    parser.add_argument("--format", default="m4b")
    parser.add_argument("--bitrate", type=int, default=64)
    args = parser.parse_args()
    spec = JobCreate.model_validate(
        {
            "inputs": book_inputs(args.chars, args.chapters),
            "format": args.format,
            "mastering": "acx",
            "bitrate_kbps": args.bitrate,
            "book": {"title": "Benchmark Book", "author": "Jane Austen"},
        }
    )
    settings = Settings()
    started = time.perf_counter()
    plan = build_plan(
        spec, budget_seconds=25.0, chars_per_second=settings.chars_per_second, streams=1, voice_default="x"
    )
    plan_seconds = time.perf_counter() - started
    source = bed()

    def load(planned: PlannedChunk) -> np.ndarray:
        n = min(round(planned.chunk.est_seconds * SR), source.shape[0])
        offset = (planned.chunk.index * 7919) % (source.shape[0] - n + 1)
        return source[offset : offset + n].copy()

    (output,) = outputs_for("bench", spec)
    phases = Phases()
    with tempfile.TemporaryDirectory() as directory:
        storage = LocalStorage(directory)
        started = time.perf_counter()
        rendered = build_file(
            output, plan, load, sample_rate=SR, file_rate=spec.sample_rate or SR,
            mastering=Mastering.from_settings(settings), input_ids=spec.input_ids(), phases=phases,
        )  # fmt: skip
        build_seconds = time.perf_counter() - started
        build_rss = rss_mib()
        duration = rendered.duration_seconds
        report = rendered.report.to_dict() if rendered.report else None
        started = time.perf_counter()
        stored = upload_file(storage, "r/", output, rendered, spec.format, spec.file_tags(), phases)
        upload_seconds = time.perf_counter() - started
    results = {
        "benchmark": "book_assembly",
        "characters": spec.total_chars(),
        "chapters": len(spec.inputs),
        "chunks": len(plan.all()),
        "format": args.format,
        "bitrate_kbps": args.bitrate,
        "sample_rate": spec.sample_rate,
        "audio_hours": round(duration / 3600, 2),
        "plan_seconds": round(plan_seconds, 2),
        "build_file_seconds": round(build_seconds, 1),
        "encode_and_upload_seconds": round(upload_seconds, 1),
        "phases_seconds": phases.rounded(),
        "max_rss_mib_after_build": round(build_rss, 1),
        "max_rss_mib": round(rss_mib(), 1),
        "file_mib": round(stored.bytes / 2**20, 1),
        "mastering_passed": report["passed"] if report else None,
        "mastering": report,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
    }
    print(json.dumps({k: v for k, v in results.items() if k != "mastering"}, indent=2))
    out = ROOT / "bench" / "results" / f"book_assembly-{args.chars}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
