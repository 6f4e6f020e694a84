"""A narration job through the real API, queue and worker process on the tiny KaniTTS2 engine."""

from __future__ import annotations

import io

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
