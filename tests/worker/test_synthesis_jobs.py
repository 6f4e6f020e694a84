"""Jobs through the real API, Redis queue and Celery worker processes with the Piper engine."""

from __future__ import annotations

import hashlib
import io
import json
import time
import urllib.request
from datetime import datetime

import pytest
import redis
import requests
import soundfile as sf

from shared.storage import storage_from_settings
from tests.conftest import AUTH, REPO, wait_for, wait_status

pytestmark = pytest.mark.slow

CHAPTER = (REPO / "examples" / "pride-and-prejudice-ch1.txt").read_text()
# Many small chunks, so a test can act between chunks.
SMALL_CHUNKS = {"NARRATE_CHUNK_BUDGET_SECONDS": "3"}
LONG_TEXT = "\n\n".join(CHAPTER.split("\n\n")[1:14])


def _read(client, url: str) -> bytes:
    """A result link's bytes: the file backend's links are the API's own `/v1/files/` route (served here
    by the in-process app `client`, with no key), S3's are presigned GETs."""
    if url.startswith("http://localhost/"):  # the Flask test client's host
        response = client.get(url.removeprefix("http://localhost"))
        assert response.status_code == 200, response.get_data()[:200]
        return response.get_data()
    return requests.get(url, timeout=30).content


def _submit(client, body: dict, headers: dict | None = None) -> str:
    response = client.post("/v1/jobs", json=body, headers={**AUTH, **(headers or {})})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def _audio_objects(env, job_id: str) -> list[str]:
    storage = storage_from_settings(env.settings())
    return [k for k in storage.list_keys("results/") if job_id in k and k.endswith((".mp3", ".wav", ".flac", ".opus"))]


def _checkpoints(env, job_id: str) -> list[str]:
    return storage_from_settings(env.settings()).list_keys(f"checkpoints/{job_id}/")


def _unreferenced_checkpoints(env, job_id: str) -> list[str]:
    """A succeeded job's checkpoint parts that its render record does not name (a pickup needs only those)."""
    view = env.store().view(job_id)
    render = view.stored_result.render if view else None
    record = json.loads(storage_from_settings(env.settings()).get_bytes(render.key)) if render else {"chunks": {}}
    named = {item["part"] for item in record["chunks"].values()}
    return [key for key in _checkpoints(env, job_id) if key not in named]


def test_narration_job_produces_a_playable_file_whose_duration_fits_the_text(api_client, service_env, start_worker):
    start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"id": "chapter-1", "text": CHAPTER}], "format": "mp3"})
    job = wait_status(api_client, job_id, {"succeeded", "failed"}, timeout=240)
    assert job["status"] == "succeeded", job["error"]
    progress = job["progress"]
    assert progress["chunks_done"] == progress["chunks_total"] > 1 and progress["percent"] == 100.0
    assert 0 < job["rtf"] < 1.0 and job["started_at"] and job["finished_at"]
    result = job["result"]
    data = _read(api_client, result["url"])
    assert len(data) == result["bytes"] and hashlib.sha256(data).hexdigest() == result["sha256"]
    audio, rate = sf.read(io.BytesIO(data))
    duration = len(audio) / rate
    assert abs(duration - result["duration_seconds"]) < 0.2
    assert len(CHAPTER) / 25 < duration < len(CHAPTER) / 8  # speech at a human rate: nothing skipped or looped
    srt = _read(api_client, result["subtitles"]["srt"]).decode()
    assert "Netherfield" in srt and "-->" in srt
    timing = json.loads(_read(api_client, result["subtitles"]["timing"]))
    assert timing["inputs"][0]["id"] == "chapter-1"
    # Every chunk was checked (the suite's workers run the heuristics only: NARRATE_QC_ASR=off) and the
    # report places each one in the file.
    quality = job["quality"]
    assert quality["asr"] == "off" and quality["chunks"] == progress["chunks_total"] and quality["flagged"] == []
    report = json.loads(_read(api_client, job["quality_report"]["url"]))
    assert [row["chunk"] for row in report["chunks"]] == sorted(row["chunk"] for row in report["chunks"])
    assert all(0 <= row["start_seconds"] < row["end_seconds"] <= duration + 0.1 for row in report["chunks"])
    # Scratch audio no chunk lies in is removed just after the job's final transition (the status turns
    # first); the parts the render record names stay for pickups.
    wait_for(lambda: not _unreferenced_checkpoints(service_env, job_id), message="scratch parts to be discarded")
    assert _checkpoints(service_env, job_id)


def test_a_canceled_queued_job_never_runs(api_client, service_env, start_worker):
    job_id = _submit(api_client, {"inputs": [{"text": "Never spoken."}]})
    assert api_client.delete(f"/v1/jobs/{job_id}", headers=AUTH).get_json()["status"] == "canceled"
    start_worker(service_env)
    queue = redis.Redis.from_url(service_env.redis_url)
    wait_for(lambda: queue.llen(service_env.queue) == 0, message="the message to be consumed")
    time.sleep(1.0)
    job = api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
    assert job["status"] == "canceled" and job["attempts"] == 0 and job["started_at"] is None
    assert _audio_objects(service_env, job_id) == []


