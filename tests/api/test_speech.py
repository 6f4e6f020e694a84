"""`POST /v1/audio/speech` through OpenAI's own Python client, against the real stack: gunicorn API
(the project's config, 2 workers), a Celery worker with the Piper engine, Redis and file storage."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import av
import numpy as np
import openai
import pytest
import requests

from devstack.stack import LocalStack
from shared.audio.loudness import integrated_loudness
from shared.settings import DEV_KEY
from tests.conftest import ServiceEnv, wait_for
from tests.support.processes import free_port

pytestmark = pytest.mark.slow

TEXT = "The lighthouse keeper counted the ships as they came home before the storm."


@pytest.fixture(scope="module")
def stack(redis_url: str, key_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    prefix = f"{key_prefix}-{uuid.uuid4().hex[:6]}"
    root = tmp_path_factory.mktemp("speech")
    env = ServiceEnv(redis_url, prefix, f"{prefix}-q", f"file://{root / 'storage'}")
    with LocalStack(port=free_port(), api_workers=2, env=env.env(), log_dir=root / "logs", echo=False) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=DEV_KEY, max_retries=0, timeout=120)


def _decoded(data: bytes, fmt: str = "mp3") -> np.ndarray:
    """A response's samples at 24 kHz, decoded by FFmpeg (PyAV) as players do: a streamed MP3 has no
    length header, which libsndfile's own check takes for truncation."""
    if fmt == "pcm":  # 24 kHz 16-bit mono little endian, no header
        assert len(data) % 2 == 0
        return np.frombuffer(data, "<i2").astype(np.float32) / 32767
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(audio=0))
    assert {frame.sample_rate for frame in frames} == {48000 if fmt == "opus" else 24000}
    audio = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
    return audio[::2] if fmt == "opus" else audio  # Ogg Opus always decodes at 48 kHz


def _seconds(data: bytes, fmt: str) -> float:
    """Seconds of speech in a response."""
    audio = _decoded(data, fmt)
    assert np.abs(audio).max() > 0.01, "silence"
    return len(audio) / 24000


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_response_format_decodes_to_speech_of_plausible_length(client, fmt):
    response = client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format=fmt)
    seconds = _seconds(response.read(), fmt)
    # about 14 characters a second of speech: 76 characters are a few seconds
    assert 2.5 < seconds < 12.0, seconds


def test_pcm_is_16_bit_little_endian_samples(client):
    """Read as little endian the samples are speech (neighbours close, as 24 kHz audio of a voice is);
    read byte-swapped they would jump about like noise."""
    pcm = client.audio.speech.create(model="tts-1", voice="joe", input=TEXT, response_format="pcm").read()
    right = np.frombuffer(pcm, "<i2").astype(np.float64)
    swapped = np.frombuffer(pcm, ">i2").astype(np.float64)

    def roughness(samples):
        return np.abs(np.diff(samples)).mean() / np.abs(samples).mean()

    assert np.abs(right).max() > 1000
    assert roughness(right) < 0.5 < roughness(swapped)


def test_speed_time_stretches_the_speech(client):
    normal = _seconds(
        client.audio.speech.create(model="tts-1", voice="joe", input=TEXT, response_format="flac").read(), "flac"
    )
    fast = _seconds(
        client.audio.speech.create(model="tts-1", voice="joe", input=TEXT, response_format="flac", speed=2.0).read(),
        "flac",
    )
    slow = _seconds(
        client.audio.speech.create(model="tts-1", voice="joe", input=TEXT, response_format="flac", speed=0.5).read(),
        "flac",
    )
    assert fast == pytest.approx(normal / 2, rel=0.05)
    assert slow == pytest.approx(normal * 2, rel=0.05)


def test_instructions_are_accepted_and_ignored(client):
    response = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="nova", input=TEXT, response_format="wav", instructions="Speak like a pirate."
    )
    assert _seconds(response.read(), "wav") > 2.5


def test_too_long_input_is_a_clean_400_pointing_to_jobs(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts-1", voice="alloy", input="word " * 1000)
    error = caught.value.body
    assert error["code"] == "input_too_long"
    assert error["param"] == "input"
    assert "/v1/jobs" in error["message"] and "4096" in error["message"]


def test_an_unknown_voice_is_a_clean_400_naming_the_voice(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts-1", voice="nobody-here", input=TEXT)
    assert caught.value.body["param"] == "voice"
    assert "nobody-here" in caught.value.body["message"]


def test_bad_values_and_keys_are_errors_in_openais_shape(client, stack):
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, speed=5.0)
    assert caught.value.body["param"] == "speed" and caught.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="no-such-model", voice="alloy", input=TEXT)
    assert caught.value.body["param"] == "model"
    stranger = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        stranger.audio.speech.create(model="tts-1", voice="alloy", input=TEXT)
    assert caught.value.body["type"] == "authentication_error"


