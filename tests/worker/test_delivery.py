"""Delivery that lasts, through the real API, Redis, Celery worker processes (Piper) and storage (a
directory, and moto's S3 server over HTTP): links that are fresh at every read, a retention sweep that
never eats voices, and the delete of a finished job."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import redis
import requests

from api import create_app
from shared.jobs import JobCreate
from shared.speaker_embedding import embedding_to_bytes
from shared.storage import LocalStorage
from shared.storage_keys import (
    checkpoint_key,
    checkpoint_prefix,
    embedding_key,
    preview_key,
    reference_key,
    result_prefix,
    voice_prefix,
)
from tests.conftest import AUTH, ServiceEnv, wait_for, wait_status
from worker.voice_embeddings import load_cloned_voices

pytestmark = pytest.mark.slow

EXPIRY_SECONDS = 60  # the shortest the setting allows
PUBLIC_URL = "http://narrate.test"
OTHER_KEY = "other-tenant-key"


def _client(env: ServiceEnv):
    app = create_app(env.settings())
    app.testing = True
    return app.test_client()


def _submit(client, body: dict) -> str:
    response = client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def _fetch(client, url: str) -> tuple[int, bytes]:
    """GET a result link as a client would: the API's own route (file backend) without a key, or S3."""
    if url.startswith(PUBLIC_URL):
        response = client.get(url.removeprefix(PUBLIC_URL))
        return response.status_code, response.get_data()
    response = requests.get(url, timeout=30)
    return response.status_code, response.content


def _s3_env(env: ServiceEnv, s3_server) -> str:
    bucket = s3_server.create_bucket()
    env.storage_url = f"s3://{bucket}/narrate"
    env.extra.update(s3_server.env)
    return bucket


def test_a_job_read_after_the_link_expiry_still_downloads(service_env, start_worker, s3_server, tmp_path):
    file_env = service_env
    file_env.extra.update({"NARRATE_S3_PRESIGN_EXPIRY_SECONDS": str(EXPIRY_SECONDS), "NARRATE_PUBLIC_URL": PUBLIC_URL})
    prefix = f"{service_env.key_prefix}-s3"
    s3_env = ServiceEnv(service_env.redis_url, prefix, f"{prefix}-q", "", dict(file_env.extra))
    _s3_env(s3_env, s3_server)
    for env in (file_env, s3_env):
        start_worker(env)
    jobs = {}
    for env in (file_env, s3_env):
        client = _client(env)
        job_id = _submit(client, {"inputs": [{"text": "Links that outlive their first hour."}], "format": "mp3"})
        jobs[env.storage_url] = (client, job_id)
    first: dict[str, dict] = {}
    for url, (client, job_id) in jobs.items():
        job = wait_status(client, job_id, {"succeeded", "failed"})
        assert job["status"] == "succeeded", job["error"]
        result = job["result"]
        expires = datetime.fromisoformat(result["url_expires_at"]).timestamp()
        assert abs(expires - (time.time() + EXPIRY_SECONDS)) < 15
        assert _fetch(client, result["url"])[0] == 200
        first[url] = result
    assert first[file_env.storage_url]["url"].startswith(f"{PUBLIC_URL}/v1/files/")
    assert "X-Amz-Expires=60" in first[s3_env.storage_url]["url"]

    latest = max(datetime.fromisoformat(r["url_expires_at"]).timestamp() for r in first.values())
    time.sleep(max(0.0, latest - time.time()) + 2)

    for url, (client, job_id) in jobs.items():
        if url == file_env.storage_url:
            status, body = _fetch(client, first[url]["url"])
            assert status == 403, body[:300]  # the link handed out first has died...
        else:  # moto does not enforce presigned expiry; S3 and MinIO refuse a link past its signed terms
            assert _presigned_until(first[url]["url"]) < time.time()
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
        listed = client.get("/v1/jobs", headers=AUTH).get_json()["data"][0]
        for result in (job["result"], listed["result"]):  # ...the job read now has live ones
            assert result["url"] != first[url]["url"]
            assert datetime.fromisoformat(result["url_expires_at"]).timestamp() > time.time() + EXPIRY_SECONDS - 15
            if url == s3_env.storage_url:
                assert _presigned_until(result["url"]) > time.time() + EXPIRY_SECONDS - 15
            status, data = _fetch(client, result["url"])
            assert hashlib.sha256(data).hexdigest() == result["sha256"] == first[url]["sha256"]
            assert status == 200 and b"-->" in _fetch(client, result["subtitles"]["srt"])[1]


def _presigned_until(url: str) -> float:
    """When a presigned S3 URL stops being valid, by its own signed terms."""
    query = parse_qs(urlsplit(url).query)
    signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return signed.timestamp() + int(query["X-Amz-Expires"][0])


