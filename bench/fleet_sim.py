"""A simulated fleet on one machine: what one Redis and one bucket cost per audio hour, and how far they carry.

Worker threads run the real units (plan, speak, assemble: `worker.units_runner.run_token`) with the
instant fake engine of the tests against a Redis server of its own (so nothing else's commands count)
and moto's S3 server; jobs are submitted and polled through the real Flask API in this process. Redis
is measured from the server itself (INFO commandstats, CPU, latencystats p99 per command), storage from
the S3 server's request log. From those: the Redis commands, Redis CPU seconds and storage requests per
audio hour, the API's submissions and polls per second per process, and the fleet one Redis serves.

    .venv/bin/python bench/fleet_sim.py --threads 8 --jobs 40 --chars 6000

The worker side here is one Python process (two cores on the development VM): its own CPU bounds the
throughput, so the capacity figure is Redis' CPU per audio hour scaled to one core, not a measured
saturation point (docs/benchmarks.md says so next to the figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from shared.settings import DEV_KEY, Settings  # noqa: E402

AUTH = {"Authorization": f"Bearer {DEV_KEY}"}
TARGET_GPUS = 100
AUDIO_S_PER_S_PER_GPU = 3000.0
# S3 Standard list prices, us-east-1 (aws.amazon.com/s3/pricing, 2026): per 1,000 requests.
PRICE_WRITE = 0.005  # PUT, COPY, POST, LIST
PRICE_READ = 0.0004  # GET, HEAD and the rest (DELETE is free)
GPU_HOUR_PRICE = 2.50  # an H100-class on-demand hour at the large clouds' lower end, for the ratio only


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "redis": subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip(),
        "commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def start_redis(root: Path) -> tuple[subprocess.Popen, int]:
    from tests.support.processes import free_port

    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
         "--appendfsync", "everysec", "--dir", str(root), "--latency-tracking", "yes"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def redis_counters(client: redis.Redis) -> dict[str, float]:
    stats = client.info("commandstats")
    cpu = client.info("cpu")
    return {
        "calls": float(sum(v["calls"] for v in stats.values())),
        "cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
    }


def p99s(client: redis.Redis) -> dict[str, float]:
    """p99 latency (microseconds, inside Redis) of the ten most called commands."""
    stats = client.info("commandstats")
    top = sorted(stats, key=lambda k: -stats[k]["calls"])[:10]
    found: dict[str, float] = {}
    for key, values in client.info("latencystats").items():
        name = key.removeprefix("latency_percentiles_usec_")
        if f"cmdstat_{name}" in top and isinstance(values, dict):
            found[name] = float(values.get("p99", values.get("p99.000", float("nan"))))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8, help="worker threads (units at once)")
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--chars", type=int, default=6000, help="characters per job")
    parser.add_argument("--polls", type=int, default=2000)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "fleet_sim.json"))
    args = parser.parse_args()

    from api import create_app
    from shared.services import Services
    from tests.support.fake_engine import FakeEngine
    from tests.support.s3 import start_s3_server
    from worker.runtime import Runtime
    from worker.units_runner import run_token

    root = Path(tempfile.mkdtemp(prefix="fleet-sim-"))
    requests_seen: list[str] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            requests_seen.append(record.getMessage())

    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(Count())
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
    proc, port = start_redis(root)
    server, stop_s3 = start_s3_server()
    os.environ.update({k: v for k, v in server.env.items() if k.startswith("AWS_")})
    bucket = server.create_bucket()
    prefix = f"sim-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{port}/0", key_prefix=prefix, queue_name=f"{prefix}-q", dev_mode=True,
        storage_url=f"s3://{bucket}", s3_endpoint_url=server.endpoint_url, s3_region="us-east-1",
        rate_limit="1000000 per minute", read_rate_limit="10000000 per minute", worker_metrics_port=0,
        assembly_processes=0,
    )  # fmt: skip
    client = redis.Redis(port=port)
    idle = redis_counters(client)
    time.sleep(5)
    idle_cpu_per_s = (redis_counters(client)["cpu"] - idle["cpu"]) / 5  # serverCron, AOF: not the work's
    try:
        app = create_app(settings)
        app.testing = True
        api = app.test_client()
        text = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
                "must be in want of a wife. ") * (args.chars // 110 + 1)  # fmt: skip
        body = {"inputs": [{"id": "t", "text": text[: args.chars]}], "format": "mp3"}
        requests_seen.clear()
        before = redis_counters(client)
        started = time.perf_counter()
        ids = []
        for _ in range(args.jobs):
            response = api.post("/v1/jobs", json=body, headers=AUTH)
            assert response.status_code == 202, response.get_json()
            ids.append(response.get_json()["id"])
        submit_wall = time.perf_counter() - started
        after_submit = redis_counters(client)

        started = time.perf_counter()
        for k in range(args.polls):
            assert api.get(f"/v1/jobs/{ids[k % len(ids)]}", headers=AUTH).status_code == 200
        poll_wall = time.perf_counter() - started
        after_polls = redis_counters(client)

        services = Services.from_settings(settings, client_name="fleet-sim")
        outcomes: list[str] = []

        def work() -> None:
            runtime = Runtime(services, FakeEngine())
            idle = 0
            while idle < 3:
                outcome = run_token(runtime)
                if outcome == "idle":
                    idle += 1
                    time.sleep(0.05)
                else:
                    idle = 0
                    outcomes.append(outcome)

        requests_seen.clear()
        started = time.perf_counter()
        threads = [threading.Thread(target=work) for _ in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        work_wall = time.perf_counter() - started
        after_work = redis_counters(client)
        storage_lines = [line.split('"')[1] for line in requests_seen if line.count('"') >= 2]
        jobs = [api.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json() for job_id in ids]
        assert all(job["status"] == "succeeded" for job in jobs), {job["status"] for job in jobs}
        audio = sum(job["progress"]["audio_seconds"] for job in jobs)
        latencies = p99s(client)
        stats = client.info("commandstats")
        by_command = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    finally:
        proc.terminate()
        proc.wait(10)
        stop_s3()

    hours = audio / 3600
    writes = [x for x in storage_lines if x.split(" ")[0] in ("PUT", "POST") or "list-type" in x]
    deletes = [x for x in storage_lines if x.split(" ")[0] == "DELETE" or "?delete" in x]
    reads = [x for x in storage_lines if x not in writes and x not in deletes]
    work_calls = after_work["calls"] - after_polls["calls"]
    submit_calls = after_submit["calls"] - before["calls"]
    cpu_work = after_work["cpu"] - after_polls["cpu"] - idle_cpu_per_s * work_wall
    cpu_submit = after_submit["cpu"] - before["cpu"] - idle_cpu_per_s * submit_wall
    poll_calls = after_polls["calls"] - after_submit["calls"]
    cpu_per_ah = (cpu_work + cpu_submit) / hours
    calls_per_ah = (work_calls + submit_calls) / hours
    ah_per_s_per_gpu = AUDIO_S_PER_S_PER_GPU / 3600
    storage_cost_per_ah = (len(writes) * PRICE_WRITE + len(reads) * PRICE_READ) / 1000 / hours
    result = {
        "machine": machine(),
        "args": {k: v for k, v in vars(args).items() if k != "out"},  # the output path is this machine's
        "audio_seconds": round(audio, 1),
        "units_run": len(outcomes),
        "wall_seconds": {"submit": round(submit_wall, 3), "polls": round(poll_wall, 3), "work": round(work_wall, 3)},
        "api_per_process": {
            "submissions_per_s": round(args.jobs / submit_wall, 1),
            "status_polls_per_s": round(args.polls / poll_wall, 1),
            "redis_calls_per_submission": round(submit_calls / args.jobs, 1),
            "redis_calls_per_poll": round(poll_calls / args.polls, 2),
        },
        "redis": {
            "calls_per_audio_hour": round(calls_per_ah),
            "cpu_seconds_per_audio_hour": round(cpu_per_ah, 4),
            "calls_per_s_during_work": round(work_calls / work_wall),
            "cpu_share_during_work": round(cpu_work / work_wall, 3),
            "idle_cpu_per_s": round(idle_cpu_per_s, 4),
            "p99_usec_top_commands": latencies,
            "calls_by_command_whole_run": dict(sorted(by_command.items(), key=lambda kv: -kv[1])[:12]),
            "audio_hours_per_redis_cpu_second": round(1 / cpu_per_ah, 2),
            "gpus_per_redis_at_70pct_of_a_core": round(0.7 / (cpu_per_ah * ah_per_s_per_gpu), 1),
            "calls_per_s_for_target_fleet": round(calls_per_ah * ah_per_s_per_gpu * TARGET_GPUS),
        },
        "storage": {
            "writes_per_audio_hour": round(len(writes) / hours, 1),
            "checkpoint_writes_per_audio_hour": round(sum("/checkpoints/" in x for x in writes) / hours, 1),
            "result_writes_per_audio_hour": round(sum("/results/" in x for x in writes) / hours, 1),
            "reads_per_audio_hour": round(len(reads) / hours, 1),
            "deletes_per_audio_hour": round(len(deletes) / hours, 1),
            "request_cost_usd_per_audio_hour": round(storage_cost_per_ah, 6),
            "gpu_cost_usd_per_audio_hour": round(GPU_HOUR_PRICE / AUDIO_S_PER_S_PER_GPU, 6),
            "share_of_gpu_cost_per_audio_hour": round(
                storage_cost_per_ah / (GPU_HOUR_PRICE / AUDIO_S_PER_S_PER_GPU), 4
            ),
            "share_of_one_gpu_hour": round(storage_cost_per_ah / GPU_HOUR_PRICE, 6),
        },
    }
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
