"""A pickup through the real API, queue and worker process on Piper: one corrected sentence of a
finished job is spoken again, and the new version is the original's samples around it."""

from __future__ import annotations

import io
import json

import numpy as np
import soundfile as sf

from tests.conftest import AUTH, wait_for, wait_status
from tests.worker.test_synthesis_jobs import _read

TEXT = "The boats were in by noon. Siobhan walked down to the harbour. Gulls circled over the quay."


def timing(client, result: dict) -> list[dict]:
    return json.loads(_read(client, result["subtitles"]["timing"]))["cues"]


def test_a_corrected_sentence_is_drawn_alone_and_the_rest_of_the_file_is_the_original(
    api_client, service_env, start_worker
):
    service_env.extra.update(NARRATE_CHUNK_BUDGET_SECONDS="3")  # a sentence per chunk
    start_worker(service_env)
    response = api_client.post(
        "/v1/jobs", json={"inputs": [{"id": "ch1", "text": TEXT}], "format": "wav"}, headers=AUTH
    )
    job_id = response.get_json()["id"]
    original = wait_status(api_client, job_id, {"succeeded", "failed"})
    assert original["status"] == "succeeded", original["error"]
    assert original["progress"]["chunks_total"] == 3

    start = TEXT.index("Siobhan")
    body = {"ranges": [{"input": "ch1", "chars": [start, start + 7], "text": "Shivawn"}]}
    created = api_client.post(f"/v1/jobs/{job_id}/revisions", json=body, headers=AUTH)
    assert created.status_code == 202, created.get_json()
    revision_id = created.get_json()["id"]

    def published() -> dict | None:
        view = api_client.get(f"/v1/jobs/{job_id}/revisions/{revision_id}", headers=AUTH).get_json()
        assert view["status"] not in ("failed", "canceled"), view["error"]
        return view if view["version"] is not None else None

    revision = wait_for(published, timeout=120, message="the pickup to be published")
    assert revision["version"] == 2 and revision["warnings"] == []  # the same engine and model
    pickup_job = api_client.get(f"/v1/jobs/{revision_id}", headers=AUTH).get_json()
    assert pickup_job["revision_of"] == job_id
    assert pickup_job["progress"]["chunks_total"] == revision["covered_chunks"] == 1  # one chunk drawn

    job = api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
    before, rate = sf.read(io.BytesIO(_read(api_client, job["versions"][0]["result"]["url"])), dtype="float32")
    after, _ = sf.read(io.BytesIO(_read(api_client, job["result"]["url"])), dtype="float32")
    old_cue = next(c for c in timing(api_client, job["versions"][0]["result"]) if "Siobhan" in c["text"])
    new_cue = next(c for c in timing(api_client, job["result"]) if "Shivawn" in c["text"])
    # The new sentence starts where the old one did (aligned word times: within a frame or two).
    assert abs(new_cue["start"] - old_cue["start"]) < 0.05
    head = int(min(old_cue["start"], new_cue["start"]) * rate) - rate // 20
    # The next sentence is the next chunk, unchanged: from its first word on (and the pause before it,
    # silence either way) the file ends as the original did.
    old_next = next(c for c in timing(api_client, job["versions"][0]["result"]) if "Gulls" in c["text"])
    tail = len(before) - int(old_next["start"] * rate) + rate // 20
    # Around the span the samples are the original's (the chapter keeps its level gain); in it they are not.
    assert np.array_equal(after[:head], before[:head]) and np.array_equal(after[-tail:], before[-tail:])
    span = slice(head + rate // 10, head + rate // 2)
    assert not np.allclose(after[span], before[span], atol=2e-2)
