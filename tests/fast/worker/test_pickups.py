"""Pickups (`shared.revisions`): a span of a succeeded job drawn again and published as a new version.

The API in process, the units run by `run_until_idle` on the fake engine (its tone's pitch follows the
seed, its length the text), real Redis and local storage: what was drawn is counted from the engine,
what was published is decoded from the files.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from shared.services import Services
from tests.conftest import AUTH, ServiceEnv
from tests.support.fake_engine import CHARS_PER_SECOND, FakeEngine
from tests.support.units import run_until_idle
from worker.runtime import Runtime

pytestmark = pytest.mark.fast

SENTENCES = [
    "The storm passed before dawn.",
    "Morning light filled the valley.",
    "Birds sang in the old oak.",
    "The river ran high and brown.",
    "By noon the road was dry again.",
    "Carts rolled toward the town.",
]
TEXT = " ".join(SENTENCES[:3]) + "\n\n" + " ".join(SENTENCES[3:])


@pytest.fixture
def service_env(service_env: ServiceEnv) -> ServiceEnv:
    service_env.extra.update(NARRATE_CHUNK_BUDGET_SECONDS="2.5")  # a sentence per chunk
    return service_env


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def rt(services: Services, engine: FakeEngine) -> Runtime:
    return Runtime(services, engine)


def finished_job(api_client, rt: Runtime) -> str:
    body = {"inputs": [{"id": "ch1", "text": TEXT}], "format": "wav", "sampling": {"seed": 3}}
    response = api_client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 202, response.get_json()
    run_until_idle(rt)
    job_id = response.get_json()["id"]
    assert api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()["status"] == "succeeded"
    return job_id


def pickup(api_client, rt: Runtime, job_id: str, body: dict) -> dict:
    response = api_client.post(f"/v1/jobs/{job_id}/revisions", json=body, headers=AUTH)
    assert response.status_code == 202, response.get_json()
    run_until_idle(rt)
    return revision(api_client, job_id, response.get_json()["id"])


def revision(api_client, job_id: str, revision_id: str) -> dict:
    response = api_client.get(f"/v1/jobs/{job_id}/revisions/{revision_id}", headers=AUTH)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def audio_of(services: Services, key: str) -> np.ndarray:
    audio, _ = sf.read(io.BytesIO(services.storage.get_bytes(key)), dtype="float32")
    return audio


def test_a_pickup_draws_only_the_covered_chunk_and_the_new_version_differs_only_there(api_client, services, rt, engine):
    job_id = finished_job(api_client, rt)
    first_draws = len(engine.draws)
    original = api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()

    done = pickup(api_client, rt, job_id, {"ranges": [{"input": "ch1", "sentences": [4, 4]}], "seed": 11})

    assert done["status"] == "succeeded" and done["version"] == 2 and done["picked"] == 1
    drawn = [key for key, _ in engine.draws[first_draws:]]
    assert len(drawn) == done["covered_chunks"] == 1 and drawn[0].endswith("~t1")
    # The chunk continues from its neighbour in the original render (the carry of the chunk before it).
    (carry,) = engine.calls[-1].carry_in.values()
    assert carry.endswith(b":00000-00003")
    job = api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
    assert [v["version"] for v in job["versions"]] == [1, 2]
    assert job["versions"][0]["result"]["key"] == original["result"]["key"]
    assert job["result"]["key"] == job["versions"][1]["result"]["key"] != original["result"]["key"]

    before = audio_of(services, original["result"]["key"])
    after = audio_of(services, job["result"]["key"])
    assert len(before) == len(after)  # the fake's length follows the text: the span kept its length
    changed = np.flatnonzero(after != before)
    rate = FakeEngine.sample_rate
    span = len(SENTENCES[4]) / CHARS_PER_SECOND
    assert (changed[-1] - changed[0]) / rate == pytest.approx(span, abs=0.05)  # one chunk's length
    outside = np.ones(len(before), bool)
    outside[changed[0] : changed[-1] + 1] = False
    # Outside the span the samples are the original's: the chapter keeps its level gain.
    assert np.array_equal(after[outside], before[outside])


def test_takes_are_offered_the_picked_one_is_published_and_its_seed_draws_it_again(api_client, services, rt, engine):
    job_id = finished_job(api_client, rt)
    ranges = [{"input": "ch1", "chars": [TEXT.index("Birds"), TEXT.index("oak.") + 4]}]
    offered = pickup(api_client, rt, job_id, {"ranges": ranges, "takes": 3, "seed": 61})

    assert offered["status"] == "succeeded" and offered["version"] is None and offered["picked"] is None
    assert [t["seed"] for t in offered["takes"]] == [61, 62, 63]
    previews = [audio_of(services, t["audio"]["key"]) for t in offered["takes"]]
    assert all(len(p) == len(previews[0]) > 0 for p in previews)
    assert not np.allclose(previews[0], previews[1]) and not np.allclose(previews[1], previews[2])
    assert api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()["versions"] == []  # nothing published

    draws = len(engine.draws)
    picked = api_client.post(f"/v1/jobs/{job_id}/revisions/{offered['id']}/pick", json={"take": 2}, headers=AUTH)
    assert picked.status_code == 202, picked.get_json()
    run_until_idle(rt)
    assert len(engine.draws) == draws  # a pick draws nothing: the take is stitched in
    chosen = revision(api_client, job_id, offered["id"])
    assert chosen["picked"] == 2 and chosen["version"] == 2
    again = api_client.post(f"/v1/jobs/{job_id}/revisions/{offered['id']}/pick", json={"take": 1}, headers=AUTH)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_picked"

    # The same span drawn again with take 2's recorded seed gives the same samples.
    redrawn = pickup(api_client, rt, job_id, {"ranges": ranges, "seed": offered["takes"][1]["seed"]})
    job = api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
    assert redrawn["version"] == 3 and [v["version"] for v in job["versions"]] == [1, 2, 3]
    second, third = (audio_of(services, job["versions"][n]["result"]["key"]) for n in (1, 2))
    assert np.array_equal(second, third)
    first = audio_of(services, job["versions"][0]["result"]["key"])
    assert not np.array_equal(first, second)


def test_a_corrected_text_is_spoken_in_the_new_version(api_client, services, rt, engine):
    job_id = finished_job(api_client, rt)
    start = TEXT.index("old oak")
    draws = len(engine.draws)
    body = {"ranges": [{"input": "ch1", "chars": [start, start + len("old oak")], "text": "old willow"}]}
    done = pickup(api_client, rt, job_id, body)

    assert done["version"] == 2 and len(engine.draws) == draws + 1
    job = api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
    longer = (len("old willow") - len("old oak")) / CHARS_PER_SECOND
    first, second = (v["result"]["duration_seconds"] for v in job["versions"])
    assert second - first == pytest.approx(longer, abs=0.01)
    plan = services.units.plan(done["id"])
    assert "Birds sang in the old willow." in plan["spec"]["inputs"][0]["text"]


def test_bad_pickups_are_refused_with_the_reason(api_client, services, rt, queue_job):
    job_id = finished_job(api_client, rt)
    url = f"/v1/jobs/{job_id}/revisions"

    def refused(body: dict, status: int, code: str, target: str = url) -> dict:
        response = api_client.post(target, json=body, headers=AUTH)
        assert response.status_code == status, response.get_json()
        assert response.get_json()["error"]["code"] == code
        return response.get_json()["error"]

    error = refused({"ranges": [{"input": "ch1", "sentences": [2, 6]}]}, 422, "invalid_range")
    assert "6 sentences" in error["message"]
    refused({"ranges": [{"input": "ch9", "sentences": [0, 0]}]}, 422, "invalid_range")
    refused({"ranges": [{"input": "ch1", "chars": [0, 10_000]}]}, 422, "invalid_range")
    refused({"ranges": [{"input": "ch1", "sentences": [1, 0]}]}, 422, "invalid_request")
    refused({"ranges": [{"input": "ch1", "sentences": [0, 0], "chars": [0, 4]}]}, 422, "invalid_request")
    refused({"ranges": [{"input": "ch1", "sentences": [0, 0]}], "takes": 9}, 422, "invalid_request")
    refused({"ranges": [{"input": "ch1", "sentences": [0, 0]}], "voice": "nobody"}, 422, "unknown_voice")
    queued = queue_job({"inputs": [{"text": "Not spoken yet."}]})
    refused({"ranges": [{"input": "input-00000", "sentences": [0, 0]}]}, 409, "job_not_succeeded",
            f"/v1/jobs/{queued}/revisions")  # fmt: skip
    refused({"ranges": [{"input": "ch1", "sentences": [0, 0]}]}, 404, "not_found", "/v1/jobs/job_nope/revisions")
    assert api_client.get(f"{url}/job_nope", headers=AUTH).status_code == 404
    assert api_client.post(f"{url}/job_nope/pick", json={"take": 1}, headers=AUTH).status_code == 404
    single = pickup(api_client, rt, job_id, {"ranges": [{"input": "ch1", "sentences": [0, 0]}]})
    refused({"take": 1}, 409, "nothing_to_pick", f"{url}/{single['id']}/pick")
    several = api_client.post(url, json={"ranges": [{"input": "ch1", "sentences": [0, 0]}], "takes": 2}, headers=AUTH)
    rev = several.get_json()["id"]
    refused({"take": 1}, 409, "revision_not_ready", f"{url}/{rev}/pick")
    run_until_idle(rt)
    refused({"take": 3}, 422, "invalid_take", f"{url}/{rev}/pick")
    listed = api_client.get(url, headers=AUTH).get_json()["data"]
    assert [item["id"] for item in listed] == [single["id"], rev]


def test_a_pickup_on_another_model_says_so(api_client, services, rt):
    job_id = finished_job(api_client, rt)
    render = services.jobs.view(job_id).stored_result.render
    record = json.loads(services.storage.get_bytes(render.key))
    assert record["engine"]["engine"] == "fake" and record["chunks"]["00000-00001"]["seed"] > 0
    record["engine"]["model"] = "fake-v0"  # as if the original was rendered months ago by another model
    services.storage.put_bytes(render.key, json.dumps(record).encode(), "application/json")

    done = pickup(api_client, rt, job_id, {"ranges": [{"input": "ch1", "sentences": [1, 1]}]})

    assert done["version"] == 2 and len(done["warnings"]) == 1 and "'fake-v0'" in done["warnings"][0]
    job = api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
    assert job["versions"][1]["warnings"] == done["warnings"]
