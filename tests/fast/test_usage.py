"""Usage and the monthly character quota: jobs submitted through the real API (in process), run by
the worker's units (in process) with the fake engine, on the real Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis
from prometheus_client import REGISTRY

from api import create_app
from api.context import services_of
from shared.jobs import JobStatus
from tests.conftest import AUTH, ServiceEnv
from tests.support.units import run_until_idle

pytestmark = pytest.mark.fast

TEXT_A = "The storm passed before dawn. Morning light filled the valley."
TEXT_B = "The river ran high and brown. By noon the road was dry again. Carts rolled toward the town."


def _client(env: ServiceEnv, **extra: str):
    env.extra.update(extra)
    app = create_app(env.settings())
    app.testing = True
    return app.test_client()


def _submit(client, text: str, headers: dict | None = None):
    return client.post("/v1/jobs", json={"inputs": [{"text": text}]}, headers={**AUTH, **(headers or {})})


def _usage(client, query: str = "") -> dict:
    response = client.get(f"/v1/usage{query}", headers=AUTH)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"tenant": "dev"}) or 0.0


def _job_keys(env: ServiceEnv) -> list[bytes]:
    return list(redis.Redis.from_url(env.redis_url).scan_iter(match=f"{env.key_prefix}:job:*"))


def test_usage_adds_up_across_jobs_per_job_and_per_day(service_env, make_runtime):
    client = _client(service_env)
    before = {n: _metric(n) for n in ("narrate_usage_characters_total", "narrate_usage_audio_seconds_total")}
    runtime = make_runtime()
    jobs = []
    for text in (TEXT_A, TEXT_B):
        job_id = _submit(client, text).get_json()["id"]
        assert run_until_idle(runtime)[-1] == "assemble:succeeded"
        assert client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()["status"] == JobStatus.SUCCEEDED
        jobs.append(client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json())
    for job, text in zip(jobs, (TEXT_A, TEXT_B), strict=True):
        assert job["usage"]["characters"] == len(text)
        assert job["usage"]["audio_seconds"] > 0 and job["usage"]["engine_seconds"] >= 0
        assert job["usage"]["audio_seconds"] == job["progress"]["audio_seconds"]

    today = datetime.now(UTC).date().isoformat()
    report = _usage(client, f"?from={today}&to={today}")
    [day] = report["days"]
    assert day["date"] == today and day["jobs"] == 2 and report["jobs"] == 2
    assert day["characters"] == report["totals"]["characters"] == len(TEXT_A) + len(TEXT_B)
    total_audio = sum(job["usage"]["audio_seconds"] for job in jobs)
    total_engine = sum(job["usage"]["engine_seconds"] for job in jobs)
    assert report["totals"]["audio_seconds"] == pytest.approx(total_audio, abs=0.01)
    assert report["totals"]["engine_seconds"] == pytest.approx(total_engine, abs=0.01)
    assert report["quota"] == {
        "month": today[:7], "characters_used": len(TEXT_A) + len(TEXT_B), "monthly_character_quota": None,
    }  # fmt: skip
    assert _metric("narrate_usage_characters_total") - before["narrate_usage_characters_total"] == len(TEXT_A) + len(
        TEXT_B
    )
    audio_delta = _metric("narrate_usage_audio_seconds_total") - before["narrate_usage_audio_seconds_total"]
    assert audio_delta == pytest.approx(total_audio, abs=0.01)
    assert _usage(client)["totals"]["characters"] == len(TEXT_A) + len(TEXT_B)  # default range: this month


def test_a_resumed_chunk_is_counted_once(services):
    usage = services.usage
    assert usage.record_chunk("dev", "job_x", "s0-c0", audio_seconds=2.0, engine_seconds=0.5)
    assert not usage.record_chunk("dev", "job_x", "s0-c0", audio_seconds=2.0, engine_seconds=0.5)
    today = datetime.now(UTC).date()
    assert usage.report("dev", today, today, None).totals.audio_seconds == 2.0


def test_a_quota_refuses_the_job_that_would_exceed_it_and_stores_nothing(service_env):
    client = _client(service_env, NARRATE_MONTHLY_CHARACTER_QUOTA="1000", NARRATE_TENANT_QUOTAS="dev=100")
    first = _submit(client, "a" * 60, {"Idempotency-Key": "first"})
    assert first.status_code == 202
    stored = _job_keys(service_env)
    refused = _submit(client, "b" * 41)
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "quota_exceeded" and error["field"] == "inputs"
    assert "41" in error["message"] and "60" in error["message"] and "100" in error["message"]
    assert _job_keys(service_env) == stored  # nothing stored
    assert _usage(client)["quota"]["characters_used"] == 60
    again = _submit(client, "a" * 60, {"Idempotency-Key": "first"})  # a replay counts nothing
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    assert _usage(client)["quota"] == {
        "month": datetime.now(UTC).strftime("%Y-%m"), "characters_used": 60, "monthly_character_quota": 100,
    }  # fmt: skip
    assert _submit(client, "c" * 40).status_code == 202  # exactly up to the quota
    assert _usage(client)["totals"]["characters"] == 100


def test_a_job_that_cannot_be_queued_gives_its_characters_back(service_env):
    client = _client(service_env, NARRATE_MONTHLY_CHARACTER_QUOTA="100")

    def broken(job_id: str) -> None:  # a broker outage between store and enqueue cannot be staged for real
        raise ConnectionError("broker down")

    services_of(client.application).enqueue_job = broken
    assert _submit(client, "a" * 80).status_code == 503
    report = _usage(client)
    assert report["quota"]["characters_used"] == 0 and report["totals"]["characters"] == 0
    assert _job_keys(service_env) == []


@pytest.mark.parametrize(
    "query",
    [
        "?from=2026-13-01",
        "?from=yesterday",
        "?to=2026-1-5",
        "?from=2026-02-01&to=2026-01-01",
        "?from=2024-01-01&to=2026-01-01",
    ],
)
def test_bad_dates_are_400(service_env, query):
    response = _client(service_env).get(f"/v1/usage{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_date"
