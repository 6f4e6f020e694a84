"""Redis failover under a running job: real `redis-server` processes (a primary and its replica) and a
real Sentinel, the API in process and a real worker, all on `sentinel://` URLs. The primary is killed
while the job runs; Sentinel promotes the replica; the API answers 503 at most while it switches, and
every accepted job ends succeeded with exactly one result."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.sentinel import Sentinel

from shared.settings import DEV_TENANT
from shared.storage import storage_from_settings
from shared.storage_keys import result_prefix
from tests.conftest import AUTH, REPO, ServiceEnv, wait_for, wait_status
from tests.support.processes import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs Debian's redis-server"),
]

MASTER = "narrate-test"
TEXT = "\n\n".join((REPO / "examples" / "pride-and-prejudice-ch1.txt").read_text().split("\n\n")[1:8])


class RedisProcesses:
    """A primary, one replica of it and one Sentinel (quorum 1) watching them, on spare ports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {"primary": free_port(), "replica": free_port(), "sentinel": free_port()}
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, *args: str) -> None:
        work = self.root / name
        work.mkdir(exist_ok=True)
        log = open(work / "log", "ab")  # noqa: SIM115 - the process owns it
        self.procs[name] = subprocess.Popen(["redis-server", *args], cwd=work, stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> RedisProcesses:
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
        self._start("primary", "--port", str(self.ports["primary"]), *common)
        self._start("replica", "--port", str(self.ports["replica"]), *common,
                    "--replicaof", "127.0.0.1", str(self.ports["primary"]))  # fmt: skip
        conf = self.root / "sentinel.conf"
        conf.write_text(
            f"port {self.ports['sentinel']}\nbind 127.0.0.1\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.ports['primary']} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
        )
        self._start("sentinel", str(conf), "--sentinel")
        replica = redis.Redis(port=self.ports["replica"])
        wait_for(lambda: _ping(replica) and replica.info("replication").get("master_link_status") == "up",
                 timeout=30, message="the replica to sync")  # fmt: skip
        wait_for(lambda: self.primary_port() == self.ports["primary"], timeout=30, message="sentinel to start")
        wait_for(lambda: self.sentinel().discover_slaves(MASTER),
                 timeout=30, message="sentinel to find the replica")  # fmt: skip
        return self

    def primary_port(self) -> int | None:
        try:
            _host, port = self.sentinel().discover_master(MASTER)
        except redis.RedisError:
            return None
        return int(port)

    def sentinel(self) -> Sentinel:
        return Sentinel([("127.0.0.1", self.ports["sentinel"])], socket_timeout=1)

    def kill(self, name: str) -> None:
        self.procs[name].kill()
        self.procs[name].wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisProcesses]:
    processes = RedisProcesses(tmp_path).start()
    yield processes
    processes.stop()


def test_primary_killed_during_a_job_sentinel_promotes_and_every_job_succeeds_once(
    cluster: RedisProcesses, tmp_path: Path, start_worker
) -> None:
    from api import create_app

    prefix = f"fleet-{uuid.uuid4().hex[:6]}"
    env = ServiceEnv(
        f"sentinel://127.0.0.1:{cluster.ports['sentinel']}/0",
        prefix,
        f"{prefix}-q",
        f"file://{tmp_path / 'storage'}",
        extra={"NARRATE_REDIS_SENTINEL_MASTER": MASTER, "NARRATE_CHUNK_BUDGET_SECONDS": "3"},
    )
    app = create_app(env.settings())
    app.testing = True
    client = app.test_client()
    # (WorkerProcess.wait_ready reaches Redis by plain URL; this prefix is fresh, so no stale engine key.)
    worker = start_worker(env, wait=False)
    wait_for(lambda: env.store().engine_info() and b"ready." in worker.log_path.read_bytes(), timeout=90,
             message="the worker to load its engine")  # fmt: skip

    def submit() -> str:
        response = client.post("/v1/jobs", json={"inputs": [{"id": "ch", "text": TEXT}], "format": "wav"}, headers=AUTH)
        assert response.status_code == 202, response.get_json()
        return response.get_json()["id"]

    jobs = [submit(), submit()]
    wait_status(client, jobs[0], {"running"}, timeout=60)

    cluster.kill("primary")
    codes: list[int] = []
    accepted_during: list[str] = []

    def promoted() -> bool:
        for job_id in jobs:
            codes.append(client.get(f"/v1/jobs/{job_id}", headers=AUTH).status_code)
        response = client.post("/v1/jobs", json={"inputs": [{"id": "x", "text": "One more line."}]}, headers=AUTH)
        codes.append(response.status_code)
        if response.status_code == 202:
            accepted_during.append(response.get_json()["id"])
        return cluster.primary_port() == cluster.ports["replica"]

    wait_for(promoted, timeout=60, interval=0.3, message="sentinel to promote the replica")
    assert set(codes) <= {200, 202, 503}, codes  # never a 500: unavailable at most
    wait_for(lambda: client.get("/readyz").status_code == 200, timeout=30, message="the API to be ready again")
    jobs.append(submit())  # accepted after the switch

    storage = storage_from_settings(env.settings())
    for job_id in jobs + accepted_during:
        job = wait_status(client, job_id, {"succeeded", "failed", "cancelled"}, timeout=240)
        assert job["status"] == "succeeded", job.get("error")
        files = storage.list_keys(result_prefix(DEV_TENANT, job_id))
        audio = [k for k in files if k.endswith((".wav", ".mp3", ".flac", ".opus"))]
        assert len(audio) == 1, files  # one result: no second assembly after the switch
        assert job["result"]["bytes"] == len(storage.get_bytes(audio[0]))
