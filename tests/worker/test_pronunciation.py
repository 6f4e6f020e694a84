"""A lexicon entry changes what is spoken: the job's chunks carry the respelling and a speech
recogniser hears it in the delivered audio. Jobs go through the real API, Redis and storage and run in
this process on the Piper engine (as in tests/worker/test_job_results.py).

What is heard is a forced choice between the two readings (`tests.support.asr.choose`): Piper's draws
are not seeded, and free recognition of one draw varies (about one draw in five mishears "banana"). As
PocketSphinx hears them on Piper's voice, written "Nguyen" is "do in" and "Kubernetes" "cue burma
east"; the respellings "win" and "banana" are those words.
"""

from __future__ import annotations

import io

import pytest
import soundfile as sf

from tests.conftest import AUTH, wait_status
from tests.support.asr import choose
from tests.support.units import run_until_idle
from tests.worker.test_synthesis_jobs import _read, _submit
from worker.engines.base import Engine
from worker.planning import chunks_from_json
from worker.runtime import Runtime

TEXT = "We will Nguyen the game tomorrow. The cluster runs Kubernetes today."
READINGS = "we will ( win | do in ) the game tomorrow [ the cluster runs ( banana | cue burma east ) today ]"
RESPELLED = "we will win the game tomorrow the cluster runs banana today"
PLAIN = "we will do in the game tomorrow the cluster runs cue burma east today"


@pytest.fixture(scope="module")
def piper() -> Engine:
    from worker.engines.piper_engine import PiperEngine

    return PiperEngine.load()


def _heard(api_client, service_env, piper: Engine, body: dict) -> tuple[str, str]:
    job_id = _submit(api_client, {"format": "wav", **body})
    run_until_idle(Runtime(service_env.services(), piper))
    job = wait_status(api_client, job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    units = service_env.services().units
    spoken = " ".join(planned.chunk.text for planned in chunks_from_json(units.unit_chunks(job_id, 0) or "[]"))
    audio, rate = sf.read(io.BytesIO(_read(api_client, job["result"]["url"])))
    return choose(audio, rate, READINGS), spoken


def test_a_tenant_lexicon_changes_what_is_spoken(api_client, service_env, piper):
    entries = [{"match": "Nguyen", "respelling": "win"}, {"match": "kubernetes", "respelling": "banana"}]
    created = api_client.post("/v1/lexicons", json={"name": "Names", "entries": entries}, headers=AUTH)
    assert created.status_code == 201, created.get_json()

    plain, plain_text = _heard(api_client, service_env, piper, {"inputs": [{"text": TEXT}]})
    assert "Nguyen" in plain_text and plain == PLAIN, plain

    body = {"inputs": [{"text": TEXT}], "lexicons": [created.get_json()["id"]]}
    respelled, respelled_text = _heard(api_client, service_env, piper, body)
    assert respelled_text == "We will Win the game tomorrow. The cluster runs Banana today."
    assert respelled == RESPELLED, respelled


def test_ssml_sub_is_spoken_through_the_job(api_client, service_env, piper):
    ssml = '<speak><p>We will <sub alias="win">Nguyen</sub> the game tomorrow.</p></speak>'
    heard, spoken = _heard(api_client, service_env, piper, {"inputs": [{"text": ssml, "text_format": "ssml"}]})
    assert spoken == "We will win the game tomorrow." and heard == "we will win the game tomorrow", heard
