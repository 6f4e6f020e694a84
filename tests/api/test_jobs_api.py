"""The jobs API against a real Redis: validation, idempotency, tenants, listing, documents."""

from __future__ import annotations

import hashlib
import json

import pytest
import redis
from openapi_spec_validator import validate

from api import create_app
from api.context import services_of
from tests.conftest import AUTH, ServiceEnv

OTHER_KEY = "other-tenant-key"


def _queue_length(env: ServiceEnv) -> int:
    return redis.Redis.from_url(env.redis_url).llen(env.queue)


def _job_keys(env: ServiceEnv) -> list[bytes]:
    return list(redis.Redis.from_url(env.redis_url).scan_iter(match=f"{env.key_prefix}:job:*"))


def _job_records(env: ServiceEnv) -> list[bytes]:
    """The job records alone (a job also keeps its units' hash beside its record)."""
    return [key for key in _job_keys(env) if key.count(b":") == env.key_prefix.count(":") + 2]


def _job(text: str = "Hello there. This is a test.", **extra) -> dict:
    return {"inputs": [{"text": text}], **extra}


def test_submit_returns_202_with_location_and_queues_one_work_token(api_client, service_env):
    response = api_client.post("/v1/jobs", json=_job(format="wav", metadata={"book": "x"}), headers=AUTH)
    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{body['id']}"
    assert body["status"] == "queued" and body["format"] == "wav" and body["metadata"] == {"book": "x"}
    assert body["priority"] == "normal"
    assert body["inputs"] == [
        {
            "id": "input-00000",
            "chars": 28,
            "voice": None,
            "language": None,
            "language_detected": False,
            "status": None,
            "reused": False,
            "error": None,
            "result": None,
            "fit": None,
        }
    ]
    assert body["lines"] is None and body["manifest_csv"] is None  # a batch's, once it finished
    assert len(body["id"]) > 20  # unguessable
    assert _queue_length(service_env) == 1
    message = json.loads(redis.Redis.from_url(service_env.redis_url).lindex(service_env.queue, 0))
    assert message["headers"]["task"] == "narrate.work"  # a token: its receiver takes the best ready unit
    assert api_client.get(f"/v1/jobs/{body['id']}", headers=AUTH).get_json()["status"] == "queued"


def test_a_jobs_priority_is_stored_and_shown(api_client, service_env):
    body = api_client.post("/v1/jobs", json=_job(priority="batch"), headers=AUTH).get_json()
    assert body["priority"] == "batch"
    assert api_client.get(f"/v1/jobs/{body['id']}", headers=AUTH).get_json()["priority"] == "batch"
    listed = api_client.get("/v1/jobs", headers=AUTH).get_json()["data"]
    assert [job["priority"] for job in listed] == ["batch"]


