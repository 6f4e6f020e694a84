"""`/v1/voices` through the real Flask app, Redis and local storage (no worker: the cloning task stays
queued, and its queue message is checked). Reference audio is real speech made by the Piper voice."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import redis
import soundfile as sf

from api.auth import hash_key
from shared.queue import CLONE_VOICE_TASK
from shared.storage import LocalStorage
from tests.conftest import AUTH, ServiceEnv

OTHER_KEY = "other-tenant-key"
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}
CONSENT = {"consent_by": "Jane Doe (the speaker)", "consent_at": "2026-01-15T10:00:00Z"}


@pytest.fixture(scope="session")
def speech() -> tuple[np.ndarray, int]:
    """About 7 s of real speech from the CPU preview voice."""
    from worker.engines.base import ChunkRequest
    from worker.engines.piper_engine import PiperEngine

    engine = PiperEngine.load()
    text = "The quick brown fox jumps over the lazy dog. A voice sample for cloning, spoken clearly and slowly."
    (result,) = engine.generate([ChunkRequest(key="speech", text=text)])
    return result.audio, engine.sample_rate


def audio_bytes(audio: np.ndarray, sr: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, sr, format=fmt, subtype=subtype)
    return buffer.getvalue()


def make_client(env: ServiceEnv, **extra: str):
    from api import create_app

    env.extra.update(
        {
            "NARRATE_ENGINE": "kanitts2",
            "NARRATE_VOICE_RATE_LIMIT": "1000 per minute",
            "NARRATE_API_KEYS": f"other:{hash_key(OTHER_KEY)}",
            **extra,
        }
    )
    app = create_app(env.settings())
    app.testing = True
    return app.test_client()


@pytest.fixture
def client(service_env: ServiceEnv):
    return make_client(service_env)


def storage_of(env: ServiceEnv) -> LocalStorage:
    return LocalStorage(env.storage_url.removeprefix("file://"))


def queued_tasks(env: ServiceEnv) -> list[tuple[str, list]]:
    """(task name, args) of the messages waiting in the test's Celery queues, voices first."""
    client = redis.Redis.from_url(env.redis_url)
    out = []
    for raw in client.lrange(env.voice_queue, 0, -1) + client.lrange(env.queue, 0, -1):
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], body[0]))
    return out


def upload(client, files: list[tuple[bytes, str]], *, headers=AUTH, **fields: str):
    data: dict = {"name": "Narrator Jane", **CONSENT, **fields}
    data["files"] = [(io.BytesIO(content), name) for content, name in files]
    return client.post("/v1/voices", data=data, headers=headers, content_type="multipart/form-data")


def nothing_stored(env: ServiceEnv, client) -> None:
    assert storage_of(env).list_keys("voices/") == []
    assert client.get("/v1/voices", headers=AUTH).get_json()["data"] == []
    assert queued_tasks(env) == []


