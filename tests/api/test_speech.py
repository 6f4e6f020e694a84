"""`POST /v1/audio/speech` through OpenAI's own Python client, against the real stack: gunicorn API
(the project's config, 2 workers), a Celery worker with the Piper engine, Redis and file storage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import openai
import pytest

from devstack.stack import LocalStack
from shared.audio.decode import decode_audio
from shared.settings import DEV_KEY
from tests.conftest import ServiceEnv
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


def _seconds(data: bytes, fmt: str) -> float:
    if fmt == "pcm":  # 24 kHz 16-bit mono little endian, no header
        assert len(data) % 2 == 0
        return len(data) / 2 / 24000
    audio, rate = decode_audio(data)
    assert rate == 24000
    assert np.abs(audio).max() > 0.01, "silence"
    return len(audio) / rate


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
    job = client.get(f"/jobs/{job_id}", cast_to=object)
    assert job["status"] == "succeeded"
    assert job["priority"] == "interactive"
    assert job["usage"]["characters"] == len(TEXT)
    assert _seconds(raw.content, "mp3") > 2.5
