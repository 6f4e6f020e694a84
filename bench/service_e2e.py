"""End-to-end narration benchmark: the sample chapter through the real API, Redis queue and worker.

Starts the local stack (gunicorn API, one Celery worker with the configured engine, Redis if none
answers), submits one short warm-up job (its worker was still starting; not counted) and then the chapter
`--runs` times one after another, and reports for each run the audio
seconds, wall seconds from submission to `succeeded`, end-to-end RTF, and the share of wall time spent
outside synthesis (queueing, chunking, checkpoints, stitching, loudness, encoding, upload, polling).
Figures go to bench/results/service_e2e-<engine>.json with the machine they ran on.

    .venv/bin/python bench/service_e2e.py [--runs 3] [--format mp3] [FILE]
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client.api import ApiClient  # noqa: E402
from devstack.stack import DEV_KEY, LocalStack  # noqa: E402


def run_once(client: ApiClient, text: str, fmt: str) -> dict:
    submitted = time.perf_counter()
    job = client.submit([{"id": "chapter", "text": text}], format=fmt)
    while job["status"] not in ("succeeded", "failed", "canceled"):
        time.sleep(0.1)
        job = client.get_job(job["id"])
    wall = time.perf_counter() - submitted
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['status']}: {job['error']}")
    audio = job["result"]["duration_seconds"]
    synthesis = job["rtf"] * job["progress"]["audio_seconds"]
    started = datetime.fromisoformat(job["started_at"])
    created = datetime.fromisoformat(job["created_at"])
    return {
        "audio_seconds": audio,
        "wall_seconds": round(wall, 3),
        "end_to_end_rtf": round(wall / audio, 4),
        "synthesis_seconds": round(synthesis, 3),
        "outside_synthesis_share": round((wall - synthesis) / wall, 4),
        "queue_wait_seconds": round((started - created).total_seconds(), 3),
        "chunks": job["progress"]["chunks_total"],
        "worker_phases": job["timings"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", type=Path, default=REPO / "examples" / "pride-and-prejudice-ch1.txt")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--format", default="mp3")
    parser.add_argument("--port", type=int, default=8097)
    args = parser.parse_args()
    text = args.file.read_text(encoding="utf-8")
    engine = os.environ.get("NARRATE_ENGINE", "piper")
    with tempfile.TemporaryDirectory(prefix="narrate-bench-") as tmp:
        env = {
            "NARRATE_STORAGE_URL": f"file://{tmp}/storage",
            "NARRATE_KEY_PREFIX": f"narrate-bench-{os.getpid()}",
            "NARRATE_QUEUE_NAME": f"narrate-bench-{os.getpid()}",
            "NARRATE_WORKER_METRICS_PORT": "0",
        }
        stack = LocalStack(port=args.port, env=env, log_dir=Path(tmp) / "logs", echo=False)
        with stack, ApiClient(stack.url, DEV_KEY) as client:
            run_once(client, "Warming up the worker.", args.format)  # not counted: engine start-up is separate
            runs = [run_once(client, text, args.format) for _ in range(args.runs)]
    for number, run in enumerate(runs, 1):
        print(
            f"run {number}: audio {run['audio_seconds']:.1f} s, wall {run['wall_seconds']:.2f} s, "
            f"end-to-end RTF {run['end_to_end_rtf']:.3f}, synthesis {run['synthesis_seconds']:.2f} s, "
            f"outside synthesis {100 * run['outside_synthesis_share']:.1f}% "
            f"(queue wait {run['queue_wait_seconds']:.2f} s)"
        )
        print("        worker phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in run["worker_phases"].items()))
    share = statistics.median(run["outside_synthesis_share"] for run in runs)
    print(f"median outside-synthesis share: {100 * share:.1f}% (target < 10%)")
    result = {
        "benchmark": "service_e2e",
        "engine": engine,
        "text": args.file.name,
        "characters": len(text),
        "format": args.format,
        "runs": runs,
        "median_outside_synthesis_share": share,
        "median_end_to_end_rtf": statistics.median(run["end_to_end_rtf"] for run in runs),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "gpu": None,
        },
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out = REPO / "bench" / "results" / f"service_e2e-{engine}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
