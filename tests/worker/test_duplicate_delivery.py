"""A job delivered twice, a worker frozen past its claim, a worker child killed: with real worker
processes on one queue, a running job is never synthesised twice at once, the sha256 recorded is the
stored object's, and the job is counted once in `narrate_jobs_finished_total`."""

from __future__ import annotations

import hashlib
import os
import signal
import time
import urllib.request

import pytest

from shared.storage import storage_from_settings
from tests.conftest import ServiceEnv, wait_for, wait_status
from tests.support.processes import free_port
from tests.worker.test_synthesis_jobs import LONG_TEXT, SMALL_CHUNKS, _audio_objects, _checkpoints, _submit

pytestmark = pytest.mark.slow


def finished_total(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("narrate_jobs_finished_total{")
    )


def start_two(env: ServiceEnv, start_worker) -> list[tuple[object, int]]:
    workers = []
    for _ in range(2):
        port = free_port()
        env.extra["NARRATE_WORKER_METRICS_PORT"] = str(port)
        workers.append((start_worker(env), port))
    return workers


def assert_ran_once(env: ServiceEnv, api_client, job_id: str, ports: list[int]) -> dict:
    job = wait_status(api_client, job_id, {"succeeded", "failed", "canceled"}, timeout=180)
    assert job["status"] == "succeeded", job["error"]
    counters = env.store().counters(job_id)
    assert counters["chunks_synthesized"] == counters["chunks_total"] == job["progress"]["chunks_total"]
    stored = storage_from_settings(env.settings()).get_bytes(job["result"]["key"])
    assert hashlib.sha256(stored).hexdigest() == job["result"]["sha256"]  # the record matches the object
    assert _audio_objects(env, job_id) == [job["result"]["key"]]
    wait_for(lambda: not _checkpoints(env, job_id), message="checkpoints removed after the job succeeded")
    wait_for(lambda: sum(finished_total(port) for port in ports) >= 1, timeout=10, message="the job counted")
    time.sleep(0.5)
    assert sum(finished_total(port) for port in ports) == 1.0  # once, by one worker
    return job


def test_a_second_delivery_of_a_running_job_waits_and_the_job_runs_once(api_client, service_env, start_worker):
    service_env.extra.update(SMALL_CHUNKS, NARRATE_LEASE_SECONDS="3")
    workers = start_two(service_env, start_worker)
    job_id = _submit(api_client, {"inputs": [{"text": LONG_TEXT}], "format": "mp3"})
    store = service_env.store()
    wait_for(lambda: store.counters(job_id)["chunks_done"] >= 2, message="the job to be running")
    service_env.services().enqueue_job(job_id)  # the same message again (redelivery, manual re-enqueue)
    logs = lambda: "".join(worker.log_path.read_text(errors="replace") for worker, _ in workers)  # noqa: E731
    wait_for(lambda: "under another worker's claim" in logs(), timeout=30, message="the duplicate to be held back")
    job = assert_ran_once(service_env, api_client, job_id, [port for _, port in workers])
    assert job["attempts"] == 1  # one claim: the duplicate never ran it
    # Not lost either: delivered again after the owner's lease, it found the job finished.
    wait_for(lambda: f"job {job_id} not runnable (skip)" in logs(), timeout=30, message="the duplicate to end")


def test_a_worker_frozen_past_its_claim_is_fenced_out_when_it_wakes(api_client, service_env, start_worker):
    service_env.extra.update(SMALL_CHUNKS, NARRATE_LEASE_SECONDS="2")
    workers = start_two(service_env, start_worker)
    job_id = _submit(api_client, {"inputs": [{"text": LONG_TEXT}], "format": "mp3"})
    store = service_env.store()
    wait_for(lambda: store.counters(job_id)["chunks_done"] >= 2, message="the job to be running")
    # The worker that received the task (both name it in their start-up banner's task list).
    owner = next(worker for worker, _ in workers if "Task narrate.synthesize[" in worker.log_path.read_text())
    child = owner.child_pids()[0]
    os.kill(child, signal.SIGSTOP)  # a stalled worker: its claim is no longer renewed
    try:
        time.sleep(3)
        service_env.services().enqueue_job(job_id)  # redelivered meanwhile: the other worker takes over
        wait_for(lambda: store.counters(job_id)["attempts"] == 2, timeout=30, message="the takeover")
        done = store.counters(job_id)["chunks_done"]
        wait_for(lambda: store.counters(job_id)["chunks_done"] > done, timeout=30, message="the new run's chunks")
    finally:
        os.kill(child, signal.SIGCONT)
    wait_for(lambda: "took over its claim" in owner.log_path.read_text(), timeout=30, message="the old run to stop")
    job = assert_ran_once(service_env, api_client, job_id, [port for _, port in workers])
    assert job["attempts"] == 2 and "/run-2/" in job["result"]["key"]


def test_a_killed_worker_child_is_taken_over_at_once_despite_its_live_claim(api_client, service_env, start_worker):
    service_env.extra.update(SMALL_CHUNKS, NARRATE_LEASE_SECONDS="120")  # far longer than the test may wait
    worker = start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"text": LONG_TEXT}], "format": "mp3"})
    store = service_env.store()
    wait_for(lambda: store.counters(job_id)["chunks_done"] >= 2, message="two chunks")
    worker.kill_child()
    killed = time.monotonic()
    wait_for(lambda: store.counters(job_id)["attempts"] == 2, timeout=60, message="the second attempt")
    assert time.monotonic() - killed < 30  # the dead child's claim was taken over, not waited out
    job = wait_status(api_client, job_id, {"succeeded", "failed"}, timeout=120)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job["error"]
    counters = store.counters(job_id)
    assert counters["chunks_synthesized"] == counters["chunks_total"]
    assert _audio_objects(service_env, job_id) == [job["result"]["key"]]
