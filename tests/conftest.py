"""Fixtures for tests that talk to real services: Redis, Celery worker processes, an S3 server.

Every test session works under its own Redis key prefix and Celery queue names, so it never sees
another run's jobs, and removes its keys at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from shared.queue import worker_args
from shared.services import Services
from shared.settings import DEV_KEY, Settings
from shared.store import JobStore
from tests.support.s3 import s3_server  # noqa: F401 - re-exported fixture

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("NARRATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AUTH = {"Authorization": f"Bearer {DEV_KEY}"}


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError:
        pytest.fail(f"The tests need a Redis server at {REDIS_URL} (set NARRATE_TEST_REDIS_URL).")
    return REDIS_URL


@pytest.fixture(scope="session")
def key_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"narrate-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for pattern in (f"{prefix}*", f"_kombu.binding*{prefix}*", f"LIMITS*{prefix}*"):
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)


@dataclass
class ServiceEnv:
    """Settings shared by the in-process API and the worker processes of one test."""

    redis_url: str
    key_prefix: str
    queue: str
    storage_url: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def voice_queue(self) -> str:
        return f"{self.queue}-voices"

    def env(self) -> dict[str, str]:
        values = {
            "NARRATE_REDIS_URL": self.redis_url,
            "NARRATE_KEY_PREFIX": self.key_prefix,
            "NARRATE_QUEUE_NAME": self.queue,
            "NARRATE_VOICE_QUEUE_NAME": self.voice_queue,
            "NARRATE_WEBHOOK_QUEUE_NAME": f"{self.queue}-webhooks",
            "NARRATE_STORAGE_URL": self.storage_url,
            "NARRATE_DEV_MODE": "1",
            "NARRATE_WORKER_METRICS_PORT": "0",
            # Few threads per worker process (two cores run the whole suite), short leases: a dead
            # worker's units come back within seconds.
            "NARRATE_WORKER_UNITS": "4",
            "NARRATE_LEASE_SECONDS": "6",
            # No speech recogniser by default: the fake engine's tones hold no words, and transcribing
            # every chunk of every job would slow the suite; the quality-control tests turn it on.
            "NARRATE_QC_ASR": "off",
        }
        values.update(self.extra)
        return values

    def settings(self) -> Settings:
        fields = {name.removeprefix("NARRATE_").lower(): value for name, value in self.env().items()}
        return Settings(**fields)

    def services(self) -> Services:
        return Services.from_settings(self.settings(), client_name="narrate-test")

    def store(self) -> JobStore:
        return self.services().jobs


@pytest.fixture
def service_env(redis_url: str, key_prefix: str, tmp_path: Path) -> ServiceEnv:
    """A fresh key prefix, queue and storage directory per test, under the session's key prefix."""
    prefix = f"{key_prefix}-{uuid.uuid4().hex[:6]}"
    return ServiceEnv(redis_url, prefix, f"{prefix}-q", f"file://{tmp_path / 'storage'}")


class WorkerProcess:
    """A real `celery worker` process (a thread per unit, one engine) on the test's queues (`queues`, or
    both the synthesis and the voice queue as production workers do), as production starts it."""

    def __init__(self, env: ServiceEnv, log_path: Path, queues: str | None = None) -> None:
        self.env = env
        self.log_path = log_path
        child_env = {**os.environ, **env.env(), "PYTHONUNBUFFERED": "1"}
        child_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", *worker_args(env.settings(), queues), "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-l", "INFO", "-n", f"test-{uuid.uuid4().hex[:6]}@%h"],
            cwd=REPO, env=child_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 90.0) -> WorkerProcess:
        """Ready once it has loaded its engine (it publishes it) and consumes."""
        store = self.env.store()
        redis.Redis.from_url(self.env.redis_url).delete(f"{self.env.key_prefix}:engine")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if store.engine_info() and b"ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the whole worker's process group (the worker and its assembly processes), as a crashed
        machine would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:
    """Factory: start_worker(env) -> a ready WorkerProcess; every worker is stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(env: ServiceEnv, *, wait: bool = True, queues: str | None = None) -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker-{len(workers)}.log", queues)
        workers.append(worker)
        return worker.wait_ready() if wait else worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def api_client(service_env: ServiceEnv):
    """The real Flask app (in process) on the test's Redis, queue and storage."""
    from api import create_app

    app = create_app(service_env.settings())
    app.testing = True
    return app.test_client()


def wait_for(predicate, *, timeout: float = 60.0, interval: float = 0.2, message: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {message}")


def wait_status(client, job_id: str, statuses: set[str], timeout: float = 120.0) -> dict:
    def poll():
        body = client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
        return body if body["status"] in statuses else None

    return wait_for(poll, timeout=timeout, message=f"job {job_id} to reach {statuses}")


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
