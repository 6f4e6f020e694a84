"""Time text-to-chunks on a 500,000-character book (the Pride and Prejudice sample, repeated).

Prints seconds and peak Python memory, and writes bench/results/text_chunking.json with the machine.
Run: .venv/bin/python bench/text_chunking.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.text.chunking import chunk_text, split_streams  # noqa: E402
from shared.text.normalize import normalize  # noqa: E402

SAMPLE = ROOT / "tests" / "shared" / "text" / "data" / "pride-and-prejudice-ch1.txt"
TARGET_CHARS = 500_000


def build_book(target: int = TARGET_CHARS) -> str:
    chapter = SAMPLE.read_text(encoding="utf-8").strip()
    copies = target // (len(chapter) + 2) + 1
    return "\n\n".join(chapter for _ in range(copies))[:target]


def best_of(runs: int, work) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    book = build_book()
    chunk_text("Warm up: Mr. Smith paid $5 at 5 p.m. on March 14, 2024.")  # imports, regex compilation
    normalize_s, _ = best_of(3, lambda: normalize(book))
    chunk_s, chunks = best_of(3, lambda: chunk_text(book))
    streams_s, _ = best_of(3, lambda: split_streams(chunks, 8))
    tracemalloc.start()
    chunk_text(book)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {
        "benchmark": "text_chunking",
        "characters": len(book),
        "chunks": len(chunks),
        "normalize_seconds": round(normalize_s, 3),
        "chunk_text_seconds": round(chunk_s, 3),
        "split_streams_8_seconds": round(streams_s, 4),
        "peak_python_memory_mib": round(peak / 2**20, 1),
        "runs": "best of 3",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    print(
        f"{len(book):,} chars -> {len(chunks):,} chunks: chunk_text {chunk_s:.2f} s "
        f"(normalize {normalize_s:.2f} s), split_streams {streams_s * 1000:.1f} ms, "
        f"peak memory {peak / 2**20:.1f} MiB"
    )
    out = ROOT / "bench" / "results" / "text_chunking.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