def test_clone_request_is_stored_under_the_tenant_and_queued(client, service_env, speech):
    audio, sr = speech
    wav = audio_bytes(audio, sr, "WAV", "PCM_16")
    mp3 = audio_bytes(audio[: sr * 5], sr, "MP3")
    response = upload(client, [(wav, "take1.wav"), (mp3, "take2.ogg")], description="Warm, calm", language="en-US")
    assert response.status_code == 202, response.get_json()
    voice = response.get_json()
    assert voice["status"] == "processing"
    assert voice["id"].startswith("voice_")
    assert response.headers["Location"] == f"/v1/voices/{voice['id']}"
    assert voice["name"] == "Narrator Jane" and voice["description"] == "Warm, calm" and voice["language"] == "en_us"
    assert voice["consent"]["by"] == "Jane Doe (the speaker)"
    assert voice["consent"]["at"].startswith("2026-01-15T10:00:00")
    assert [c["filename"] for c in voice["clips"]] == ["take1.wav", "take2.ogg"]
    assert voice["clips"][0]["duration_seconds"] == pytest.approx(len(audio) / sr, abs=0.01)
    assert voice["clips"][1]["duration_seconds"] == pytest.approx(5.0, abs=0.1)  # an MP3, whatever its name

    storage = storage_of(service_env)
    prefix = f"voices/dev/{voice['id']}/reference/"
    assert storage.list_keys("voices/") == [f"{prefix}clip-00", f"{prefix}clip-01"]
    assert storage.get_bytes(f"{prefix}clip-00") == wav
    assert queued_tasks(service_env) == [(CLONE_VOICE_TASK, [voice["id"]])]
    assert redis.Redis.from_url(service_env.redis_url).llen(service_env.voice_queue) == 1  # the voices' own queue

    assert client.get(f"/v1/voices/{voice['id']}", headers=AUTH).get_json() == voice
    listing = client.get("/v1/voices", headers=AUTH).get_json()
    assert [v["id"] for v in listing["data"]] == [voice["id"]]
    assert listing["engine"] == "kanitts2" and listing["can_clone"] is True
    assert {"default", "en_us"} <= {v["id"] for v in listing["builtin"]}
    assert listing["languages"] == ["en"]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("not_audio", "invalid_audio"),
        ("text_renamed_to_wav", "invalid_audio"),
        ("truncated_wav", "invalid_audio"),
        ("truncated_ogg", "invalid_audio"),
        ("one_second", "clip_too_short"),
        ("empty", "invalid_audio"),
    ],
)
def test_bad_clips_are_refused_and_nothing_is_stored(client, service_env, speech, case, code):
    audio, sr = speech
    wav = audio_bytes(audio, sr, "WAV", "PCM_16")
    ogg = audio_bytes(audio, sr, "OGG", "VORBIS")
    bad = {
        "not_audio": (bytes(range(256)) * 40, "clip.mp3"),
        "text_renamed_to_wav": (b"Dear diary, this is not a recording at all.\n" * 50, "voice.wav"),
        "truncated_wav": (wav[: len(wav) // 2], "cut.wav"),
        "truncated_ogg": (ogg[: len(ogg) * 2 // 3], "cut.ogg"),
        "one_second": (audio_bytes(audio[:sr], sr, "FLAC"), "short.flac"),
        "empty": (b"", "empty.wav"),
    }[case]
    response = upload(client, [(wav, "good.wav"), bad])
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["field"] == "files.1"
    assert bad[1] in error["message"]
    nothing_stored(service_env, client)


def test_missing_consent_name_or_files_is_refused(client, service_env, speech):
    wav = audio_bytes(*speech, "WAV")
    response = upload(client, [(wav, "a.wav")], consent_by="")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "consent_required"
    response = upload(client, [(wav, "a.wav")], consent_at="last tuesday")
    assert response.get_json()["error"]["field"] == "consent_at"
    response = upload(client, [(wav, "a.wav")], name="  ")
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "name"
    response = upload(client, [])
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "files"
    response = client.post("/v1/voices", json={"name": "x"}, headers=AUTH)  # JSON is a voice mix: it needs `mix`
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "mix"
    response = client.post("/v1/voices", data="name=x", headers=AUTH, content_type="text/plain")
    assert response.status_code == 415
    nothing_stored(service_env, client)


def test_consent_time_defaults_to_the_upload_time(client, speech):
    response = upload(client, [(audio_bytes(*speech, "WAV"), "a.wav")], consent_at="")
    consent = response.get_json()["consent"]
    assert consent["at"] == consent["recorded_at"]


def test_upload_over_the_size_limit_is_413(client, service_env):
    big = np.zeros(26 * 1024 * 1024 // 2, dtype=np.int16)  # 26 MB of 16-bit samples, ~50 MB over two files
    wav = audio_bytes(big, 22050, "WAV", "PCM_16")
    response = upload(client, [(wav, "a.wav"), (wav, "b.wav")])
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    nothing_stored(service_env, client)


def test_clip_count_voice_count_and_rate_are_limited(service_env, speech):
    client = make_client(
        service_env,
        NARRATE_VOICE_MAX_CLIPS="2",
        NARRATE_VOICES_PER_TENANT="1",
        NARRATE_VOICE_RATE_LIMIT="3 per minute",
    )
    wav = audio_bytes(*speech, "WAV")
    response = upload(client, [(wav, "a.wav")] * 3)
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "too_many_clips"
    assert upload(client, [(wav, "a.wav")] * 2).status_code == 202
    response = upload(client, [(wav, "a.wav")])
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "voice_limit_reached"
    response = upload(client, [(wav, "a.wav")])
    assert response.status_code == 429  # the fourth cloning request within a minute
    assert upload(client, [(wav, "a.wav")], headers=OTHER).status_code == 202  # limits are per tenant
    assert len(storage_of(service_env).list_keys("voices/")) == 3


def test_engine_that_cannot_clone_refuses_and_stores_nothing(service_env, speech):
    client = make_client(service_env, NARRATE_ENGINE="piper")
    response = upload(client, [(audio_bytes(*speech, "WAV"), "a.wav")])
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "cloning_unsupported"
    assert "kanitts2" in error["message"] and "piper" in error["message"]
    nothing_stored(service_env, client)
    assert client.get("/v1/voices", headers=AUTH).get_json()["can_clone"] is False


def test_another_tenants_voice_is_404_everywhere(client, service_env, speech):
    voice_id = upload(client, [(audio_bytes(*speech, "WAV"), "a.wav")]).get_json()["id"]
    service_env.services().voices.mark_ready(voice_id, clips=[], preview=False)
    assert client.get(f"/v1/voices/{voice_id}", headers=OTHER).status_code == 404
    assert client.patch(f"/v1/voices/{voice_id}", json={"name": "mine"}, headers=OTHER).status_code == 404
    assert client.delete(f"/v1/voices/{voice_id}", headers=OTHER).status_code == 404
    assert client.get("/v1/voices", headers=OTHER).get_json()["data"] == []
    job = client.post("/v1/jobs", json={"inputs": [{"text": "Hi."}], "voice": voice_id}, headers=OTHER)
    assert job.status_code == 422 and job.get_json()["error"]["code"] == "unknown_voice"
    # still intact for its owner
    assert client.get(f"/v1/voices/{voice_id}", headers=AUTH).get_json()["name"] == "Narrator Jane"
    assert storage_of(service_env).list_keys(f"voices/dev/{voice_id}/")


def test_jobs_take_only_ready_voices_of_their_tenant_per_job_or_per_input(client, service_env, speech):
    voice_id = upload(client, [(audio_bytes(*speech, "WAV"), "a.wav")]).get_json()["id"]
    body = {"inputs": [{"text": "Hello there."}], "voice": voice_id}
    response = client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "unknown_voice"  # processing
    service_env.services().voices.mark_ready(voice_id, clips=[], preview=False)
    assert client.post("/v1/jobs", json=body, headers=AUTH).status_code == 202
    per_input = {"inputs": [{"text": "One.", "voice": voice_id}, {"text": "Two.", "voice": "en_us"}]}
    response = client.post("/v1/jobs", json=per_input, headers=AUTH)
    assert response.status_code == 202
    assert [item["voice"] for item in response.get_json()["inputs"]] == [voice_id, "en_us"]


def test_rename_and_delete(client, service_env, speech):
    voice_id = upload(client, [(audio_bytes(*speech, "WAV"), "a.wav")]).get_json()["id"]
    service_env.services().voices.mark_ready(voice_id, clips=[], preview=False)
    response = client.patch(f"/v1/voices/{voice_id}", json={"name": "Jane v2", "description": None}, headers=AUTH)
    assert response.status_code == 200
    assert response.get_json()["name"] == "Jane v2" and response.get_json()["description"] is None
    assert client.patch(f"/v1/voices/{voice_id}", json={"status": "ready"}, headers=AUTH).status_code == 422
    assert client.patch(f"/v1/voices/{voice_id}", json={"name": None}, headers=AUTH).status_code == 422

    assert client.delete(f"/v1/voices/{voice_id}", headers=AUTH).status_code == 204
    assert storage_of(service_env).list_keys("voices/") == []
    assert client.get(f"/v1/voices/{voice_id}", headers=AUTH).status_code == 404
    assert client.delete(f"/v1/voices/{voice_id}", headers=AUTH).status_code == 404
    assert client.get("/v1/voices", headers=AUTH).get_json()["data"] == []
    job = client.post("/v1/jobs", json={"inputs": [{"text": "Hi."}], "voice": voice_id}, headers=AUTH)
    assert job.status_code == 422


def test_openapi_documents_the_voice_endpoints(client):
    document = client.get("/openapi.json").get_json()
    assert {"post", "get"} <= set(document["paths"]["/v1/voices"])
    assert {"get", "patch", "delete"} <= set(document["paths"]["/v1/voices/{voice_id}"])
    assert "VoiceView" in document["components"]["schemas"]
