"""Weighted voice mixes through the real Flask app, Redis and local storage: in a job's `voice`, in the
speech route's `voice`, and saved as a voice of their own (`POST /v1/voices` as JSON). The parts are
ready voices whose embeddings are stored as the cloning task stores them (no worker runs here; the
mixed audio is tested in tests/worker/test_voice_mix_e2e.py)."""

from __future__ import annotations

import numpy as np
import pytest

from shared.settings import DEV_TENANT
from shared.speaker_embedding import embedding_from_bytes, embedding_to_bytes
from shared.storage_keys import embedding_key
from tests.api.test_voices import OTHER, make_client, storage_of
from tests.conftest import AUTH, ServiceEnv

CONSENT = {"by": "Jane Doe", "at": "2026-01-15T10:00:00+00:00", "recorded_at": "2026-01-15T10:00:00+00:00"}


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return vector / np.linalg.norm(vector)


def ready_voice(env: ServiceEnv, vector: np.ndarray, *, language: str | None = None, name: str = "Jane") -> str:
    """A ready cloned voice of the dev tenant with `vector` as its embedding."""
    voices = env.services().voices
    voice_id = voices.new_id()
    voices.create(voice_id, DEV_TENANT, name=name, description=None, language=language, consent=CONSENT, clips=[],
                  limit=100)  # fmt: skip
    storage_of(env).put_bytes(embedding_key(DEV_TENANT, voice_id), embedding_to_bytes(vector))
    assert voices.mark_ready(voice_id, clips=[], preview=False)
    return voice_id


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_json()
    return response.get_json()["error"]


@pytest.fixture
def client(service_env: ServiceEnv):
    return make_client(service_env)


def test_a_job_takes_a_mix_of_ready_cloned_voices_in_its_canonical_spelling(client, service_env):
    ada, ben = ready_voice(service_env, unit(1)), ready_voice(service_env, unit(2))
    body = {"inputs": [{"text": "One."}, {"text": "Two.", "voice": f"{ada} + {ben}"}], "voice": f"{ada}(7)+{ben}(3)"}
    response = client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["voice"] == f"{ada}(0.7)+{ben}(0.3)"  # weights normalised
    assert job["inputs"][1]["voice"] == f"{ada}(0.5)+{ben}(0.5)"  # no weights: equal


@pytest.mark.parametrize(
    ("voice", "code", "words"),
    [
        ("{ada}(0)+{ben}", "invalid_request", "above 0"),
        ("{ada}+{ada}", "invalid_request", "twice"),
        ("{ada}+{ben}+{ada}x+{ben}y+c", "invalid_request", "at most 4"),
        ("{ada}+voice_missing", "unknown_voice", "voice_missing"),
        ("{ada}+en_us", "mix_unsupported", "built-in"),
    ],
)
def test_a_bad_mix_is_refused_naming_why(client, service_env, voice, code, words):
    ada, ben = ready_voice(service_env, unit(1)), ready_voice(service_env, unit(2))
    body = {"inputs": [{"text": "Hello."}], "voice": voice.format(ada=ada, ben=ben)}
    error = error_of(client.post("/v1/jobs", json=body, headers=AUTH), 422)
    assert error["code"] == code and words in error["message"] and error["field"] == "voice"
    assert client.get("/v1/jobs", headers=AUTH).get_json()["data"] == []  # nothing was queued


def test_another_tenant_cannot_mix_my_voices(client, service_env):
    ada, ben = ready_voice(service_env, unit(1)), ready_voice(service_env, unit(2))
    body = {"inputs": [{"text": "Hello."}], "voice": f"{ada}+{ben}"}
    assert error_of(client.post("/v1/jobs", json=body, headers=OTHER), 422)["code"] == "unknown_voice"
    saved = client.post("/v1/voices", json={"name": "Theirs", "mix": f"{ada}+{ben}"}, headers=OTHER)
    assert error_of(saved, 422)["code"] == "unknown_voice"


def test_an_engine_that_cannot_clone_refuses_a_mix_saying_why(service_env):
    client = make_client(service_env, NARRATE_ENGINE="piper")
    body = {"inputs": [{"text": "Hello."}], "voice": "joe(0.5)+amy(0.5)"}
    error = error_of(client.post("/v1/jobs", json=body, headers=AUTH), 422)
    assert error["code"] == "mix_unsupported" and "cannot clone" in error["message"]
    speech = {"model": "tts-1", "input": "Hello.", "voice": "joe+amy"}
    error = error_of(client.post("/v1/audio/speech", json=speech, headers=AUTH), 400)
    assert error["code"] == "mix_unsupported" and error["param"] == "voice" and error["type"] == "invalid_request_error"