BAD_REQUESTS = [
    # (description, kwargs for client.post, status, code, field)
    ("invalid json", {"data": b"{not json", "content_type": "application/json"}, 400, "invalid_json", None),
    ("wrong content type", {"data": b"inputs=1", "content_type": "text/plain"}, 415, "unsupported_media_type", None),
    ("non utf-8", {"data": b'{"inputs":[{"text":"caf\xe9"}]}', "content_type": "application/json"}, 400,
     "invalid_encoding", None),
    ("not an object", {"json": ["a"]}, 422, "invalid_request", None),
    ("missing inputs", {"json": {"voice": "joe"}}, 422, "invalid_request", "inputs"),
    ("empty inputs", {"json": {"inputs": []}}, 422, "invalid_request", "inputs"),
    ("missing text", {"json": {"inputs": [{"id": "a"}]}}, 422, "invalid_request", "inputs.0.text"),
    ("empty text", {"json": _job("   \n ")}, 422, "invalid_request", "inputs.0.text"),
    ("only punctuation", {"json": _job("... -- !?")}, 422, "invalid_request", "inputs.0.text"),
    ("control characters", {"json": _job("Hello\x00 there")}, 422, "invalid_request", "inputs.0.text"),
    ("unknown voice", {"json": _job(voice="nobody")}, 422, "unknown_voice", "voice"),
    ("unknown input voice", {"json": {"inputs": [{"text": "Hi.", "voice": "nobody"}]}}, 422, "unknown_voice",
     "inputs.0.voice"),
    ("unknown format", {"json": _job(format="aiff")}, 422, "invalid_request", "format"),
    ("unknown priority", {"json": _job(priority="urgent")}, 422, "invalid_request", "priority"),
    ("sample rate too low", {"json": _job(sample_rate=4000)}, 422, "invalid_request", "sample_rate"),
    ("sample rate too high", {"json": _job(sample_rate=96000)}, 422, "invalid_request", "sample_rate"),
    ("temperature out of range", {"json": _job(sampling={"temperature": 5})}, 422, "invalid_request",
     "sampling.temperature"),
    ("top_p out of range", {"json": _job(sampling={"top_p": 0})}, 422, "invalid_request", "sampling.top_p"),
    ("negative seed", {"json": _job(sampling={"seed": -1})}, 422, "invalid_request", "sampling.seed"),
    ("unknown field", {"json": _job(speed=2)}, 422, "invalid_request", "speed"),
    ("duplicate ids", {"json": {"inputs": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}}, 422,
     "invalid_request", None),
    ("reserved input id", {"json": {"inputs": [{"id": "manifest", "text": "x"}]}}, 422, "invalid_request",
     "inputs.0.id"),
    ("unsafe input id", {"json": {"inputs": [{"id": "../etc", "text": "x"}]}}, 422, "invalid_request",
     "inputs.0.id"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "kwargs", "status", "code", "field"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_input_is_a_clear_4xx_and_leaves_nothing_behind(api_client, service_env, what, kwargs, status, code, field):
    response = api_client.post("/v1/jobs", headers=AUTH, **kwargs)
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error.get("field") == field
    assert _job_keys(service_env) == []
    assert _queue_length(service_env) == 0


def test_text_above_the_maximum_is_413(service_env):
    service_env.extra["NARRATE_MAX_TEXT_CHARS"] = "1000"
    client = create_app(service_env.settings()).test_client()
    response = client.post("/v1/jobs", json=_job("word " * 201), headers=AUTH)
    assert response.status_code == 413
    assert response.get_json()["error"] == {
        "code": "text_too_long", "message": "The job has 1005 characters; the maximum is 1000.", "field": "inputs",
    }  # fmt: skip
    assert _job_keys(service_env) == [] and _queue_length(service_env) == 0


def test_default_maximum_is_five_million_characters(api_client, service_env):
    """A 40-hour book (issue 13) fits; one character more is refused before anything is stored."""
    response = api_client.post("/v1/jobs", json=_job("a" * 5_000_001), headers=AUTH)
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "text_too_long"
    assert _job_keys(service_env) == []


def test_oversized_body_is_413(service_env):
    service_env.extra["NARRATE_MAX_BODY_BYTES"] = "2048"
    client = create_app(service_env.settings()).test_client()
    response = client.post("/v1/jobs", json=_job("x" * 5000), headers=AUTH)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert _job_keys(service_env) == [] and _queue_length(service_env) == 0


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic ZGV2OmRldg==", "Bearer "])
def test_missing_or_wrong_key_is_401(api_client, service_env, header):
    headers = {"Authorization": header} if header else {}
    response = api_client.post("/v1/jobs", json=_job(), headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert api_client.get("/v1/jobs", headers=headers).status_code == 401
    assert _job_keys(service_env) == [] and _queue_length(service_env) == 0


def test_queue_failure_is_503_and_removes_the_record(api_client, service_env):
    def broken(job_id: str) -> None:  # a broker outage between store and enqueue cannot be staged for real
        raise ConnectionError("broker down")

    services_of(api_client.application).enqueue_job = broken
    response = api_client.post("/v1/jobs", json=_job(), headers={**AUTH, "Idempotency-Key": "k1"})
    assert response.status_code == 503
    assert _job_keys(service_env) == []
    assert not list(redis.Redis.from_url(service_env.redis_url).scan_iter(match=f"{service_env.key_prefix}:idem:*"))


def test_idempotency_key_returns_the_same_job_and_conflicts_on_another_body(api_client, service_env):
    headers = {**AUTH, "Idempotency-Key": "chapter-1"}
    first = api_client.post("/v1/jobs", json=_job("Same text."), headers=headers)
    again = api_client.post("/v1/jobs", json=_job("Same text."), headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert _queue_length(service_env) == 1
    other = api_client.post("/v1/jobs", json=_job("Other text."), headers=headers)
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "idempotency_conflict"
    assert len(_job_records(service_env)) == 1


def _two_tenant_app(service_env: ServiceEnv):
    digest = hashlib.sha256(OTHER_KEY.encode()).hexdigest()
    service_env.extra["NARRATE_API_KEYS"] = f"other:{digest}"
    return create_app(service_env.settings()).test_client()


def test_tenants_see_only_their_own_jobs(service_env):
    client = _two_tenant_app(service_env)
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    mine = client.post("/v1/jobs", json=_job(), headers=AUTH).get_json()["id"]
    theirs = client.post("/v1/jobs", json=_job(), headers=other).get_json()["id"]
    assert client.get(f"/v1/jobs/{mine}", headers=other).status_code == 404
    assert client.delete(f"/v1/jobs/{mine}", headers=other).status_code == 404
    assert [job["id"] for job in client.get("/v1/jobs", headers=other).get_json()["data"]] == [theirs]
    assert [job["id"] for job in client.get("/v1/jobs", headers=AUTH).get_json()["data"]] == [mine]
    assert client.get(f"/v1/jobs/{mine}", headers=AUTH).get_json()["status"] == "queued"


def test_list_is_newest_first_with_cursor_pagination_and_status_filter(api_client):
    ids = [api_client.post("/v1/jobs", json=_job(f"Text {n}."), headers=AUTH).get_json()["id"] for n in range(5)]
    canceled = api_client.delete(f"/v1/jobs/{ids[1]}", headers=AUTH)
    assert canceled.status_code == 200 and canceled.get_json()["status"] == "canceled"
    seen, cursor = [], None
    while True:
        page = api_client.get(
            "/v1/jobs", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=AUTH
        )
        body = page.get_json()
        seen += [job["id"] for job in body["data"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    queued = api_client.get("/v1/jobs", query_string={"status": "queued"}, headers=AUTH).get_json()["data"]
    assert [job["id"] for job in queued] == [i for i in reversed(ids) if i != ids[1]]
    assert api_client.get("/v1/jobs?status=bogus", headers=AUTH).status_code == 422
    assert api_client.get("/v1/jobs?limit=0", headers=AUTH).status_code == 422
    assert api_client.get("/v1/jobs?cursor=%%%", headers=AUTH).status_code == 400


def test_cancel_of_finished_job_is_409_and_unknown_job_is_404(api_client):
    job_id = api_client.post("/v1/jobs", json=_job(), headers=AUTH).get_json()["id"]
    canceled = api_client.post(f"/v1/jobs/{job_id}/cancel", headers=AUTH)
    assert canceled.status_code == 200 and canceled.get_json()["status"] == "canceled"
    again = api_client.post(f"/v1/jobs/{job_id}/cancel", headers=AUTH)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_finished"
    assert api_client.get("/v1/jobs/job_nope", headers=AUTH).status_code == 404
    assert api_client.post("/v1/jobs/job_nope/cancel", headers=AUTH).status_code == 404
    assert api_client.delete("/v1/jobs/job_nope", headers=AUTH).status_code == 404


def test_delete_cancels_a_queued_job_and_removes_a_finished_one_with_its_idempotency_key(api_client, service_env):
    headers = {**AUTH, "Idempotency-Key": "chapter-1"}
    job_id = api_client.post("/v1/jobs", json=_job(), headers=headers).get_json()["id"]
    canceled = api_client.delete(f"/v1/jobs/{job_id}", headers=AUTH)  # queued: DELETE keeps meaning cancel
    assert canceled.status_code == 200 and canceled.get_json()["status"] == "canceled"
    removed = api_client.delete(f"/v1/jobs/{job_id}", headers=AUTH)  # finished: DELETE removes it
    assert removed.status_code == 204 and removed.get_data() == b""
    assert api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).status_code == 404
    assert api_client.delete(f"/v1/jobs/{job_id}", headers=AUTH).status_code == 404
    assert job_id not in [job["id"] for job in api_client.get("/v1/jobs", headers=AUTH).get_json()["data"]]
    client = redis.Redis.from_url(service_env.redis_url)
    keys = [key.decode() for key in client.scan_iter(match=f"{service_env.key_prefix}:*")]
    assert [key for key in keys if job_id in key or ":idem:" in key] == []  # record, chunks, idempotency key
    indexes = [key for key in keys if client.type(key) == b"zset"]
    assert [key for key in indexes if client.zscore(key, job_id) is not None] == []
    fresh = api_client.post("/v1/jobs", json=_job(), headers=headers)  # the key names no job any more
    assert fresh.status_code == 202 and fresh.get_json()["id"] != job_id


def test_job_records_expire_after_the_retention(api_client, service_env):
    job_id = api_client.post("/v1/jobs", json=_job(), headers=AUTH).get_json()["id"]
    ttl = redis.Redis.from_url(service_env.redis_url).ttl(f"{service_env.key_prefix}:job:{job_id}")
    assert 7 * 24 * 3600 - 60 < ttl <= 7 * 24 * 3600


def test_health_readiness_metrics_and_openapi(api_client, service_env):
    assert api_client.get("/healthz").get_json() == {"status": "ok"}
    ready = api_client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"redis": "ok", "storage": "ok"}
    api_client.post("/v1/jobs", json=_job(), headers=AUTH)
    api_client.post("/v1/jobs", json={**_job(), "priority": "interactive"}, headers=AUTH)
    text = api_client.get("/metrics").get_data(as_text=True)
    assert "narrate_jobs_submitted_total" in text
    assert "narrate_queue_depth 2.0" in text
    # one plan unit ready per job, in its class; nothing leased (no worker runs)
    assert 'narrate_units_ready{priority="interactive"} 1.0' in text
    assert 'narrate_units_ready{priority="normal"} 1.0' in text
    assert 'narrate_units_ready{priority="batch"} 0.0' in text
    assert 'narrate_units_leased{priority="normal"} 0.0' in text
    document = api_client.get("/openapi.json").get_json()
    validate(document)
    create = document["components"]["schemas"]["JobCreate"]
    assert set(create["properties"]) >= {
        "inputs",
        "voice",
        "format",
        "sample_rate",
        "concatenate",
        "metadata",
        "sampling",
    }


def test_readiness_fails_when_redis_is_unreachable(service_env):
    service_env.redis_url = "redis://127.0.0.1:1/0"
    client = create_app(service_env.settings()).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"].startswith("error")


def test_write_rate_limit_answers_429_in_the_error_shape_and_spares_polling(service_env):
    service_env.extra["NARRATE_RATE_LIMIT"] = "2 per minute"
    client = create_app(service_env.settings()).test_client()
    codes = [client.post("/v1/jobs", json=_job(), headers=AUTH).status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    assert client.post("/v1/jobs", json=_job(), headers=AUTH).get_json()["error"]["code"] == "rate_limited"
    assert len(_job_records(service_env)) == 2
    assert all(client.get("/v1/jobs", headers=AUTH).status_code == 200 for _ in range(5))


def test_overall_rate_limit_covers_reads(service_env):
    service_env.extra["NARRATE_READ_RATE_LIMIT"] = "3 per minute"
    client = create_app(service_env.settings()).test_client()
    codes = [client.get("/v1/jobs", headers=AUTH).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert client.get("/healthz").status_code == 200


def test_an_unreachable_job_store_is_503_in_the_error_shape(service_env):
    service_env.redis_url = "redis://127.0.0.1:1/0"
    client = create_app(service_env.settings()).test_client()
    for response in (client.post("/v1/jobs", json=_job(), headers=AUTH), client.get("/v1/jobs", headers=AUTH)):
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "store_unavailable"
