"""Job results through the real API, Redis store and storage, with each job run in this process on
the Piper engine: what they check (files, manifest, learned speech rate, S3 and presigned links) does
not depend on a worker process, so they leave the real-process tests (tests/worker/test_synthesis_jobs.py)
to what only a real worker shows.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable

import pytest
import requests
import soundfile as sf

from shared.storage_keys import manifest_key
from tests.conftest import ServiceEnv, wait_status
from tests.support.units import run_until_idle
from tests.worker.test_synthesis_jobs import _read, _submit
from worker.engines.base import Engine
from worker.runtime import Runtime


@pytest.fixture(scope="module")
def piper() -> Engine:
    from worker.engines.piper_engine import PiperEngine

    return PiperEngine.load()


@pytest.fixture
def run_queued(piper: Engine) -> Callable[[ServiceEnv, str], None]:
    """run_queued(env, job_id): the job's delivery, handled in this process as a worker would."""

    def run(env: ServiceEnv, job_id: str) -> None:
        run_until_idle(Runtime(env.services(), piper))

    return run


def test_batch_of_lines_gives_one_file_per_input_and_a_manifest(api_client, service_env, run_queued):
    lines = [
        {"id": "guard_001", "text": "Halt! Who goes there?"},
        {"id": "merchant_001", "text": "Potions, scrolls, rope! Fifty feet of rope for only 3 gold coins."},
        {"id": "narrator_002", "text": "Three days later, on the 14th of March, the expedition reached the pass."},
    ]
    job_id = _submit(api_client, {"inputs": lines, "concatenate": False, "format": "wav", "sample_rate": 16000})
    run_queued(service_env, job_id)
    job = wait_status(api_client, job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    assert job["result"] is None
    by_id = {item["id"]: item["result"] for item in job["inputs"]}
    assert set(by_id) == {line["id"] for line in lines}
    for line in lines:
        result = by_id[line["id"]]
        assert result["filename"] == f"{line['id']}.wav"
        audio, rate = sf.read(io.BytesIO(_read(api_client, result["url"])))
        assert rate == 16000 and 0.5 < len(audio) / rate < 12
    link = job["manifest"]  # the manifest has its own link in the job
    assert link["key"] == manifest_key("dev", job_id, 1)
    data = _read(api_client, link["url"])
    assert len(data) == link["bytes"] and hashlib.sha256(data).hexdigest() == link["sha256"]
    manifest = json.loads(data)
    assert manifest["job_id"] == job_id
    assert [entry["id"] for entry in manifest["files"]] == [line["id"] for line in lines]
    for entry, line in zip(manifest["files"], lines, strict=True):
        assert (entry["file"], entry["sha256"]) == (by_id[line["id"]]["filename"], by_id[line["id"]]["sha256"])
        assert entry["voice"] == "joe" and entry["status"] == "succeeded"
        assert entry["text_sha256"] == hashlib.sha256(line["text"].encode()).hexdigest()


def test_the_worker_learns_the_speech_rate_and_plans_later_jobs_with_it(api_client, service_env, run_queued):
    store = service_env.store()
    first = _submit(api_client, {"inputs": [{"text": "One sentence to measure. And a second one, a little longer."}]})
    run_queued(service_env, first)
    assert wait_status(api_client, first, {"succeeded", "failed"})["status"] == "succeeded"
    units = service_env.services().units
    assert units.plan(first)["chars_per_second"] == 14.0  # the configured prior, kept with the plan
    learned = store.speech_rate("piper", "en")
    assert learned["samples"] == 1 and learned["chars_per_second"] != 14.0
    second = _submit(api_client, {"inputs": [{"text": "Planned with what was learned."}]})
    run_queued(service_env, second)
    assert wait_status(api_client, second, {"succeeded", "failed"})["status"] == "succeeded"
    assert units.plan(second)["chars_per_second"] == pytest.approx(learned["chars_per_second"])


def test_results_go_to_s3_over_http_and_download_through_presigned_urls(api_client, service_env, run_queued, s3_server):
    bucket = s3_server.create_bucket()
    service_env.storage_url = f"s3://{bucket}/narrate"
    service_env.extra.update(s3_server.env)
    from api import create_app

    client = create_app(service_env.settings()).test_client()
    job_id = _submit(
        client, {"inputs": [{"text": "Stored in a bucket. Fetched through a signed link."}], "format": "flac"}
    )
    run_queued(service_env, job_id)
    job = wait_status(client, job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    url = job["result"]["url"]
    assert url.startswith(s3_server.endpoint_url) and "Signature" in url
    data = requests.get(url, timeout=30).content
    assert hashlib.sha256(data).hexdigest() == job["result"]["sha256"]
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"narrate/results/dev/{job_id}/run-1/{job_id}.flac" in keys
    # The chunk audio stays only where the render record names it (a pickup stitches between it).
    render = f"narrate/results/dev/{job_id}/run-1/render.json"
    record = json.loads(s3_server.client().get_object(Bucket=bucket, Key=render)["Body"].read())
    named = {f"narrate/{chunk['part']}" for chunk in record["chunks"].values()}
    assert {k for k in keys if "/checkpoints/" in k} == named
