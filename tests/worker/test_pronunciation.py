"""A lexicon entry changes what is spoken: the job's chunks carry the respelling and a speech
recogniser hears it in the delivered audio. Jobs go through the real API, Redis and storage and run in
this process on the Piper engine (as in tests/worker/test_job_results.py).

Words chosen where PocketSphinx on Piper's voice is reliable: written "Nguyen" it hears "do in"; the
respelling "win" it hears as "win". "Kubernetes" (heard "que burma east") respelled "banana" is heard
"banana".
"""

from __future__ import annotations

import io

import pytest
import soundfile as sf

from tests.conftest import AUTH, wait_status
from tests.support.asr import transcribe
from tests.support.units import run_until_idle
from tests.worker.test_synthesis_jobs import _read, _submit
from worker.engines.base import Engine
from worker.planning import chunks_from_json
from worker.runtime import Runtime

TEXT = "We will Nguyen the game tomorrow. The cluster runs Kubernetes today."


@pytest.fixture(scope="module")
def piper() -> Engine:
    from worker.engines.piper_engine import PiperEngine

    return PiperEngine.load()


def _heard(api_client, service_env, piper: Engine, body: dict) -> tuple[list[str], str]:
    job_id = _submit(api_client, {"format": "wav", **body})
    run_until_idle(Runtime(service_env.services(), piper))
    job = wait_status(api_client, job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    units = service_env.services().units
    spoken = " ".join(planned.chunk.text for planned in chunks_from_json(units.unit_chunks(job_id, 0) or "[]"))
    audio, rate = sf.read(io.BytesIO(_read(api_client, job["result"]["url"])))
    return transcribe(audio, rate), spoken


def test_a_tenant_lexicon_changes_what_is_spoken(api_client, service_env, piper):
    entries = [{"match": "Nguyen", "respelling": "win"}, {"match": "kubernetes", "respelling": "banana"}]
    created = api_client.post("/v1/lexicons", json={"name": "Names", "entries": entries}, headers=AUTH)
    assert created.status_code == 201, created.get_json()

    plain, plain_text = _heard(api_client, service_env, piper, {"inputs": [{"text": TEXT}]})
    assert "Nguyen" in plain_text and "win" not in plain and "banana" not in plain

    body = {"inputs": [{"text": TEXT}], "lexicons": [created.get_json()["id"]]}
    respelled, respelled_text = _heard(api_client, service_env, piper, body)
    assert respelled_text == "We will Win the game tomorrow. The cluster runs Banana today."
    assert "win" in respelled and "banana" in respelled, respelled


def test_ssml_sub_is_spoken_through_the_job(api_client, service_env, piper):
    ssml = '<speak><p>We will <sub alias="win">Nguyen</sub> the game tomorrow.</p></speak>'
    heard, spoken = _heard(api_client, service_env, piper, {"inputs": [{"text": ssml, "text_format": "ssml"}]})
    assert spoken == "We will win the game tomorrow." and "win" in heard, heard