def test_models_and_voices_are_listed_as_openai_clients_expect(client, stack):
    ids = [model.id for model in client.models.list()]
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "piper"} <= set(ids)
    voices = client.get("/audio/voices", cast_to=object)
    assert "joe" in voices["voices"]
    assert voices["aliases"]["alloy"] is None  # spoken by the engine's default voice


def test_the_speech_is_a_job_of_the_tenant_with_its_usage_counted(client, stack):
    raw = client.audio.speech.with_raw_response.create(model="tts-1", voice="joe", input=TEXT, response_format="mp3")
    job_id = raw.headers["X-Narrate-Job"]
    # mp3 streams: the answer ends with the last chunk, the job's file is assembled just after it
    job = wait_for(lambda: (j := client.get(f"/jobs/{job_id}", cast_to=object))["status"] == "succeeded" and j)
    assert job["priority"] == "interactive"
    assert job["usage"]["characters"] == len(TEXT)
    assert _seconds(raw.content, "mp3") > 2.5


PASSAGE = " ".join(
    f"Chapter {n} began on a grey morning, when the harbour bells rang out across the water and the "
    "fishermen hauled their nets ashore, talking quietly about the weather that was coming in from the west."
    for n in range(1, 7)
)
"""About 1,000 characters: several chunks, so the first is spoken well before the job ends."""


def test_streaming_sends_the_first_audio_before_the_job_has_finished(client):
    started = time.time()
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=PASSAGE, response_format="mp3"
    ) as response:
        job_id = response.headers["X-Narrate-Job"]
        parts, first_at = [], None
        for part in response.iter_bytes():
            if part and first_at is None:
                first_at = time.time()
            parts.append(part)
    streamed_at = time.time()
    # the stream ends with the last chunk; the job's file is assembled after it
    job = wait_for(lambda: (j := client.get(f"/jobs/{job_id}", cast_to=object))["status"] == "succeeded" and j)
    finished_at = datetime.fromisoformat(job["finished_at"]).timestamp()
    print(
        f"first audio byte after {first_at - started:.2f} s, last after {streamed_at - started:.2f} s; "
        f"job finished after {finished_at - started:.2f} s"
    )
    assert job["status"] == "succeeded" and job["progress"]["chunks_total"] > 1
    assert first_at < finished_at
    seconds = _seconds(b"".join(parts), "mp3")
    assert seconds == pytest.approx(job["result"]["duration_seconds"], rel=0.1)  # all of it, pauses included
    # at the job's level (-19 LUFS by default), as its file is, by one gain set on the first chunk
    assert integrated_loudness(_decoded(b"".join(parts)), 24000) == pytest.approx(-19.0, abs=1.5)


def test_sse_sends_base64_audio_deltas_then_done(stack):
    response = requests.post(
        f"{stack.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "joe", "input": TEXT, "response_format": "pcm", "stream_format": "sse"},
        headers={"Authorization": f"Bearer {DEV_KEY}"},
        stream=True,
        timeout=120,
    )
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert [e["type"] for e in events][-1] == "speech.audio.done"
    assert {e["type"] for e in events[:-1]} == {"speech.audio.delta"}
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert 2.5 < len(pcm) / 2 / 24000 < 12.0
    assert events[-1]["usage"]["input_tokens"] == len(TEXT)


def test_a_client_that_goes_away_cancels_the_job(client):
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="joe", input=(PASSAGE * 4)[:4000], response_format="pcm"
    ) as response:
        job_id = response.headers["X-Narrate-Job"]
        next(response.iter_bytes())
    # the connection is closed here, long before the job's 4,000 characters are spoken
    wait_for(lambda: client.get(f"/jobs/{job_id}", cast_to=object)["status"] == "canceled", timeout=60)


def test_twenty_concurrent_streams_on_two_api_workers_all_complete(stack):
    """deploy/gunicorn.conf.py's gevent workers: each stream is a greenlet waiting on Redis, so 20 at once
    on 2 API processes all finish while the API still answers other requests."""
    from concurrent.futures import ThreadPoolExecutor

    def one(n: int) -> bytes:
        body = {
            "model": "tts-1",
            "voice": "joe",
            "input": f"Stream number {n} is speaking now.",
            "response_format": "pcm",
        }
        with requests.post(
            f"{stack.url}/v1/audio/speech", json=body, headers={"Authorization": f"Bearer {DEV_KEY}"},
            stream=True, timeout=300,
        ) as response:  # fmt: skip
            assert response.status_code == 200, response.text
            return b"".join(response.iter_content(chunk_size=None))

    with ThreadPoolExecutor(max_workers=20) as pool:
        streams = [pool.submit(one, n) for n in range(20)]
        assert requests.get(f"{stack.url}/healthz", timeout=10).status_code == 200
        results = [future.result() for future in streams]
    assert all(1.0 < _seconds(pcm, "pcm") < 8.0 for pcm in results)
