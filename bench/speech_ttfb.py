"""Time to first audio byte of `POST /v1/audio/speech`, streamed, beside the whole-file time.

Starts the local stack (gunicorn API with 2 workers, one Celery worker with the configured engine,
Redis if none answers), sends one warm-up request (not counted), then `--runs` times, alternating, a
1,000-character passage as a streamed MP3 (time to the first audio byte and to the last) and as a
whole FLAC file (time to the complete answer, which the API sends once the job has succeeded).
Medians with min and max go to bench/results/speech_ttfb-<engine>.json with the machine they ran on
(and its load average, and `NARRATE_INTERACTIVE_FIRST_CHUNK_CHARS`: 0 measures without a short first
chunk).

    .venv/bin/python bench/speech_ttfb.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack.stack import DEV_KEY, LocalStack  # noqa: E402

PASSAGE = " ".join(
    f"Chapter {n} began on a grey morning, when the harbour bells rang out across the water and the "
    "fishermen hauled their nets ashore, talking quietly about the weather that was coming in from the west."
    for n in range(1, 7)
)[:1000]


def speak(url: str, fmt: str) -> tuple[float, float]:
    """(seconds to the first audio byte, seconds to the last) of one request."""
    started = time.perf_counter()
    first = None
    body = {"model": "tts-1", "voice": "alloy", "input": PASSAGE, "response_format": fmt}
    with requests.post(
        f"{url}/v1/audio/speech", json=body, headers={"Authorization": f"Bearer {DEV_KEY}"}, stream=True, timeout=600
    ) as response:
        response.raise_for_status()
        for part in response.iter_content(chunk_size=None):
            if part and first is None:
                first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--port", type=int, default=8098)
    args = parser.parse_args()
    engine = os.environ.get("NARRATE_ENGINE", "piper")
    streamed: list[tuple[float, float]] = []
    whole: list[tuple[float, float]] = []
    load_before = round(os.getloadavg()[0], 2)  # a shared machine: other work slows every figure
    with tempfile.TemporaryDirectory(prefix="narrate-bench-") as tmp:
        env = {
            "NARRATE_STORAGE_URL": f"file://{tmp}/storage",
            "NARRATE_KEY_PREFIX": f"narrate-bench-{os.getpid()}",
            "NARRATE_QUEUE_NAME": f"narrate-bench-{os.getpid()}",
            "NARRATE_WORKER_METRICS_PORT": "0",
            "NARRATE_RATE_LIMIT": "10000 per minute",
        }
        with LocalStack(port=args.port, api_workers=2, env=env, log_dir=Path(tmp) / "logs", echo=False) as stack:
            speak(stack.url, "mp3")  # warm-up: not counted
            for number in range(1, args.runs + 1):
                streamed.append(speak(stack.url, "mp3"))
                whole.append(speak(stack.url, "flac"))
                print(
                    f"run {number}: streamed first byte {streamed[-1][0]:.2f} s, last {streamed[-1][1]:.2f} s; "
                    f"whole file {whole[-1][1]:.2f} s"
                )
    first = summary([s[0] for s in streamed])
    whole_file = summary([w[1] for w in whole])
    print(
        f"time to first audio byte (streamed): median {first['median']:.2f} s "
        f"(min {first['min']:.2f}, max {first['max']:.2f})"
    )
    print(
        f"whole file: median {whole_file['median']:.2f} s; "
        f"first byte at {first['median'] / whole_file['median']:.2f} of it"
    )
    result = {
        "benchmark": "speech_ttfb",
        "engine": engine,
        "characters": len(PASSAGE),
        "runs": args.runs,
        "streamed_mp3_first_byte_seconds": first,
        "streamed_mp3_last_byte_seconds": summary([s[1] for s in streamed]),
        "whole_flac_seconds": whole_file,
        "first_byte_over_whole_file": round(first["median"] / whole_file["median"], 3),
        "interactive_first_chunk_chars": int(os.environ.get("NARRATE_INTERACTIVE_FIRST_CHUNK_CHARS", "60")),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "gpu": None,
            "load_average_1m_before_and_after": [load_before, round(os.getloadavg()[0], 2)],
        },
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out = REPO / "bench" / "results" / f"speech_ttfb-{engine}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
