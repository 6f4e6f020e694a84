"""S3 outages while a real worker process runs a job: the worker reaches the moto S3 server only through
a fault-injecting TCP proxy (tests/support/fault_proxy.py), which starts an outage at an exact point of
the job (a checkpoint write, the result upload, the clean-up) by watching the HTTP requests go by.

Whatever the point, the job must end `succeeded`, counted once in `narrate_jobs_finished_total`, with
exactly its result files in the bucket (no checkpoints, no other run's files) and a recorded sha256 that
is the stored object's. The retry budgets are short here (seconds) so that an outage of a few seconds
outlasts the in-upload retries and exercises the requeue; one test keeps the production budgets and
rides out a real 30-second outage.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import ServiceEnv, wait_for, wait_status
from tests.support.fault_proxy import Fault, FaultProxy, Trigger
from tests.support.processes import free_port
from tests.support.s3 import S3Server
from tests.worker.test_synthesis_jobs import LONG_TEXT, SMALL_CHUNKS, _submit

pytestmark = pytest.mark.slow

SHORT_RETRIES = {
    "NARRATE_S3_MAX_ATTEMPTS": "1",
    "NARRATE_S3_CONNECT_TIMEOUT_SECONDS": "1",
    "NARRATE_S3_READ_TIMEOUT_SECONDS": "1",
    "NARRATE_STORAGE_RETRY_SECONDS": "2",
    "NARRATE_STORAGE_REQUEUE_SECONDS": "1",
    "NARRATE_MAX_ATTEMPTS": "8",
}
TEXT = LONG_TEXT[:1500]

# Request lines as the proxy sees them (path-style: /<bucket>/<storage prefix>/<key>).
CHECKPOINT_PUT = r"^PUT /[^/ ]+/narrate/checkpoints/"
RESULT_PUT = r"^PUT /[^/ ]+/narrate/results/"
CHECKPOINT_LISTING = r"^GET /[^/ ]+/?\?[^ ]*prefix=narrate%2Fcheckpoints%2F"


@dataclass
class ProxiedS3:
    env: ServiceEnv
    server: S3Server
    bucket: str
    proxy: FaultProxy
    metrics_port: int

    def objects(self) -> list[str]:
        listing = self.server.client().list_objects_v2(Bucket=self.bucket, Prefix="narrate/")
        return sorted(obj["Key"].removeprefix("narrate/") for obj in listing.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.server.client().get_object(Bucket=self.bucket, Key=f"narrate/{key}")["Body"].read()

    def finished(self) -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("narrate_jobs_finished_total{"):
                name, value = line.rsplit(" ", 1)
                out[name.split('status="')[1].split('"')[0]] = float(value)
        return out


@pytest.fixture
def s3(service_env: ServiceEnv, s3_server: S3Server) -> Iterator[ProxiedS3]:
    bucket = s3_server.create_bucket()
    with FaultProxy(s3_server.endpoint_url) as proxy:
        port = free_port()
        service_env.storage_url = f"s3://{bucket}/narrate"
        service_env.extra.update(s3_server.env)
        service_env.extra.update(
            SMALL_CHUNKS,
            NARRATE_S3_ENDPOINT_URL=proxy.url,  # the worker reaches S3 only through the proxy
            NARRATE_WORKER_METRICS_PORT=str(port),
            NARRATE_CHECKPOINT_INTERVAL_SECONDS="0",  # a part per chunk: an outage can start at any chunk
            NARRATE_CHECKPOINT_MIN_AUDIO_SECONDS="0",
        )
        yield ProxiedS3(service_env, s3_server, bucket, proxy, port)


def assert_succeeded_once_leaving_only_its_result(s3: ProxiedS3, api_client, job_id: str, trigger: Trigger) -> dict:
    job = wait_status(api_client, job_id, {"succeeded", "failed", "canceled"}, timeout=150)
    assert trigger.fired.is_set(), "the outage never started"
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    data = s3.read(result["key"])
    assert hashlib.sha256(data).hexdigest() == result["sha256"] and len(data) == result["bytes"]
    run, name = result["key"].rsplit("/", 1)
    stem = name.rsplit(".", 1)[0]
    expected = sorted(
        [f"{run}/{stem}.{ext}" for ext in ("mp3", "srt", "vtt", "json", "words.json")]
        + [f"{run}/qc/quality.json", f"{run}/render.json"]
    )
    # The result files, and the checkpoint parts the render record names (kept for pickups).
    record = json.loads(s3.read(f"{run}/render.json"))
    expected = sorted(expected + sorted({item["part"] for item in record["chunks"].values()}))
    wait_for(lambda: s3.objects() == expected, timeout=20, message=f"only {expected} left, not {s3.objects()}")
    # Counted once, as succeeded, and never as failed (the metric is written just after the status).
    wait_for(lambda: s3.finished().get("succeeded") == 1.0, timeout=10, message="the job counted once")
    assert s3.finished().get("failed", 0.0) == 0.0
    return job


def test_an_outage_while_a_checkpoint_is_written_requeues_the_job_which_resumes_and_succeeds(
    api_client, service_env, start_worker, s3
):
    service_env.extra.update(SHORT_RETRIES)
    trigger = s3.proxy.on_request(CHECKPOINT_PUT, Fault.REFUSE, seconds=8, skip=2)
    start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"text": TEXT}], "format": "mp3"})
    job = assert_succeeded_once_leaving_only_its_result(s3, api_client, job_id, trigger)
    # The outage outlasted the in-upload retries (2 s), so the unit was handed back and resumed from its
    # durable parts: more than one attempt, each chunk in the result once (chunks generated but not yet
    # written when the outage began were generated again, and counted as such).
    counters = service_env.store().counters(job_id)
    assert job["attempts"] >= 2 and counters["chunks_done"] == counters["chunks_total"]
    assert counters["chunks_synthesized"] >= counters["chunks_total"]


def test_a_hung_storage_during_the_result_upload_is_retried_and_the_job_succeeds(
    api_client, service_env, start_worker, s3
):
    service_env.extra.update(SHORT_RETRIES)
    trigger = s3.proxy.on_request(RESULT_PUT, Fault.HOLD, seconds=6)
    start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"text": TEXT}], "format": "mp3"})
    job = assert_succeeded_once_leaving_only_its_result(s3, api_client, job_id, trigger)
    assert job["attempts"] >= 2  # the half-uploaded run's files were removed by the run that finished


def test_an_outage_during_clean_up_keeps_the_job_succeeded_and_its_chunk_parts(
    api_client, service_env, start_worker, s3
):
    service_env.extra.update(SHORT_RETRIES)
    # The first listing of checkpoints/ is the clean-up of scratch parts after the job's result was
    # recorded. Well past the 2 s retry budget (and its last attempt), however loaded the machine.
    trigger = s3.proxy.on_request(CHECKPOINT_LISTING, Fault.REFUSE, seconds=10)
    start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"text": TEXT}], "format": "mp3"})
    job = wait_status(api_client, job_id, {"succeeded", "failed"}, timeout=120)
    assert job["status"] == "succeeded" and job["attempts"] == 1, job["error"]
    wait_for(lambda: trigger.fired.is_set(), timeout=30, message="the outage")
    wait_for(lambda: s3.finished().get("succeeded") == 1.0, timeout=10, message="the job counted once")
    assert s3.finished().get("failed", 0.0) == 0.0 and s3.proxy.refused > 0
    # The parts the render record names are kept for pickups whatever the clean-up met; nothing else is left.
    time.sleep(6)  # past the outage: storage answers again
    render = service_env.store().view(job_id).stored_result.render
    record = json.loads(s3.read(render.key))
    named = {item["part"] for item in record["chunks"].values()}
    assert named <= set(s3.objects())
    assert all(key.startswith((f"results/dev/{job_id}/", f"checkpoints/{job_id}/")) for key in s3.objects())


def test_a_30_second_outage_with_the_production_budgets_ends_in_succeeded(api_client, service_env, start_worker, s3):
    # Default retry settings: the 30 s outage is ridden out inside the checkpoint upload.
    trigger = s3.proxy.on_request(CHECKPOINT_PUT, Fault.REFUSE, seconds=30, skip=1)
    start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"text": TEXT[:600]}], "format": "mp3"})
    assert_succeeded_once_leaving_only_its_result(s3, api_client, job_id, trigger)
    assert s3.proxy.refused > 0


def test_storage_down_through_every_attempt_fails_the_job_with_storage_unavailable_counted_once(
    api_client, service_env, start_worker, s3
):
    service_env.extra.update(SHORT_RETRIES, NARRATE_MAX_ATTEMPTS="2")
    trigger = s3.proxy.on_request(CHECKPOINT_PUT, Fault.REFUSE, seconds=25)
    start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"text": TEXT}], "format": "mp3"})
    job = wait_status(api_client, job_id, {"succeeded", "failed"}, timeout=90)
    assert trigger.fired.is_set()
    assert job["status"] == "failed" and job["error"]["code"] == "storage_unavailable", job["error"]
    assert job["attempts"] == 2 and "2 attempts" in job["error"]["message"]
    wait_for(lambda: s3.finished() == {"failed": 1.0}, timeout=10, message="the failure counted once")