def test_the_speech_route_refuses_a_bad_mix_in_openais_error_shape(client, service_env):
    ada = ready_voice(service_env, unit(1))
    for voice, code in [(f"{ada}(0)+{ada}x", "invalid_voice_mix"), (f"{ada}+voice_nope", "unknown_voice")]:
        body = {"model": "tts-1", "input": "Hi.", "voice": voice}
        error = error_of(client.post("/v1/audio/speech", json=body, headers=AUTH), 400)
        assert (error["code"], error["param"]) == (code, "voice")
        assert set(error) == {"message", "type", "param", "code"}
    assert client.get("/v1/jobs", headers=AUTH).get_json()["data"] == []


def test_a_mix_saved_as_a_voice_holds_the_weighted_mean_and_works_by_id(client, service_env):
    ada, ben = ready_voice(service_env, unit(1), language="en_gb"), ready_voice(service_env, unit(2))
    response = client.post("/v1/voices", json={"name": "Old sailor", "mix": f"{ada}(0.3)+{ben}(0.7)"}, headers=AUTH)
    assert response.status_code == 201, response.get_json()
    voice = response.get_json()
    assert response.headers["Location"] == f"/v1/voices/{voice['id']}"
    assert voice["status"] == "ready" and voice["version"] == 1 and voice["consent"] is None
    assert voice["mix"] == [{"voice": ada, "weight": 0.3, "version": 1}, {"voice": ben, "weight": 0.7, "version": 1}]
    assert voice["language"] is None  # that of the heavier part (ben)
    stored = embedding_from_bytes(storage_of(service_env).get_bytes(embedding_key(DEV_TENANT, voice["id"])))
    mean = 0.3 * unit(1) + 0.7 * unit(2)
    np.testing.assert_allclose(stored, mean / np.linalg.norm(mean), atol=1e-6)

    assert client.get(f"/v1/voices/{voice['id']}", headers=AUTH).get_json()["mix"] == voice["mix"]
    job = client.post("/v1/jobs", json={"inputs": [{"text": "Ahoy."}], "voice": voice["id"]}, headers=AUTH)
    assert job.status_code == 202, job.get_json()
    # a saved mix is a voice like any other: it can be mixed again
    again = client.post("/v1/jobs", json={"inputs": [{"text": "Ahoy."}], "voice": f"{voice['id']}+{ada}"}, headers=AUTH)
    assert again.status_code == 202, again.get_json()
    assert voice["id"] in client.get("/v1/audio/voices", headers=AUTH).get_json()["voices"]


def test_a_saved_mix_is_refused_cleanly_and_stores_nothing(service_env):
    client = make_client(service_env, NARRATE_VOICES_PER_TENANT="3")
    ada, ben = ready_voice(service_env, unit(1)), ready_voice(service_env, unit(2))
    cases = [
        ({"name": "One", "mix": ada}, 422, "invalid_voice_mix"),  # a mix of one voice is that voice
        ({"name": "Bad", "mix": f"{ada}(-1)+{ben}"}, 422, "invalid_voice_mix"),
        ({"name": "Bad", "mix": f"{ada}+voice_gone"}, 422, "unknown_voice"),
        ({"mix": f"{ada}+{ben}"}, 422, "invalid_request"),  # a name is required
    ]
    for body, status, code in cases:
        assert error_of(client.post("/v1/voices", json=body, headers=AUTH), status)["code"] == code, body
    assert client.post("/v1/voices", json={"name": "Mix", "mix": f"{ada}+{ben}"}, headers=AUTH).status_code == 201
    full = client.post("/v1/voices", json={"name": "Mix 2", "mix": f"{ada}+{ben}"}, headers=AUTH)
    assert error_of(full, 409)["code"] == "voice_limit_reached"
    assert len(client.get("/v1/voices", headers=AUTH).get_json()["data"]) == 3
    assert len(storage_of(service_env).list_keys("voices/")) == 3  # one embedding each, none left over

    piper = make_client(service_env, NARRATE_ENGINE="piper")
    refused = piper.post("/v1/voices", json={"name": "Mix", "mix": f"{ada}+{ben}"}, headers=AUTH)
    assert error_of(refused, 409)["code"] == "cloning_unsupported"


def test_voices_whose_embeddings_cancel_out_make_no_mix(client, service_env):
    ada, anti = ready_voice(service_env, unit(1)), ready_voice(service_env, -unit(1))
    error = error_of(client.post("/v1/voices", json={"name": "Nobody", "mix": f"{ada}+{anti}"}, headers=AUTH), 422)
    assert error["code"] == "invalid_voice_mix" and "cancel out" in error["message"]
    assert len(client.get("/v1/voices", headers=AUTH).get_json()["data"]) == 2
