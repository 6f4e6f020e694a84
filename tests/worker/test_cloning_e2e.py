"""Cloning end to end: API -> Redis queue -> a real Celery worker running the tiny KaniTTS2 engine and
the tiny WavLM-shaped embedder (all built offline from configs, loaded by the production loaders)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from shared.jobs import JobCreate
from shared.queue import WORK_TASK, make_celery
from shared.speaker_embedding import embedding_from_bytes
from shared.storage import LocalStorage
from shared.storage_keys import embedding_key, preview_key, voice_prefix
from shared.text.rate import SpeechRate
from tests.api.test_voices import AUTH, make_client, speech  # noqa: F401 - session fixture
from tests.conftest import ServiceEnv, wait_for, wait_status
from tests.worker.test_cloning import second_speech, wav  # noqa: F401 - session fixture
from worker.planning import PLAN_LANGUAGE

pytestmark = pytest.mark.slow

TEXT = "The storm passed before dawn. Morning light filled the valley. Birds sang in the old oak."


def wait_voice(client, voice_id: str) -> dict:
    def poll():
        voice = client.get(f"/v1/voices/{voice_id}", headers=AUTH).get_json()
        return voice if voice["status"] != "processing" else None

    return wait_for(poll, timeout=180, message=f"voice {voice_id} to be cloned")


def upload(client, clips: list[tuple[bytes, str]]) -> str:
    data = {"name": "Jane", "consent_by": "Jane Doe", "files": [(io.BytesIO(b), n) for b, n in clips]}
    response = client.post("/v1/voices", data=data, headers=AUTH, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def narrate(client, env: ServiceEnv, voice: str) -> np.ndarray:
    """One job in `voice`, planned at the same speech rate every time (the worker learns the rate from
    each job, which would otherwise change the chunks and frame caps of the next one)."""
    env.store().save_speech_rate("kanitts2", PLAN_LANGUAGE, SpeechRate(prior=14.0).to_dict())
    storage = LocalStorage(env.storage_url.removeprefix("file://"))
    body = {"inputs": [{"text": TEXT}], "voice": voice, "format": "wav", "sampling": {"seed": 7}}
    response = client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 202, response.get_json()
    job = wait_status(client, response.get_json()["id"], {"succeeded", "failed"}, timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["chunks_total"] > 1  # several chunks, each conditioned on the voice
    audio, _ = sf.read(io.BytesIO(storage.get_bytes(job["result"]["key"])), dtype="float32")
    return audio


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.allclose(a, b, atol=1e-4)


def test_clone_through_the_worker_and_narrate_with_the_voice(
    service_env: ServiceEnv,
    start_worker,
    tiny_kanitts2_env,
    speech,  # noqa: F811
    second_speech,  # noqa: F811
):
    client = make_client(service_env, **tiny_kanitts2_env)
    start_worker(service_env)
    storage = LocalStorage(service_env.storage_url.removeprefix("file://"))

    jane = upload(client, [(wav(*speech), "one.wav"), (wav(*second_speech), "two.wav")])
    other = upload(client, [(wav(*second_speech), "two.wav")])
    alone = upload(client, [(wav(*speech), "one.wav")])
    vectors = []
    for voice_id in (jane, other, alone):
        voice = wait_voice(client, voice_id)
        assert voice["status"] == "ready", voice["error"]
        vectors.append(embedding_from_bytes(storage.get_bytes(embedding_key("dev", voice_id))))
        assert vectors[-1].shape == (128,) and np.linalg.norm(vectors[-1]) == pytest.approx(1.0, abs=1e-5)
        assert voice["preview_url"]
        preview, rate = sf.read(io.BytesIO(storage.get_bytes(preview_key("dev", voice_id))))
        assert rate == 22050 and len(preview) > 0
    # Two clips make the average of their voices, not either one alone (a random tiny embedder puts all
    # clips close together, so the exact mean is asserted rather than a similarity threshold).
    mean = vectors[1] + vectors[2]
    np.testing.assert_allclose(vectors[0], mean / np.linalg.norm(mean), atol=1e-4)
    assert float(vectors[0] @ vectors[1]) < 0.9999 and float(vectors[0] @ vectors[2]) < 0.9999
    assert "one.wav" in str(client.get(f"/v1/voices/{jane}", headers=AUTH).get_json()["clips"])

    audio, sr = speech
    padded = np.concatenate([np.zeros(3 * sr, np.float32), audio[: 2 * sr]])  # 2 s of speech in 5 s
    short = wait_voice(client, upload(client, [(wav(padded, sr), "short.wav")]))
    assert short["status"] == "failed" and short["error"]["code"] == "too_short"
    assert "short.wav" in short["error"]["message"]
    assert storage.list_keys(voice_prefix("dev", short["id"])) == []

    first = narrate(client, service_env, jane)
    again = narrate(client, service_env, jane)
    assert same(first, again)  # same voice, seed and text: the same audio ...
    assert not same(first, narrate(client, service_env, other))  # ... so another embedding changed the model's output
    assert not same(first, narrate(client, service_env, "default"))  # and so does no embedding at all

    # A job queued while the voice existed, which is deleted before a worker starts it.
    store = service_env.store()
    job_id, _ = store.create("dev", JobCreate(inputs=[{"text": TEXT}], voice=other), body_hash="x")
    assert client.delete(f"/v1/voices/{other}", headers=AUTH).status_code == 204
    assert storage.list_keys(voice_prefix("dev", other)) == []
    make_celery(service_env.settings(), "test").send_task(WORK_TASK, queue=service_env.queue)  # its token
    job = wait_status(client, job_id, {"succeeded", "failed"})
    assert job["status"] == "failed" and job["error"]["code"] == "voice_deleted"


def test_a_voice_is_cloned_while_narrations_wait_for_a_synthesis_worker(
    service_env: ServiceEnv,
    start_worker,
    tiny_kanitts2_env,
    speech,  # noqa: F811
):
    """Voices have their own queue: a worker that consumes only it (compose's `voices`) clones while
    the synthesis queue is full, and takes no narration."""
    client = make_client(service_env, **tiny_kanitts2_env)
    start_worker(service_env, queues=service_env.voice_queue)
    response = client.post("/v1/jobs", json={"inputs": [{"text": TEXT}], "format": "wav"}, headers=AUTH)
    assert response.status_code == 202, response.get_json()
    voice = wait_voice(client, upload(client, [(wav(*speech), "one.wav")]))
    assert voice["status"] == "ready", voice["error"]
    assert client.get(f"/v1/jobs/{response.get_json()['id']}", headers=AUTH).get_json()["status"] == "queued"