def test_voices_survive_the_retention_sweep_that_deletes_an_old_jobs_results(service_env, start_worker):
    service_env.extra["NARRATE_STORAGE_SWEEP_INTERVAL_SECONDS"] = "1"
    storage = LocalStorage(service_env.storage_url.removeprefix("file://"))
    services = service_env.services()
    client = _client(service_env)
    start_worker(service_env)
    old, new = (_submit(client, {"inputs": [{"text": f"The {name} job."}]}) for name in ("old", "new"))
    for job_id in (old, new):
        assert wait_status(client, job_id, {"succeeded", "failed"})["status"] == "succeeded"
    # A ready cloned voice of the same tenant, and a stale checkpoint of a job that died long ago.
    voice_id = services.voices.new_id()
    services.voices.create(
        voice_id,
        "dev",
        name="Ada",
        description=None,
        language="en_us",
        consent={"by": "Ada", "at": "2026-11-01T00:00:00Z", "recorded_at": "2026-11-01T00:00:00Z"},
        clips=[],
        limit=10,
    )
    assert services.voices.mark_ready(voice_id, clips=[], preview=True)
    embedding = np.random.default_rng(1).standard_normal(128).astype(np.float32)
    storage.put_bytes(embedding_key("dev", voice_id), embedding_to_bytes(embedding))
    storage.put_bytes(reference_key("dev", voice_id, 0), b"RIFF-reference")
    storage.put_bytes(preview_key("dev", voice_id), b"ID3-preview")
    storage.put_bytes(checkpoint_key("job_gone", "c0", 1), b"fLaC")
    voice_keys = storage.list_keys(voice_prefix("dev", voice_id))
    eight_days_ago = time.time() - 8 * 24 * 3600
    # The old job's chunk audio (kept for pickups while its results are) is as old as its results.
    old_files = [*storage.list_keys(result_prefix("dev", old)), *storage.list_keys(checkpoint_prefix(old))]
    for key in [*old_files, *voice_keys, checkpoint_key("job_gone", "c0", 1)]:
        os.utime(storage.path_for(key), (eight_days_ago, eight_days_ago))

    wait_for(
        lambda: (
            not storage.list_keys(result_prefix("dev", old))
            and not storage.list_keys(checkpoint_prefix(old))
            and not storage.list_keys(checkpoint_prefix("job_gone"))
        ),
        timeout=30,
        message="the worker's sweep to remove the old job's results",
    )
    # Audio, SRT, VTT, timing, word timestamps, quality report, render record: not old yet.
    assert len(storage.list_keys(result_prefix("dev", new))) == 7
    assert storage.list_keys(checkpoint_prefix(new))  # its chunk audio stays with its results
    assert storage.list_keys(voice_prefix("dev", voice_id)) == voice_keys  # as old, never swept
    spec = JobCreate.model_validate({"inputs": [{"text": "Still here."}], "voice": voice_id})
    loaded = load_cloned_voices(spec, "dev", voices=services.voices, storage=storage, can_clone=True)
    assert np.array_equal(loaded[voice_id].embedding, embedding)
    assert client.get(f"/v1/voices/{voice_id}", headers=AUTH).get_json()["status"] == "ready"


def test_delete_of_a_finished_job_leaves_no_object_and_no_key_and_another_tenant_gets_404(
    service_env, start_worker, s3_server
):
    bucket = _s3_env(service_env, s3_server)
    digest = hashlib.sha256(OTHER_KEY.encode()).hexdigest()
    service_env.extra["NARRATE_API_KEYS"] = f"other:{digest}"
    client = _client(service_env)
    start_worker(service_env)
    lines = [{"id": "guard_001", "text": "Halt! Who goes there?"}, {"id": "guard_002", "text": "Pass, friend."}]
    job_id = _submit(client, {"inputs": lines, "concatenate": False, "format": "wav"})
    job = wait_status(client, job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    s3 = s3_server.client()

    def objects(prefix: str) -> list[str]:
        return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]

    results = f"narrate/{result_prefix('dev', job_id)}"
    # Per line audio, SRT, VTT, timing, word timestamps; the manifest as JSON and CSV, the QC report and
    # the render record.
    assert len(objects(results)) == 2 * 5 + 4
    assert requests.get(job["manifest"]["url"], timeout=30).json()["job_id"] == job_id

    other = client.delete(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert other.status_code == 404 and len(objects(results)) == 2 * 5 + 4  # another tenant's delete changes nothing
    removed = client.delete(f"/v1/jobs/{job_id}", headers=AUTH)
    assert removed.status_code == 204
    assert objects(results) == [] and objects(f"narrate/checkpoints/{job_id}/") == []
    store = redis.Redis.from_url(service_env.redis_url)
    assert [key for key in store.scan_iter(match=f"{service_env.key_prefix}:*") if job_id.encode() in key] == []
    assert client.get(f"/v1/jobs/{job_id}", headers=AUTH).status_code == 404
    # The file is gone (S3 answers a signed GET of a missing key 403 or 404, depending on list rights).
    assert requests.get(job["inputs"][0]["result"]["url"], timeout=30).status_code in (403, 404)