def test_a_canceled_running_job_stops_at_the_next_chunk(api_client, service_env, start_worker):
    service_env.extra.update(SMALL_CHUNKS)
    start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"text": LONG_TEXT * 3}]})
    wait_for(lambda: api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()["progress"]["chunks_done"] >= 2)
    canceled = api_client.delete(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
    assert canceled["status"] == "canceled"
    store = service_env.store()
    wait_for(lambda: not _checkpoints(service_env, job_id), message="checkpoints to be discarded")
    done = store.counters(job_id)["chunks_done"]
    time.sleep(1.5)
    job = api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
    assert job["status"] == "canceled" and job["error"]["code"] == "canceled"
    assert store.counters(job_id)["chunks_done"] == done < job["progress"]["chunks_total"]
    assert _audio_objects(service_env, job_id) == []


def test_job_survives_the_whole_worker_being_killed_and_resumes_from_its_checkpoints(
    api_client, service_env, start_worker
):
    service_env.extra.update(
        SMALL_CHUNKS, NARRATE_CHECKPOINT_INTERVAL_SECONDS="1", NARRATE_CHECKPOINT_MIN_AUDIO_SECONDS="0"
    )
    worker = start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"text": LONG_TEXT}], "format": "mp3"})
    store = service_env.store()
    wait_for(lambda: len(store.done_chunks(job_id)) >= 3, message="three durable chunks")
    worker.kill()  # SIGKILL of the worker's whole process group: its unit's lease runs out
    durable = len(store.done_chunks(job_id))
    start_worker(service_env)
    job = wait_status(api_client, job_id, {"succeeded", "failed"}, timeout=180)
    assert job["status"] == "succeeded", job["error"]
    counters = store.counters(job_id)
    assert job["attempts"] == 2 and durable >= 3
    # Durable chunks were not synthesised again; at most what the dead worker held in memory was.
    assert counters["chunks_total"] <= counters["chunks_synthesized"] < counters["chunks_total"] + 8
    assert counters["chunks_done"] == counters["chunks_total"] == job["progress"]["chunks_total"]
    assert len(_audio_objects(service_env, job_id)) == 1
    wait_for(lambda: not _unreferenced_checkpoints(service_env, job_id), message="scratch parts to be discarded")


def test_a_unit_whose_workers_keep_dying_fails_its_job_with_a_reason(api_client, service_env, start_worker):
    service_env.extra.update(SMALL_CHUNKS, NARRATE_MAX_ATTEMPTS="2", NARRATE_LEASE_SECONDS="2")
    job_id = _submit(api_client, {"inputs": [{"text": LONG_TEXT}]})
    store = service_env.store()
    for attempt in (1, 2):  # each time a worker takes the unit, its machine dies
        worker = start_worker(service_env)
        wait_for(lambda a=attempt: (c := store.counters(job_id))["attempts"] == a and c["chunks_done"] > 0,
                 interval=0.05, message=f"attempt {attempt}")  # fmt: skip
        worker.kill()
    start_worker(service_env)
    job = wait_status(api_client, job_id, {"succeeded", "failed"}, timeout=120)
    assert job["status"] == "failed" and job["attempts"] == 2
    assert job["error"]["code"] == "worker_lost" and "2 times" in job["error"]["message"], job["error"]
    wait_for(lambda: not _checkpoints(service_env, job_id), message="checkpoints to be discarded")


def test_worker_serves_its_own_metrics(api_client, service_env, start_worker, unused_tcp_port):
    service_env.extra["NARRATE_WORKER_METRICS_PORT"] = str(unused_tcp_port)
    start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"text": "Counting seconds of speech."}]})
    assert wait_status(api_client, job_id, {"succeeded", "failed"})["status"] == "succeeded"

    def scrape() -> dict[str, float] | None:
        # The worker counts the job just after its status turns `succeeded`: scrape until it has.
        text = urllib.request.urlopen(f"http://127.0.0.1:{unused_tcp_port}/metrics", timeout=10).read().decode()
        samples = [line.split(" ") for line in text.splitlines() if line and not line.startswith("#")]
        found = {name: float(value) for name, value, *_ in samples}
        return found if 'narrate_jobs_finished_total{status="succeeded"}' in found else None

    values = wait_for(scrape, timeout=10, message="the finished job in the worker's metrics")
    assert values['narrate_jobs_finished_total{status="succeeded"}'] == 1.0
    assert values["narrate_chunk_rtf_count"] >= 1
    assert values["narrate_audio_generated_seconds_total"] > 0.5
    assert values["narrate_job_queue_wait_seconds_count"] == 1.0
    assert any(name.startswith("narrate_engine_load_seconds") for name in values)
    assert not any(name.startswith("narrate_gpu_memory") for name in values)  # absent on CPU


def test_a_job_longer_than_many_leases_and_the_stall_limit_succeeds_in_one_attempt(
    api_client, service_env, start_worker
):
    """No time limit applies to a job any more: a unit holds a short lease it renews while it works, and
    only a unit that stops making chunk progress is taken from its worker."""
    service_env.extra.update(SMALL_CHUNKS, NARRATE_LEASE_SECONDS="1", NARRATE_UNIT_STALL_SECONDS="2")
    start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"text": LONG_TEXT * 3}], "streams": 1})
    job = wait_status(api_client, job_id, {"succeeded", "failed"}, timeout=240)
    assert job["status"] == "succeeded", job["error"]
    ran = (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()
    assert ran > 5  # the job outlived five leases and twice the stall limit (else the test shows nothing)
    counters = service_env.store().counters(job_id)
    assert job["attempts"] == 1 and counters["chunks_synthesized"] == counters["chunks_total"]
    assert len(_audio_objects(service_env, job_id)) == 1
