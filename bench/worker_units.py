"""Units, leases and checkpoints on the real stack: the in-process API (Flask test client), the real
Redis, real Celery worker processes (thread pool, one engine each) with the tiny KaniTTS2 on CPU (built
here from configs, nothing downloaded), real storage.

Scenarios (`--only a,b,c,d`), each against a baseline of the same run:
  a  32 concurrent one-line jobs through one worker process vs the same 32 jobs one at a time:
     aggregate audio seconds per second (target >= 5x).
  b  one long job on two worker processes vs one (one torch thread each): wall time (target <= 0.7x).
  c  SIGKILL of a worker's whole process group while it holds units of several jobs: seconds from the
     kill to the first chunk generated after another worker took one of those units over (target <= 2
     lease periods); every job still succeeds with exactly one result file; chunks generated again.
  d  storage writes per 60 s of audio of a long job (moto's S3 server records every request): target
     <= 1 at the default checkpoint interval.

Figures (medians with min and max over `--repeats`) go to bench/results/worker_units.json with the
machine they ran on.

    .venv/bin/python bench/worker_units.py [--only a,b,c,d] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from shared.settings import DEV_KEY, Settings  # noqa: E402
from shared.storage_keys import result_prefix  # noqa: E402

AUTH = {"Authorization": f"Bearer {DEV_KEY}"}
FRAME_SECONDS = 1764 / 22050
LINES = [
    "The storm passed before dawn.",
    "Morning light filled the valley.",
    "Birds sang in the old oak tree.",
    "The river ran high and brown.",
    "By noon the road was dry again.",
    "She closed the book and smiled.",
    "A cart rolled slowly into town.",
    "Nobody had seen the letter yet.",
]
FINAL = {"succeeded", "failed", "canceled"}


def figures(values: list[float], digits: int = 3) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def machine() -> dict[str, Any]:
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:  # no git (the GPU machine): the caller names the commit
        commit = ""
    commit = commit or os.environ.get("NARRATE_COMMIT", "")
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],  # a shared machine: say how shared
    }


def build_tiny_models(root: Path) -> dict[str, str]:
    """The tests' tiny KaniTTS2 LM, NanoCodec and speaker embedder (random weights, built from configs)."""
    from tests.fixtures.nanocodec_tiny import build_tiny_nanocodec
    from tests.fixtures.wavlm_tiny import build_tiny_speaker_embedder
    from worker.engines.kanitts2.synthetic import build_tiny_kanitts2

    return {
        "NARRATE_ENGINE": "kanitts2",
        "NARRATE_KANITTS2_MODEL": str(build_tiny_kanitts2(root / "lm")),
        "NARRATE_KANITTS2_CODEC": str(build_tiny_nanocodec(root / "codec.nemo")),
        "NARRATE_KANITTS2_SPEAKER_EMBEDDER": str(build_tiny_speaker_embedder(root / "wavlm")),
        "NARRATE_KANITTS2_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


class Stack:
    """One scenario's deployment: its own key prefix, queue and storage; workers started on demand."""

    def __init__(
        self, root: Path, models: dict[str, str], redis_url: str, *, use_api: bool = True, **extra: str
    ) -> None:
        prefix = f"narrate-bench-{uuid.uuid4().hex[:8]}"
        self.root = root
        self.redis_url = redis_url
        self.env = {
            **models,
            "NARRATE_REDIS_URL": redis_url,
            "NARRATE_KEY_PREFIX": prefix,
            "NARRATE_QUEUE_NAME": f"{prefix}-q",
            "NARRATE_VOICE_QUEUE_NAME": f"{prefix}-voices",
            "NARRATE_WEBHOOK_QUEUE_NAME": f"{prefix}-webhooks",
            "NARRATE_STORAGE_URL": f"file://{root / prefix}",
            "NARRATE_DEV_MODE": "1",
            "NARRATE_WORKER_METRICS_PORT": "0",
            # The scheduler is measured, not the per-audio-second CPU work beside it (speech recognition
            # and forced alignment, measured in bench/qc_cost.py and bench/alignment_cost.py).
            "NARRATE_QC_ASR": "off",
            "NARRATE_ALIGNMENT": "false",
            **extra,
        }
        self.workers: list[Worker] = []
        self.settings = self._settings()
        self._services: Any = None
        self.client: Any = None
        if use_api:  # else jobs are stored and queued as the API does, without its packages (GPU machine)
            from api import create_app

            app = create_app(self.settings)
            app.testing = True
            self.client = app.test_client()

    def _settings(self) -> Settings:
        fields = {k.removeprefix("NARRATE_").lower(): v for k, v in self.env.items() if k.startswith("NARRATE_")}
        return Settings(**fields)

    def services(self) -> Any:
        if self._services is None:
            from shared.services import Services

            self._services = Services.from_settings(self.settings, client_name="narrate-bench")
        return self._services

    def start_worker(self, **extra: str) -> Worker:
        worker = Worker(self, self.root / f"worker-{len(self.workers)}.log", {**self.env, **extra})
        self.workers.append(worker)
        return worker.wait_ready()

    def submit(self, body: dict[str, Any]) -> str:
        if self.client is None:
            from shared.jobs import JobCreate

            spec = JobCreate.model_validate(body)
            job_id, _ = self.services().jobs.create("dev", spec, body_hash=uuid.uuid4().hex)
            self.services().enqueue_job(job_id)
            return job_id
        response = self.client.post("/v1/jobs", json=body, headers=AUTH)
        if response.status_code != 202:
            raise RuntimeError(f"submit: {response.status_code} {response.get_json()}")
        return response.get_json()["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        if self.client is None:
            return self.services().jobs.view(job_id).model_dump(mode="json")
        return self.client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()

    def wait(self, ids: list[str], timeout: float = 900.0) -> list[dict[str, Any]]:
        deadline = time.time() + timeout
        pending = set(ids)
        done: dict[str, dict[str, Any]] = {}
        while pending:
            if time.time() > deadline:
                raise TimeoutError(f"{len(pending)} jobs not finished:\n{self.logs()}")
            for job_id in list(pending):
                # The status alone (one HGET), the whole view once: polling 32 views every 50 ms would
                # cost the worker a good part of a core on this 2-core machine.
                status = self.services().jobs.status(job_id)
                if status is not None and status.value in FINAL:
                    done[job_id] = self.job(job_id)
                    pending.discard(job_id)
            if pending:
                time.sleep(0.05)
        failed = [job for job in done.values() if job["status"] != "succeeded"]
        if failed:
            raise RuntimeError(f"jobs did not succeed: {[(j['id'], j['status'], j['error']) for j in failed]}")
        return [done[job_id] for job_id in ids]

    def logs(self) -> str:
        return "\n".join(worker.log()[-3000:] for worker in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        client = redis.Redis.from_url(self.redis_url)
        prefix = self.env["NARRATE_KEY_PREFIX"]
        for pattern in (f"{prefix}*", f"_kombu.binding*{prefix}*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)


class Worker:
    """A real `celery worker` process with a thread per unit, leader of its own process group."""

    def __init__(self, stack: Stack, log_path: Path, env: dict[str, str]) -> None:
        self.stack = stack
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        settings = stack.settings
        units = env.get("NARRATE_WORKER_UNITS", str(settings.worker_units))
        queues = f"{settings.queue_name},{settings.voice_queue_name}"
        argv = [
            sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker", "-Q", queues,
            "--pool", "threads", "--concurrency", units, "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-l", "INFO", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h",
        ]  # fmt: skip
        child_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        child_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=child_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 180.0) -> Worker:
        client = redis.Redis.from_url(self.stack.redis_url)
        engine_key = f"{self.stack.settings.key_prefix}:engine"
        client.delete(engine_key)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if client.exists(engine_key) and b"ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a machine that dies would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if not self._log.closed:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@contextmanager
def stack(root: Path, models: dict[str, str], redis_url: str, *, use_api: bool = True, **extra: str) -> Iterator[Stack]:
    deployment = Stack(root, models, redis_url, use_api=use_api, **extra)
    try:
        yield deployment
    finally:
        deployment.close()


def long_text(paragraphs: int) -> str:
    chapter = (REPO / "examples" / "pride-and-prejudice-ch1.txt").read_text(encoding="utf-8")
    found = [p for p in chapter.split("\n\n") if p.strip()]
    return "\n\n".join(found[i % len(found)] for i in range(paragraphs))


def audio_of(jobs: list[dict[str, Any]]) -> float:
    return sum(job["progress"]["audio_seconds"] for job in jobs)


# --- a: many jobs through one worker process ------------------------------------------------------
def scenario_a(root: Path, models: dict[str, str], redis_url: str, repeats: int, jobs: int) -> dict[str, Any]:
    frames = 40
    extra = {
        "NARRATE_WORKER_UNITS": str(jobs),
        "NARRATE_BATCH_SIZE": str(jobs),
        "NARRATE_KANITTS2_MAX_FRAMES_PER_CHUNK": str(frames),
        "NARRATE_CHUNK_BUDGET_SECONDS": "4",
    }
    bodies = [
        {"inputs": [{"text": LINES[i % len(LINES)]}], "format": "wav", "sampling": {"seed": i}} for i in range(jobs)
    ]
    runs: list[dict[str, float]] = []
    with stack(root, models, redis_url, **extra) as deployment:
        deployment.start_worker()
        deployment.wait([deployment.submit(bodies[0])])  # warm-up: not counted
        for _ in range(repeats):
            started = time.perf_counter()
            one_by_one = [deployment.wait([deployment.submit(body)])[0] for body in bodies]
            sequential = time.perf_counter() - started
            started = time.perf_counter()
            together = deployment.wait([deployment.submit(body) for body in bodies])
            concurrent = time.perf_counter() - started
            run = {
                "sequential_seconds": sequential,
                "concurrent_seconds": concurrent,
                "sequential_audio_per_second": audio_of(one_by_one) / sequential,
                "concurrent_audio_per_second": audio_of(together) / concurrent,
            }
            run["speed_up"] = run["concurrent_audio_per_second"] / run["sequential_audio_per_second"]
            runs.append(run)
            print(f"a: one at a time {sequential:.1f} s, {jobs} together {concurrent:.1f} s: {run['speed_up']:.2f}x")
    ceiling = engine_ceiling(models, extra, jobs, repeats)
    return {
        "jobs": jobs,
        "settings": extra,
        "audio_seconds_per_job": round(audio_of(together) / jobs, 3),
        **{name: figures([run[name] for run in runs]) for name in runs[0]},
        "engine_alone": ceiling,
        "target": ">= 5x",
    }


def engine_ceiling(models: dict[str, str], extra: dict[str, str], jobs: int, repeats: int) -> dict[str, Any]:
    """The same lines straight through the engine in this process (same settings, one torch thread): one
    `generate` per line, one after another, against all of them in one batch. No worker can gain more
    than this ratio over one-at-a-time jobs on this machine: it bounds scenario a."""
    import torch

    from worker.engines.base import ChunkRequest, Sampling
    from worker.engines.kanitts2.engine import KaniTTS2Engine

    torch.set_num_threads(1)
    env = {**models, **extra}
    fields = {k.removeprefix("NARRATE_").lower(): v for k, v in env.items() if k.startswith("NARRATE_")}
    engine = KaniTTS2Engine.load(Settings.model_validate(fields))
    requests = [
        ChunkRequest(
            key=f"a/{i}", text=LINES[i % len(LINES)], stream=i, sampling=Sampling(seed=i), expected_seconds=3.0
        )
        for i in range(jobs)
    ]
    list(engine.generate(requests[:1]))  # warm-up
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        single = [r for request in requests for r in engine.generate([request])]
        one_by_one = time.perf_counter() - started
        started = time.perf_counter()
        batched = list(engine.generate(requests))
        together = time.perf_counter() - started
        audio = sum(len(r.audio) for r in single) / engine.sample_rate
        assert len(batched) == len(single) == jobs
        runs.append(
            {"one_at_a_time_seconds": one_by_one, "batched_seconds": together, "speed_up": one_by_one / together}
        )
        print(f"a (engine alone): {audio:.0f} s of audio, one at a time {one_by_one:.1f} s, batched {together:.1f} s")
    return {name: figures([run[name] for run in runs]) for name in runs[0]}


# --- b: one long job, two worker processes vs one -------------------------------------------------
def scenario_b(root: Path, models: dict[str, str], redis_url: str, repeats: int, paragraphs: int) -> dict[str, Any]:
    extra = {
        "NARRATE_WORKER_UNITS": "4",
        "NARRATE_BATCH_SIZE": "4",
        "NARRATE_CHUNK_BUDGET_SECONDS": "8",
        "NARRATE_KANITTS2_MAX_FRAMES_PER_CHUNK": str(int(8 / FRAME_SECONDS * 0.8)),
        "NARRATE_UNIT_AUDIO_SECONDS": "30",
    }
    body = {"inputs": [{"text": long_text(paragraphs)}], "format": "wav", "sampling": {"seed": 7}}
    runs: list[dict[str, float]] = []
    with stack(root, models, redis_url, **extra) as deployment:
        deployment.start_worker()
        deployment.wait([deployment.submit({"inputs": [{"text": LINES[0]}], "format": "wav"})])  # warm-up
        units_total = 0
        for _ in range(repeats):
            started = time.perf_counter()
            [one] = deployment.wait([deployment.submit(body)])
            single = time.perf_counter() - started
            second = deployment.start_worker()
            started = time.perf_counter()
            job_id = deployment.submit(body)
            deployment.wait([job_id])
            double = time.perf_counter() - started
            holders = {unit.holder for unit in deployment.services().units.units_of(job_id) if unit.kind == "speak"}
            units_total = int(deployment.services().jobs.counters(job_id)["units_total"])
            second.stop()
            deployment.workers.remove(second)
            run = {"one_worker_seconds": single, "two_workers_seconds": double, "ratio": double / single}
            run["workers_that_held_units"] = len(holders)
            runs.append(run)
            print(f"b: one worker {single:.1f} s, two {double:.1f} s: {run['ratio']:.2f}x ({len(holders)} held units)")
    return {
        "audio_seconds": round(one["progress"]["audio_seconds"], 1),
        "chunks": one["progress"]["chunks_total"],
        "units": units_total,
        "settings": extra,
        **{name: figures([run[name] for run in runs]) for name in runs[0]},
        "target": "<= 0.7x",
    }


# --- c: a worker machine dies ---------------------------------------------------------------------
def scenario_c(root: Path, models: dict[str, str], redis_url: str, repeats: int, lease: float) -> dict[str, Any]:
    extra = {
        "NARRATE_WORKER_UNITS": "3",
        "NARRATE_BATCH_SIZE": "3",
        "NARRATE_CHUNK_BUDGET_SECONDS": "8",
        "NARRATE_KANITTS2_MAX_FRAMES_PER_CHUNK": str(int(8 / FRAME_SECONDS * 0.8)),
        "NARRATE_UNIT_AUDIO_SECONDS": "30",
        "NARRATE_LEASE_SECONDS": str(lease),
        "NARRATE_CHECKPOINT_INTERVAL_SECONDS": "5",
        "NARRATE_CHECKPOINT_MIN_AUDIO_SECONDS": "0",
    }
    runs: list[dict[str, float]] = []
    with stack(root, models, redis_url, **extra) as deployment:
        services = deployment.services()
        for repeat in range(repeats):
            # The survivor has room for the dead worker's units: what is measured is how soon they come
            # back, not how long they queue behind a full worker.
            victim = deployment.start_worker()
            survivor = deployment.start_worker(NARRATE_WORKER_UNITS="8", NARRATE_BATCH_SIZE="8")
            pid = victim.proc.pid
            ids = [
                deployment.submit(
                    {"inputs": [{"text": long_text(4)}], "format": "wav", "streams": 1, "sampling": {"seed": s}}
                )
                for s in range(4)
            ]

            def held_by_victim(ids: list[str] = ids, pid: int = pid) -> list[tuple[str, int, int]]:
                found = []
                for job_id in ids:
                    for unit in services.units.units_of(job_id):
                        if unit.state == "leased" and unit.holder.endswith(f":{pid}") and unit.kind == "speak":
                            found.append((job_id, unit.index, unit.attempts))
                return found

            deadline = time.time() + 300
            while len(held := held_by_victim()) < 2 or not any(
                services.jobs.counters(job_id)["chunks_done"] for job_id in ids
            ):
                if time.time() > deadline:
                    raise TimeoutError(f"the victim never held two units:\n{deployment.logs()}")
                time.sleep(0.05)
            jobs_held = len({job_id for job_id, _, _ in held})
            victim.kill()
            killed = time.perf_counter()
            taken_over = first_chunk = None
            while first_chunk is None:
                now = time.perf_counter()
                if now - killed > 20 * lease:
                    raise TimeoutError(f"no unit of the dead worker resumed:\n{deployment.logs()}")
                for job_id, index, attempts in held:
                    state = next(u for u in services.units.units_of(job_id) if u.index == index)
                    if state.attempts > attempts and taken_over is None:
                        taken_over = now
                    if state.attempts > attempts and (state.live > 0 or state.state == "done"):
                        first_chunk = now
                time.sleep(0.02)
            jobs = deployment.wait(ids)
            storage = services.storage
            results = [
                [key for key in storage.list_keys(result_prefix("dev", job["id"])) if key.endswith(".wav")]
                for job in jobs
            ]
            counters = [services.jobs.counters(job["id"]) for job in jobs]
            run = {
                "kill_to_takeover_seconds": (taken_over or first_chunk) - killed,
                "lease_periods": ((taken_over or first_chunk) - killed) / lease,
                "kill_to_first_chunk_done_seconds": first_chunk - killed,
                "units_held_by_the_dead_worker": len(held),
                "jobs_held": jobs_held,
                "chunks_generated_again": sum(c["chunks_synthesized"] - c["chunks_total"] for c in counters),
                "result_files_per_job": max(len(found) for found in results),
            }
            assert all(len(found) == 1 for found in results), results
            runs.append(run)
            print(
                f"c[{repeat}]: killed holding {len(held)} units of {jobs_held} jobs; taken over after "
                f"{run['kill_to_takeover_seconds']:.2f} s = {run['lease_periods']:.2f} lease periods, first chunk "
                f"done after {run['kill_to_first_chunk_done_seconds']:.2f} s"
            )
            survivor.stop()
            deployment.workers.clear()
    return {
        "lease_seconds": lease,
        "settings": extra,
        **{name: figures([run[name] for run in runs]) for name in runs[0]},
        "measured": "kill_to_takeover: SIGKILL of the worker's process group to the first of its units claimed "
        "by the other worker (its first chunk starts); kill_to_first_chunk_done: to that chunk generated",
        "target": "kill to the first chunk after redelivery starting <= 2 lease periods",
    }


# --- d: storage writes per minute of audio --------------------------------------------------------
def scenario_d(root: Path, models: dict[str, str], redis_url: str, repeats: int, paragraphs: int) -> dict[str, Any]:
    import logging

    from tests.support.s3 import start_s3_server

    requests_seen: list[str] = []

    class Count(logging.Handler):
        """moto's server logs every request it serves (werkzeug's access log): the writes are counted."""

        def emit(self, record: logging.LogRecord) -> None:
            requests_seen.append(record.getMessage())

    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(Count())
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
    server, stop = start_s3_server()
    os.environ.update({k: v for k, v in server.env.items() if k.startswith("AWS_")})
    bucket = server.create_bucket()
    extra = {
        **server.env,
        "NARRATE_STORAGE_URL": f"s3://{bucket}",
        "NARRATE_CHUNK_BUDGET_SECONDS": "25",
        "NARRATE_KANITTS2_MAX_FRAMES_PER_CHUNK": str(int(25 / FRAME_SECONDS * 0.8)),
        "NARRATE_BATCH_SIZE": "8",
    }
    body = {"inputs": [{"text": long_text(paragraphs)}], "format": "mp3", "sampling": {"seed": 3}}
    runs: list[dict[str, float]] = []
    try:
        with stack(root, models, redis_url, **extra) as deployment:
            deployment.start_worker()
            for _ in range(repeats):
                requests_seen.clear()
                started = time.perf_counter()
                [job] = deployment.wait([deployment.submit(body)])
                wall = time.perf_counter() - started
                time.sleep(1.0)  # the checkpoint clean-up after the final transition
                lines = [line.split('"')[1] for line in requests_seen if line.count('"') >= 2]
                # PUT: an object; POST: a multipart step (deletes are not writes: S3 does not bill them)
                writes = [line for line in lines if line.split(" ")[0] in ("PUT", "POST") and "?delete" not in line]
                parts = [line for line in writes if "/checkpoints/" in line and line.startswith("PUT")]
                audio = job["progress"]["audio_seconds"]
                run = {
                    "audio_seconds": audio,
                    "wall_seconds": wall,
                    "storage_writes": len(writes),
                    "checkpoint_writes": len(parts),
                    "writes_per_60s_audio": len(writes) / (audio / 60),
                }
                runs.append(run)
                print(f"d: {len(writes)} writes ({len(parts)} checkpoint parts) for {audio:.0f} s of audio in "
                      f"{wall:.0f} s: {run['writes_per_60s_audio']:.2f} per 60 s of audio")  # fmt: skip
    finally:
        stop()
    return {
        "settings": {k: v for k, v in extra.items() if not k.startswith(("AWS_", "NARRATE_S3"))},
        "checkpoint_interval_seconds": Settings().checkpoint_interval_seconds,
        **{name: figures([run[name] for run in runs]) for name in runs[0]},
        "target": "<= 1 write per 60 s of audio",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="a,b,c,d")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=32, help="a: concurrent one-line jobs")
    parser.add_argument("--paragraphs", type=int, default=24, help="b: paragraphs of the long job")
    parser.add_argument("--d-paragraphs", type=int, default=60, help="d: paragraphs of the long job")
    parser.add_argument("--lease", type=float, default=4.0, help="c: NARRATE_LEASE_SECONDS")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "worker_units.json")
    args = parser.parse_args()
    redis_url = os.environ.get("NARRATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    report: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.update({"benchmark": "worker_units", "machine": machine()})
    with tempfile.TemporaryDirectory(prefix="narrate-bench-units-") as tmp:
        root = Path(tmp)
        models = build_tiny_models(root / "models")
        for name in wanted:
            run = {
                "a": lambda: scenario_a(root, models, redis_url, args.repeats, args.jobs),
                "b": lambda: scenario_b(root, models, redis_url, args.repeats, args.paragraphs),
                "c": lambda: scenario_c(root, models, redis_url, args.repeats, args.lease),
                "d": lambda: scenario_d(root, models, redis_url, args.repeats, args.d_paragraphs),
            }[name]
            report[name] = {**run(), "machine": report["machine"]}
            args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
