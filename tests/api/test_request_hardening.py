"""Crafted requests through the real app and a real Redis: JSON that parses but may not be held, fields
without bounds, ids with a trailing line feed, cursors that reach Redis, query parameters given twice
or empty, and errors outside the one shape. Each is a clear 4xx naming the problem, with nothing stored.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from pydantic import TypeAdapter, ValidationError

from api import create_app, params
from api.context import services_of
from api.json_body import MAX_DEPTH
from api.openapi import openapi_document
from api.routes import voices as voice_routes
from shared import jobs, store
from shared.jobs import MAX_METADATA_BYTES, MAX_METADATA_KEYS, MAX_METADATA_VALUE_CHARS
from shared.settings import DEV_TENANT
from tests.conftest import AUTH, ServiceEnv


def _redis(env: ServiceEnv) -> redis.Redis:
    return redis.Redis.from_url(env.redis_url)


def _nothing_stored(env: ServiceEnv) -> bool:
    client = _redis(env)
    return not list(client.scan_iter(match=f"{env.key_prefix}:job:*")) and client.llen(env.queue) == 0


def _post_raw(client: FlaskClient, body: str, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/v1/jobs", data=body.encode("utf-8"), content_type="application/json", headers={**AUTH, **(headers or {})}
    )


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


def _job(**extra: Any) -> dict[str, Any]:
    return {"inputs": [{"text": "Hello there."}], **extra}


# --- 3: JSON that parses, but the service may not hold ----------------------------------------------
CRAFTED = [
    # (what, body, field)
    ("nested far beyond the interpreter's recursion limit",
     '{"inputs":[{"text":"Hi."}],"metadata":{"a":' + "[" * 100_000 + "]" * 100_000 + "}}",
     "metadata.a" + ".0" * (MAX_DEPTH - 2)),
    ("nested one level beyond the limit",
     '{"inputs":[{"text":"Hi."}],"metadata":' + '{"a":' * MAX_DEPTH + "1" + "}" * MAX_DEPTH + "}",
     "metadata" + ".a" * (MAX_DEPTH - 1)),
    ("an integer of 5,000 digits", '{"inputs":[{"text":"Hi."}],"sampling":{"seed":' + "9" * 5000 + "}}",
     "sampling.seed"),
    ("a lone surrogate in a text", '{"inputs":[{"text":"Hi."},{"text":"Caf\\ud800 au lait."}]}', "inputs.1.text"),
    ("a lone surrogate in a key", '{"inputs":[{"text":"Hi."}],"metadata":{"\\udc00":"x"}}', "metadata"),
    ("NaN", '{"inputs":[{"text":"Hi."}],"metadata":{"n":NaN}}', "metadata.n"),
    ("a float beyond a double", '{"inputs":[{"text":"Hi."}],"sampling":{"temperature":1e400}}',
     "sampling.temperature"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "body", "field"), CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_json_is_a_400_naming_the_field(api_client, service_env, what, body, field):
    error = _error(_post_raw(api_client, body), 400)
    assert error["code"] == "invalid_json"
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")
    assert _nothing_stored(service_env)


def test_nesting_up_to_the_limit_is_accepted(api_client, service_env):
    # A body 32 levels deep is not refused for its depth (metadata values must then still be scalars).
    body = '{"inputs":[{"text":"Hi."}],"metadata":' + '{"a":' * (MAX_DEPTH - 1) + "1" + "}" * (MAX_DEPTH - 1) + "}"
    error = _error(_post_raw(api_client, body), 422)
    assert error["field"] == "metadata"
    assert _post_raw(api_client, json.dumps(_job(sampling={"seed": 2**32 - 1}))).status_code == 202


# --- 4: every free field has a bound the document states ------------------------------------------
BIG = "x" * (MAX_METADATA_VALUE_CHARS + 1)
UNBOUNDED = [
    ("7 MB of metadata", _job(metadata={"blob": "x" * 7_000_000}), 422, "invalid_request", "metadata"),
    ("a value beyond its length", _job(metadata={"comment": BIG}), 422, "invalid_request", "metadata"),
    ("metadata beyond its total", _job(metadata={f"k{i}": "x" * 4000 for i in range(5)}), 422, "invalid_request",
     "metadata"),
    ("too many keys", _job(metadata={f"k{i}": i for i in range(MAX_METADATA_KEYS + 1)}), 422, "invalid_request",
     "metadata"),
    ("a key with a space", _job(metadata={"my key": 1}), 422, "invalid_request", "metadata"),
    ("a key too long", _job(metadata={"k" * 65: 1}), 422, "invalid_request", "metadata"),
    ("a nested value", _job(metadata={"tags": ["a", "b"]}), 422, "invalid_request", "metadata"),
    ("an integer JSON readers round", _job(metadata={"n": 2**53}), 422, "invalid_request", "metadata"),
    ("a control character in a value", _job(metadata={"title": "a\x1bb"}), 422, "invalid_request", "metadata"),
    ("an empty text", {"inputs": [{"text": ""}]}, 422, "invalid_request", "inputs.0.text"),
    ("a voice name too long", _job(voice="v" * 129), 422, "invalid_request", "voice"),
    ("an input voice with a space", {"inputs": [{"text": "Hi.", "voice": "a b"}]}, 422, "invalid_request",
     "inputs.0.voice"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "body", "status", "code", "field"), UNBOUNDED, ids=[u[0] for u in UNBOUNDED])
def test_unbounded_fields_are_refused(api_client, service_env, what, body, status, code, field):
    error = _error(api_client.post("/v1/jobs", json=body, headers=AUTH), status)
    assert (error["code"], error.get("field")) == (code, field)
    assert _nothing_stored(service_env)


def test_metadata_within_every_bound_is_kept_as_given(api_client):
    metadata = {"title": "A" * MAX_METADATA_VALUE_CHARS, "order": 2**53 - 1, "rating": 4.5, "final": True,
                "note": None, "series:part": "Vol. 1\n\tPreface"}  # fmt: skip
    assert len(json.dumps(metadata)) < MAX_METADATA_BYTES
    response = api_client.post("/v1/jobs", json=_job(metadata=metadata), headers=AUTH)
    assert response.status_code == 202
    assert api_client.get(response.headers["Location"], headers=AUTH).get_json()["metadata"] == metadata


def test_the_document_states_the_limits_the_api_enforces():
    document = openapi_document()
    schemas = document["components"]["schemas"]
    metadata = schemas["JobCreate"]["properties"]["metadata"]
    assert metadata["maxProperties"] == MAX_METADATA_KEYS
    assert metadata["additionalProperties"] is False
    assert metadata["propertyNames"]["maxLength"] == 64 and metadata["propertyNames"]["pattern"]
    (values,) = metadata["patternProperties"].values()
    assert {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS} in values["anyOf"]
    assert str(MAX_METADATA_BYTES) in metadata["description"]
    job_input = schemas["JobInput"]["properties"]
    assert job_input["text"]["anyOf"][0]["minLength"] == 1  # or `segments`, a dialogue
    assert job_input["segments"]["anyOf"][0]["maxItems"] == 1000
    assert job_input["target_seconds"]["anyOf"][0]["maximum"] == 600
    assert schemas["DialogueSegment"]["properties"]["speaker"]["pattern"]
    assert job_input["id"]["anyOf"][0]["maxLength"] == 128
    create = document["paths"]["/v1/jobs"]["post"]
    (key,) = [p for p in create["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["schema"]["maxLength"] == 200 and key["schema"]["pattern"]
    cursor = {p["name"]: p for p in document["paths"]["/v1/jobs"]["get"]["parameters"]}["cursor"]
    assert cursor["schema"]["pattern"] and cursor["schema"]["maxLength"] == 64
    patch = schemas["VoicePatch"]["properties"]
    assert patch["name"]["maxLength"] == 100 and patch["name"]["type"] == "string"  # null is refused


@pytest.mark.parametrize("key", ["", "x" * 201, "two words", "caf\xe9"])
def test_a_malformed_idempotency_key_is_400(api_client, service_env, key):
    error = _error(api_client.post("/v1/jobs", json=_job(), headers={**AUTH, "Idempotency-Key": key}), 400)
    assert (error["code"], error["field"]) == ("invalid_idempotency_key", "Idempotency-Key")
    assert _nothing_stored(service_env)


# --- 7: a malformed cursor is the client's error; only an unreachable Redis is 503 ----------------------
def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [_cursor("nan"), _cursor("inf"), _cursor("-1e999"), _cursor("1 2"), "%%%", "a",
                                    _cursor("1764648000.5") + "="])  # fmt: skip
def test_a_malformed_cursor_is_400(api_client, cursor):
    error = _error(api_client.get("/v1/jobs", query_string={"cursor": cursor}, headers=AUTH), 400)
    assert (error["code"], error["field"]) == ("invalid_cursor", "cursor")


def test_a_redis_error_other_than_unreachable_is_a_500_in_the_error_shape(api_client, service_env):
    # The tenant's job index holding the wrong type makes Redis answer WRONGTYPE: a ResponseError, a
    # fault of the service (never of the client, and not an outage).
    _redis(service_env).set(f"{service_env.key_prefix}:tenant:{DEV_TENANT}:jobs", "not a sorted set")
    response = api_client.get("/v1/jobs", headers=AUTH)
    error = _error(response, 500)
    assert error["code"] == "internal_error"
    assert "WRONGTYPE" not in response.get_data(as_text=True)  # no internals reach the client


# --- 8: ids end where they end -----------------------------------------------------------------------
TRAILING_NEWLINE = [
    ("input id", {"inputs": [{"id": "abc\n", "text": "Hi."}]}, "inputs.0.id"),
    ("input id beside its twin", {"inputs": [{"id": "abc", "text": "Hi."}, {"id": "abc\n", "text": "Yo."}]},
     "inputs.1.id"),
    ("job voice", _job(voice="joe\n"), "voice"),
    ("input voice", {"inputs": [{"text": "Hi.", "voice": "joe\n"}]}, "inputs.0.voice"),
    ("metadata key", _job(metadata={"title\n": "x"}), "metadata"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "body", "field"), TRAILING_NEWLINE, ids=[t[0] for t in TRAILING_NEWLINE])
def test_a_trailing_newline_is_not_part_of_any_id(api_client, service_env, what, body, field):
    error = _error(api_client.post("/v1/jobs", json=body, headers=AUTH), 422)
    assert (error["code"], error["field"]) == ("invalid_request", field)
    assert _nothing_stored(service_env)


def test_a_cursor_with_a_trailing_newline_is_refused(api_client):
    for _ in range(3):
        api_client.post("/v1/jobs", json=_job(), headers=AUTH)
    cursor = api_client.get("/v1/jobs?limit=1", headers=AUTH).get_json()["next_cursor"]
    assert api_client.get("/v1/jobs", query_string={"cursor": cursor}, headers=AUTH).status_code == 200
    error = _error(api_client.get("/v1/jobs", query_string={"cursor": cursor + "\n"}, headers=AUTH), 400)
    assert error["field"] == "cursor"


# --- 11: the contract's edges ----------------------------------------------------------------------------
def test_405_carries_allow_in_the_error_shape(api_client):
    response = api_client.put("/v1/jobs", headers=AUTH, json={})
    error = _error(response, 405)
    assert error["code"] == "method_not_allowed"
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}
    other = api_client.post("/v1/voices/voice_x", headers=AUTH)
    assert _error(other, 405)["code"] == "method_not_allowed"
    assert {"GET", "PATCH", "DELETE"} <= {m.strip() for m in other.headers["Allow"].split(",")}


def test_werkzeug_errors_come_in_the_error_shape(api_client):
    assert _error(api_client.get("/nowhere"), 404)["code"] == "not_found"
    assert _error(api_client.get("/v1/nowhere", headers=AUTH), 404)["code"] == "not_found"
    assert _error(api_client.delete("/healthz"), 405)["code"] == "method_not_allowed"


QUERIES = [
    ("repeated", "/v1/jobs?status=queued&status=running", "status"),
    ("empty cursor", "/v1/jobs?cursor=", "cursor"),
    ("empty without '='", "/v1/jobs?limit", "limit"),
    ("unknown", "/v1/jobs?colour=red", "colour"),
    ("on an operation that takes none", "/v1/voices?status=ready", "status"),
    ("on a path with an id", "/v1/jobs/job_x?verbose=1", "verbose"),
]


@pytest.mark.parametrize(("what", "url", "field"), QUERIES, ids=[q[0] for q in QUERIES])
def test_repeated_empty_or_unknown_query_parameters_are_400(api_client, what, url, field):
    error = _error(api_client.get(url, headers=AUTH), 400)
    assert (error["code"], error["field"]) == ("invalid_query", field)
    assert field in error["message"]


def test_query_parameters_are_checked_after_the_key(api_client):
    assert _error(api_client.get("/v1/jobs?status=a&status=b"), 401)["code"] == "unauthorized"


# --- 4: the voice upload's free fields ----------------------------------------------------------------
VOICE_FORMS = [
    ("a name over two lines", {"name": "Jane\nDoe"}, "name"),
    ("a control character in the description", {"description": "Calm \x07voice"}, "description"),
    ("a language tag with a fourth part", {"language": "en_us_aa_bb_cc"}, "language"),
    ("a consent on two lines", {"consent_by": "Jane\r\nDoe"}, "consent_by"),
    ("a consent date of a thousand characters", {"consent_at": "2026-01-01" + " " * 1000 + "x"}, "consent_at"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "fields", "field"), VOICE_FORMS, ids=[v[0] for v in VOICE_FORMS])
def test_voice_upload_fields_are_bounded(service_env, what, fields, field):
    service_env.extra["NARRATE_ENGINE"] = "kanitts2"  # an engine that clones: the form is read
    client = create_app(service_env.settings()).test_client()
    form = {"name": "Jane", "consent_by": "Jane Doe", **fields}
    response = client.post("/v1/voices", headers=AUTH, data=form, content_type="multipart/form-data")
    error = _error(response, 422)
    assert (error["code"], error["field"]) == ("invalid_request", field)
    assert not list(_redis(service_env).scan_iter(match=f"{service_env.key_prefix}:voice*"))


@pytest.mark.parametrize(
    ("patch", "field"), [({"name": "Jane\nDoe"}, "name"), ({"description": "a\x00b"}, "description")]
)
def test_a_voice_rename_refuses_control_characters(api_client, patch, field):
    voices = services_of(api_client.application).voices
    voice_id = voices.new_id()
    consent = {"by": "Jane Doe", "at": "2026-01-15T10:00:00+00:00", "recorded_at": "2026-01-15T10:00:00+00:00"}
    voices.create(voice_id, DEV_TENANT, name="Jane", description=None, language=None, consent=consent, clips=[],
                  limit=10)  # fmt: skip
    error = _error(api_client.patch(f"/v1/voices/{voice_id}", json=patch, headers=AUTH), 422)
    assert (error["code"], error["field"]) == ("invalid_request", field)
    assert api_client.get(f"/v1/voices/{voice_id}", headers=AUTH).get_json()["name"] == "Jane"


# Every pattern that validates input, in Python (where `$` also matches before a final line feed) and
# as pydantic applies it: each takes a valid value and refuses it with a line feed after it.
PYTHON_PATTERNS = [
    (jobs._INPUT_ID, "chapter-01"),
    (jobs._METADATA_KEY, "series:part"),
    (store._CURSOR, "MTc2NDY0ODAwMC41"),
    (params._IDEMPOTENCY_KEY, "3f2c9a1e-uuid"),
    (voice_routes._LANGUAGE, "en_us"),
]
PYDANTIC_TYPES = [(jobs.VoiceName, "en_us"), (jobs.MetadataKey, "title")]


@pytest.mark.parametrize(("pattern", "valid"), PYTHON_PATTERNS, ids=[p.pattern for p, _ in PYTHON_PATTERNS])
def test_every_python_input_pattern_ends_at_the_end(pattern, valid):
    assert pattern.match(valid)
    assert not pattern.match(valid + "\n")


@pytest.mark.parametrize(("kind", "valid"), PYDANTIC_TYPES, ids=["VoiceName", "MetadataKey"])
def test_every_pydantic_input_pattern_ends_at_the_end(kind, valid):
    adapter = TypeAdapter(kind)
    assert adapter.validate_python(valid) == valid
    with pytest.raises(ValidationError):
        adapter.validate_python(valid + "\n")
