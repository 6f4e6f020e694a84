"""Tokens delivered twice, a worker frozen past its lease: with real worker processes on one queue, a
unit is never run twice at once, the sha256 recorded is the stored object's, and the job is counted
once in `narrate_jobs_finished_total`."""

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
from tests.worker.test_synthesis_jobs import (
    LONG_TEXT,
    SMALL_CHUNKS,
    _audio_objects,
    _submit,
    _unreferenced_checkpoints,
)

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


def assert_ran_once(env: ServiceEnv, api_client, job_id: str, ports: list[int], *, redone: bool = False) -> dict:
    """The job succeeded once, with one result; `redone`: chunks a lost holder kept in memory may have
    been generated again (counted in chunks_synthesized), else every chunk was generated once."""
    job = wait_status(api_client, job_id, {"succeeded", "failed", "canceled"}, timeout=180)
    assert job["status"] == "succeeded", job["error"]
    counters = env.store().counters(job_id)
    assert counters["chunks_done"] == counters["chunks_total"] == job["progress"]["chunks_total"]
    if redone:
        assert counters["chunks_synthesized"] >= counters["chunks_total"]
    else:
        assert counters["chunks_synthesized"] == counters["chunks_total"]
    stored = storage_from_settings(env.settings()).get_bytes(job["result"]["key"])
    assert hashlib.sha256(stored).hexdigest() == job["result"]["sha256"]  # the record matches the object
    assert _audio_objects(env, job_id) == [job["result"]["key"]]
    wait_for(lambda: not _unreferenced_checkpoints(env, job_id), message="scratch parts removed after success")
    wait_for(lambda: sum(finished_total(port) for port in ports) >= 1, timeout=10, message="the job counted")
    time.sleep(0.5)
    assert sum(finished_total(port) for port in ports) == 1.0  # once, by one worker
    return job


ONE_UNIT = {"NARRATE_UNIT_AUDIO_SECONDS": "100000"}  # the whole text is one speak unit


def test_extra_tokens_for_a_running_job_never_run_a_unit_twice(api_client, service_env, start_worker):
    service_env.extra.update(**SMALL_CHUNKS, **ONE_UNIT, NARRATE_LEASE_SECONDS="3")
    workers = start_two(service_env, start_worker)
    job_id = _submit(api_client, {"inputs": [{"text": LONG_TEXT}], "format": "mp3", "streams": 1})
    store = service_env.store()
    wait_for(lambda: store.counters(job_id)["chunks_done"] >= 2, message="the job to be running")
    service_env.services().enqueue_work(6)  # tokens again (a redelivery, a manual re-enqueue, a sweep's top-up)
    job = assert_ran_once(service_env, api_client, job_id, [port for _, port in workers])
    assert job["attempts"] == 1  # each unit claimed once: the extra tokens found nothing to take
    logs = "".join(worker.log_path.read_text(errors="replace") for worker, _ in workers)
    assert logs.count(f"job {job_id}: speak unit 0 taken") == 1


def test_a_worker_frozen_past_its_lease_is_fenced_out_when_it_wakes(api_client, service_env, start_worker):
    service_env.extra.update(**SMALL_CHUNKS, **ONE_UNIT, NARRATE_LEASE_SECONDS="2")
    workers = start_two(service_env, start_worker)
    job_id = _submit(api_client, {"inputs": [{"text": LONG_TEXT}], "format": "mp3", "streams": 1})
    store = service_env.store()
    wait_for(lambda: store.counters(job_id)["chunks_done"] >= 2, message="the job to be running")
    taken = f"job {job_id}: speak unit 0 taken"
    owner = next(worker for worker, _ in workers if taken in worker.log_path.read_text())
    os.killpg(owner.proc.pid, signal.SIGSTOP)  # a stalled machine: its lease is no longer renewed
    try:  # the other worker's sweeper gives the unit back once the lease ran out, and takes it
        wait_for(lambda: store.counters(job_id)["attempts"] == 2, timeout=30, message="the takeover")
        done = store.counters(job_id)["chunks_done"]
        wait_for(lambda: store.counters(job_id)["chunks_done"] > done, timeout=30, message="the new holder's chunks")
    finally:
        os.killpg(owner.proc.pid, signal.SIGCONT)
    wait_for(lambda: "was taken over; this holder stops" in owner.log_path.read_text(), timeout=30,
             message="the old holder to stop")  # fmt: skip
    job = assert_ran_once(service_env, api_client, job_id, [port for _, port in workers], redone=True)
    assert job["attempts"] == 2
