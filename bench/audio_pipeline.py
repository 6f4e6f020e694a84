"""Time the audio half of a long narration: one hour of chunks -> trimmed, checked, stitched,
loudness-normalised, MP3.

The text side chunks a 500,000-character book (Pride and Prejudice chapter 1, repeated) with
`shared.text.chunking.chunk_text`; the chunks' estimated durations and boundaries (pauses from the
default settings) shape one hour of synthetic speech-like audio at 22.05 kHz (noise-modulated
harmonics at syllable rate, framed by silence as a TTS model returns it). Prints seconds per step and
peak memory, and writes bench/results/audio_pipeline.json with the machine.
Run: .venv/bin/python bench/audio_pipeline.py
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.audio.encode import encode  # noqa: E402
from shared.audio.loudness import integrated_loudness, normalize_loudness  # noqa: E402
from shared.audio.quality import assess_chunk  # noqa: E402
from shared.audio.stitch import stitch  # noqa: E402
from shared.audio.trim import trim_silence  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.text.chunking import Boundary, chunk_text  # noqa: E402

SAMPLE = ROOT / "tests" / "shared" / "text" / "data" / "pride-and-prejudice-ch1.txt"
TARGET_CHARS = 500_000
SR = 22050
AUDIO_SECONDS = 3600.0


def build_book(target: int = TARGET_CHARS) -> str:
    chapter = SAMPLE.read_text(encoding="utf-8").strip()
    copies = target // (len(chapter) + 2) + 1
    return "\n\n".join(chapter for _ in range(copies))[:target]


def speech_bed(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like signal: harmonics of a wandering f0 plus noise under a ~4 Hz syllable envelope."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SR)
    t = np.arange(n) / SR
    f0 = 130 + 25 * np.sin(2 * np.pi * 0.37 * t) + 10 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 4.1 * t) + 0.3 * np.sin(2 * np.pi * 0.9 * t), 0, None)
    return (0.12 * envelope * (voiced + 0.4 * rng.standard_normal(n))).astype(np.float32)


def synthesise(durations: list[float], seed: int = 1) -> list[np.ndarray]:
    """Chunks cut from a 60 s bed at random offsets, with silence around them and varying level."""
    rng = np.random.default_rng(seed)
    bed = speech_bed(60.0)
    chunks = []
    for seconds in durations:
        n = min(round(seconds * SR), bed.shape[0] - 1)
        offset = int(rng.integers(0, bed.shape[0] - n))
        lead, tail = (round(rng.uniform(0.05, 0.4) * SR) for _ in range(2))
        chunk = np.zeros(lead + n + tail, dtype=np.float32)
        chunk[lead : lead + n] = bed[offset : offset + n] * np.float32(rng.uniform(0.6, 1.4))
        chunks.append(chunk)
    return chunks


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def timed(name: str, results: dict, work):
    """Seconds of one step and the process's peak RSS after it (a high-water mark, so it only grows).

    tracemalloc is left off: it slows Python-heavy steps (chunking) several times over.
    """
    gc.collect()
    started = time.perf_counter()
    value = work()
    results[f"{name}_seconds"] = round(time.perf_counter() - started, 3)
    results[f"{name}_max_rss_mib_after"] = round(rss_mib(), 1)
    rss = results[f"{name}_max_rss_mib_after"]
    print(f"{name:>10}: {results[f'{name}_seconds']:7.3f} s, peak RSS {rss} MiB")
    return value


def main() -> None:
    settings = Settings()
    pause_ms = {
        Boundary.CLAUSE: settings.pause_clause_ms,
        Boundary.SENTENCE: settings.pause_sentence_ms,
        Boundary.PARAGRAPH: settings.pause_paragraph_ms,
        Boundary.END: settings.pause_chapter_ms,
    }
    book = build_book()
    chunk_text("Warm up: Mr. Smith paid $5.")
    results: dict = {"benchmark": "audio_pipeline", "characters": len(book), "sample_rate": SR}
    chunks = timed("chunk_text", results, lambda: chunk_text(book))
    results["text_chunks"] = len(chunks)

    # One hour of audio: the first chunks of the book, each as long as the chunker estimated.
    used, total = [], 0.0
    for chunk in chunks:
        if total >= AUDIO_SECONDS:
            break
        used.append(chunk)
        total += chunk.est_seconds
    raw = synthesise([c.est_seconds for c in used])
    pauses = [pause_ms[c.boundary] for c in used[:-1]]
    results["audio_chunks"] = len(raw)
    results["mean_chunk_seconds"] = round(total / len(used), 2)

    trimmed = timed("trim", results, lambda: [trim_silence(a, SR) for a in raw])
    assessments = timed(
        "assess",
        results,
        lambda: [assess_chunk(a, SR, expected_seconds=c.est_seconds) for a, c in zip(trimmed, used, strict=True)],
    )
    results["chunks_flagged"] = sum(not a.ok for a in assessments)
    stitched = timed("stitch", results, lambda: stitch(trimmed, pauses, SR))
    raw.clear()  # the chunks are no longer needed once stitched
    trimmed.clear()
    results["audio_seconds"] = round(stitched.duration_seconds, 1)
    normalized = timed("normalize", results, lambda: normalize_loudness(stitched.audio, SR))
    results["loudness_lufs_after"] = round(float(integrated_loudness(normalized, SR)), 2)
    results["peak_dbfs_after"] = round(float(20 * np.log10(np.abs(normalized).max())), 2)
    mp3 = timed("encode_mp3", results, lambda: encode(normalized, SR, "mp3"))
    results["mp3_mib"] = round(len(mp3) / 2**20, 1)
    steps = ("trim", "assess", "stitch", "normalize", "encode_mp3")
    results["audio_steps_total_seconds"] = round(sum(results[f"{s}_seconds"] for s in steps), 3)
    results["max_rss_mib"] = round(rss_mib(), 1)
    results["machine"] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / "audio_pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
