"""A narration job through the real API, queue and worker process on the tiny KaniTTS2 engine."""

from __future__ import annotations

import io
import urllib.request

import pytest
import soundfile as sf

from shared.storage import storage_from_settings
from tests.conftest import AUTH, wait_status

pytestmark = pytest.mark.slow

FRAMES = 6  # per chunk: random weights never choose to stop, so every chunk is generated to this bound
TEXT = (
    "The storm passed before dawn. Morning light filled the valley.\n\n"
    "Birds sang in the old oak. The river ran high and brown.\n\n"
    "By noon the road was dry again."
)


def test_narration_on_kanitts2_gives_a_file_of_the_expected_length(
    api_client, service_env, start_worker, tiny_kanitts2_env
):
    service_env.extra.update(
        tiny_kanitts2_env, NARRATE_KANITTS2_STREAMS="2", NARRATE_KANITTS2_MAX_FRAMES_PER_CHUNK=str(FRAMES)
    )
    start_worker(service_env)
    response = api_client.post("/v1/jobs", json={"inputs": [{"text": TEXT}], "format": "wav"}, headers=AUTH)
    assert response.status_code == 202, response.get_json()
    job = wait_status(api_client, response.get_json()["id"], {"succeeded", "failed"}, timeout=300)
    assert job["status"] == "succeeded", job["error"]
    chunks = job["progress"]["chunks_total"]
    assert chunks >= 3
    frame_seconds = 1764 / 22050
    # Every chunk is FRAMES codec frames (trimming may only shave near-silent edges).
    assert chunks * FRAMES * frame_seconds * 0.9 <= job["progress"]["audio_seconds"] <= chunks * FRAMES * frame_seconds
    audio, rate = sf.read(io.BytesIO(storage_from_settings(service_env.settings()).get_bytes(job["result"]["key"])))
    assert rate == 22050
    settings = service_env.settings()
    longest_pauses = (chunks - 1) * settings.pause_paragraph_ms / 1000
    duration = len(audio) / rate
    assert job["progress"]["audio_seconds"] - 0.1 <= duration <= job["progress"]["audio_seconds"] + longest_pauses
    assert job["rtf"] > 0


def test_chunks_that_run_on_are_drawn_again_and_the_second_draw_is_kept(
    api_client, service_env, start_worker, tiny_kanitts2_env, unused_tcp_port
):
    """Without a frame bound, random weights run every chunk to its cap (1.6 x the estimate + 3 s), far
    past what the text predicts: the worker's check refuses each first draw, the engine draws it once
    more, and the job still ends with the second draws."""
    service_env.extra.update(tiny_kanitts2_env, NARRATE_WORKER_METRICS_PORT=str(unused_tcp_port))
    start_worker(service_env)
    body = {"inputs": [{"text": "The storm passed before dawn."}], "format": "wav"}
    response = api_client.post("/v1/jobs", json=body, headers=AUTH)
    job = wait_status(api_client, response.get_json()["id"], {"succeeded", "failed"}, timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["chunks_total"] == 1
    text = urllib.request.urlopen(f"http://127.0.0.1:{unused_tcp_port}/metrics", timeout=10).read().decode()
    assert "narrate_chunks_redrawn_total 1.0" in text.splitlines()
