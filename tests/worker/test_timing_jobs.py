"""Timing outputs of whole jobs through the real API, Redis store and storage, run on the Piper engine
in this process as a worker would: word timestamps and per-sentence cues beside every file, the
read-along EPUB of a book, lip-sync data per line in a batch's manifest, and the setting that turns
alignment off."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Callable

import pytest

from tests.conftest import AUTH, ServiceEnv, wait_status
from tests.support.units import run_until_idle
from tests.worker.test_synthesis_jobs import _read, _submit
from worker.engines.base import Engine
from worker.runtime import Runtime

pytestmark = pytest.mark.slow

TEXT = "Dr. Reed paid $12 for the map. It was old.\n\nThe ship left at noon. Nobody waved."


@pytest.fixture(scope="module")
def piper() -> Engine:
    from worker.engines.piper_engine import PiperEngine

    return PiperEngine.load()


@pytest.fixture
def run_queued(piper: Engine) -> Callable[[ServiceEnv], None]:
    def run(env: ServiceEnv) -> None:
        run_until_idle(Runtime(env.services(), piper))

    return run


def test_a_book_gets_word_timestamps_sentence_cues_and_a_read_along_epub(api_client, service_env, run_queued):
    body = {
        "inputs": [{"id": "one", "title": "One", "text": TEXT}, {"id": "two", "text": "Short and sweet."}],
        "format": "mp3",
        "book": {"title": "Tales", "read_along": True},
    }
    job_id = _submit(api_client, body)
    run_queued(service_env)
    job = wait_status(api_client, job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    links = job["result"]["subtitles"]
    assert set(links) == {"srt", "vtt", "timing", "words", "read_along"}
    words = json.loads(_read(api_client, links["words"]))
    assert words["chunks"]["estimated"] == 0 and words["chunks"]["aligned"] >= 2
    texts = {"one": TEXT, "two": "Short and sweet."}
    for word in words["words"]:
        assert texts[word["input"]][word["char_start"] : word["char_end"]] == word["word"]
        assert word["timing"] == "aligned" and word["end"] > word["start"]
    assert [w["word"] for w in words["words"][:4]] == ["Dr.", "Reed", "paid", "$12"]
    srt = _read(api_client, links["srt"]).decode()
    assert srt.count("-->") == 5 and "Dr. Reed paid $12 for the map." in srt
    book = zipfile.ZipFile(io.BytesIO(_read(api_client, links["read_along"])))
    assert book.read("mimetype") == b"application/epub+zip"
    assert {"OEBPS/chapter1.smil", "OEBPS/chapter2.smil", "OEBPS/audio/book.mp3"} <= set(book.namelist())


def test_each_line_of_a_batch_carries_its_lip_sync_data_in_the_manifest(api_client, service_env, run_queued):
    lines = [{"id": "guard_001", "text": "Halt! Who goes there?"}, {"id": "guard_002", "text": "Move along."}]
    job_id = _submit(api_client, {"inputs": lines, "concatenate": False, "format": "wav"})
    run_queued(service_env)
    job = wait_status(api_client, job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    manifest = json.loads(_read(api_client, job["manifest"]["url"]))
    for entry in manifest["files"]:
        lipsync = entry["lipsync"]
        assert lipsync["timing"] == "aligned"
        assert [p["phone"] for p in lipsync["phonemes"] if p["phone"] != "SIL"][:2] in (["HH", "AO"], ["M", "UW"])
        assert lipsync["visemes"] and lipsync["visemes"][-1]["end"] <= entry["duration_seconds"]


def test_with_alignment_off_word_times_are_estimated_and_say_so(api_client, service_env, run_queued):
    env = dataclasses.replace(service_env, extra={"NARRATE_ALIGNMENT": "false"})
    job_id = _submit(api_client, {"inputs": [{"text": TEXT}], "format": "wav"})
    run_queued(env)
    job = wait_status(api_client, job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    words = json.loads(_read(api_client, job["result"]["subtitles"]["words"]))
    assert words["chunks"]["aligned"] == 0 and {w["timing"] for w in words["words"]} == {"estimated"}
    assert _read(api_client, job["result"]["subtitles"]["vtt"]).decode().count("-->") == 4


def test_a_read_along_book_needs_one_file_for_all_inputs(api_client):
    body = {
        "inputs": [{"text": "One."}, {"text": "Two."}],
        "concatenate": False,
        "book": {"read_along": True},
    }
    response = api_client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code in (400, 422)
    assert "read_along" in json.dumps(response.get_json())
