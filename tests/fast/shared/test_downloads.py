"""`shared.downloads.mint_view` on the real Redis and a local directory: a job record holds keys, and
every read turns them into links that open the right object until they expire."""

from __future__ import annotations

import time

import pytest

from shared.downloads import FILES_ROUTE, LinkExpired, Links, mint_view
from shared.jobs import JobCreate, JobStatus, StoredFile, StoredObject, StoredResult
from shared.storage_keys import manifest_key, result_prefix

pytestmark = pytest.mark.fast

SPEC = JobCreate(inputs=[{"id": "a", "text": "One."}, {"id": "b", "text": "Two."}], concatenate=False)


def _stored(job_id: str, input_id: str) -> StoredFile:
    stem = f"{result_prefix('dev', job_id)}{input_id}"
    return StoredFile(
        key=f"{stem}.mp3",
        filename=f"{input_id}.mp3",
        format="mp3",
        duration_seconds=1.0,
        bytes=3,
        sha256="0" * 64,
        subtitles={"srt": f"{stem}.srt", "vtt": f"{stem}.vtt", "timing": f"{stem}.json"},
    )


def _succeeded(services, result: dict) -> str:
    job_id, _ = services.jobs.create("dev", SPEC, body_hash="h")
    outcome, _ = services.jobs.transition(job_id, (JobStatus.QUEUED,), JobStatus.SUCCEEDED, result=result)
    assert outcome == "ok"
    return job_id


def test_each_read_mints_links_to_the_stored_keys_that_expire(services):
    job_id = _succeeded(services, {})
    stored = StoredResult(
        inputs={"a": _stored(job_id, "a"), "b": _stored(job_id, "b")},
        manifest=StoredObject(key=manifest_key("dev", job_id, 1), bytes=10, sha256="1" * 64),
    )
    services.jobs.transition(job_id, (JobStatus.SUCCEEDED,), JobStatus.SUCCEEDED, result=stored.model_dump(mode="json"))
    raw = services.jobs.view(job_id)
    assert raw.result is None and raw.manifest is None and all(item.result is None for item in raw.inputs)

    view = mint_view(services, raw, base_url="https://tts.example.com/")
    links = services.links
    for item in view.inputs:
        assert item.result is not None and item.result.key == f"{result_prefix('dev', job_id)}{item.id}.mp3"
        assert item.result.url.startswith(f"https://tts.example.com{FILES_ROUTE}")
        grant = links.open(item.result.url.rsplit("/", 1)[1])
        assert (grant.key, grant.filename, grant.content_type) == (item.result.key, f"{item.id}.mp3", "audio/mpeg")
        assert abs(item.result.url_expires_at.timestamp() - (time.time() + links.expiry_seconds)) < 5
        timing = links.open(item.result.subtitles["timing"].rsplit("/", 1)[1])
        assert (timing.key, timing.content_type) == (item.result.key.replace(".mp3", ".json"), "application/json")
    assert view.manifest is not None and links.open(view.manifest.url.rsplit("/", 1)[1]).key == stored.manifest.key
    assert mint_view(services, raw, base_url="").manifest.url.startswith(FILES_ROUTE)  # relative to the API

    # A link minted by another process of this deployment (same key) whose time is up.
    past = Links(services.storage, expiry_seconds=-5, secret=lambda: services.jobs.shared_secret("download-signing"))
    url, _ = past.link("results/x.mp3", "x.mp3", base_url="")
    with pytest.raises(LinkExpired):
        links.open(url.removeprefix(FILES_ROUTE))


def test_a_record_written_with_urls_still_yields_keys_and_fresh_links(services):
    """Records from before links were minted at read time held the URLs of their first hour."""
    job_id = _succeeded(services, {})
    legacy = {
        "url": "file:///var/storage/old.mp3",
        **_stored(job_id, "a").model_dump(mode="json", exclude={"subtitles"}),
        "subtitles": {kind: f"file:///var/storage/a.{kind}" for kind in ("srt", "vtt", "timing")},
    }
    services.jobs.transition(job_id, (JobStatus.SUCCEEDED,), JobStatus.SUCCEEDED, result={"file": legacy, "inputs": {}})
    stored = services.jobs.view(job_id).stored_result.file
    assert stored is not None
    assert stored.subtitles == {
        kind: legacy["key"].replace(".mp3", f".{ext}")
        for kind, ext in (("srt", "srt"), ("vtt", "vtt"), ("timing", "json"))
    }
    view = mint_view(services, services.jobs.view(job_id), base_url="")
    assert view.result is not None and view.result.url.startswith(FILES_ROUTE)
