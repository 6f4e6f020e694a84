"""Voice mixes on the worker: the embedding a job's mix is spoken with, and jobs through the API, the
queue and a real Celery worker running the tiny KaniTTS2 engine (built offline from configs)."""

from __future__ import annotations

import numpy as np
import pytest

from shared.jobs import JobCreate
from shared.settings import DEV_TENANT
from tests.api.test_voice_mixes import ready_voice, unit
from tests.api.test_voices import make_client, storage_of
from tests.conftest import AUTH, ServiceEnv
from tests.worker.test_cloning_e2e import narrate, same
from worker.planning import build_plan
from worker.voice_embeddings import load_cloned_voices


def test_a_mix_is_spoken_with_the_weighted_mean_of_its_parts(service_env: ServiceEnv):
    ada, ben = ready_voice(service_env, unit(1), language="en_gb"), ready_voice(service_env, unit(2))
    spec = JobCreate.model_validate(
        {"voice": f"{ada}(3)+{ben}(1)", "inputs": [{"text": "One."}, {"text": "Two.", "voice": ben}]}
    )
    voices, storage = service_env.services().voices, storage_of(service_env)
    cloned = load_cloned_voices(spec, DEV_TENANT, voices=voices, storage=storage, can_clone=True)
    assert set(cloned) == {f"{ada}(0.75)+{ben}(0.25)", ben}  # ada only as a part of the mix
    mean = 0.75 * unit(1) + 0.25 * unit(2)
    mixed = cloned[spec.voice or ""]
    np.testing.assert_allclose(mixed.embedding, mean / np.linalg.norm(mean), atol=1e-6)
    assert mixed.language == "en_gb"  # that of the heavier part
    plan = build_plan(spec, budget_seconds=5.0, chars_per_second=14.0, streams=1, voice_default="default",
                      cloned=cloned)  # fmt: skip
    assert plan.inputs[0][0].request.speaker_embedding is mixed.embedding
    assert plan.inputs[1][0].request.speaker_embedding is cloned[ben].embedding

    voices.delete(ben, DEV_TENANT)  # a part deleted after the job was queued fails the job, as a voice does
    with pytest.raises(Exception, match="was deleted") as deleted:
        load_cloned_voices(spec, DEV_TENANT, voices=voices, storage=storage, can_clone=True)
    assert deleted.value.code == "voice_deleted"  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(Exception, match="cannot clone") as unsupported:
        load_cloned_voices(spec, DEV_TENANT, voices=voices, storage=storage, can_clone=False)
    assert unsupported.value.code == "cloning_unsupported"  # pyright: ignore[reportAttributeAccessIssue]


@pytest.mark.slow
def test_a_job_in_a_mix_differs_from_each_part_and_a_saved_mix_speaks_the_same(
    service_env: ServiceEnv, start_worker, tiny_kanitts2_env
):
    client = make_client(service_env, **tiny_kanitts2_env)
    start_worker(service_env)
    ada, ben = ready_voice(service_env, unit(1)), ready_voice(service_env, unit(2))
    mixed = narrate(client, service_env, f"{ada}(0.7)+{ben}(0.3)")
    assert not same(mixed, narrate(client, service_env, ada))
    assert not same(mixed, narrate(client, service_env, ben))
    saved = client.post("/v1/voices", json={"name": "Mix", "mix": f"{ada}(0.7)+{ben}(0.3)"}, headers=AUTH)
    assert saved.status_code == 201, saved.get_json()
    assert same(mixed, narrate(client, service_env, saved.get_json()["id"]))  # the same embedding, by id
