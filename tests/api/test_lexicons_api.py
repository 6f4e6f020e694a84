"""`/v1/lexicons` and the pronunciation fields of a job (lexicons, lexicon, SSML input), through the real
API on a real Redis."""

from __future__ import annotations

import pytest
import redis

from api import create_app
from api.auth import hash_key
from tests.conftest import AUTH, ServiceEnv

OTHER_KEY = "other-tenant-key"
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}
NAMES = [
    {"match": "Nguyen", "respelling": "win"},
    {"match": "Siobhan", "respelling": "shiv awn", "case_sensitive": True},
]


@pytest.fixture
def client(service_env: ServiceEnv):
    service_env.extra.update({"NARRATE_API_KEYS": f"other:{hash_key(OTHER_KEY)}", "NARRATE_LEXICONS_PER_TENANT": "3"})
    app = create_app(service_env.settings())
    app.testing = True
    return app.test_client()


def _job_keys(env: ServiceEnv) -> list[bytes]:
    return list(redis.Redis.from_url(env.redis_url).scan_iter(match=f"{env.key_prefix}:job:*"))


def _create(client, entries=NAMES, headers=AUTH, name="Cast") -> dict:
    response = client.post("/v1/lexicons", json={"name": name, "entries": entries}, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert response.headers["Location"] == f"/v1/lexicons/{response.get_json()['id']}"
    return response.get_json()


def test_create_list_get_replace_change_and_delete(client):
    created = _create(client)
    assert created["id"].startswith("lex_") and created["entries"][0] == {
        "match": "Nguyen", "respelling": "win", "case_sensitive": False, "whole_word": True,
    }  # fmt: skip
    listed = client.get("/v1/lexicons", headers=AUTH).get_json()["data"]
    assert [(item["id"], item["name"], item["entry_count"]) for item in listed] == [(created["id"], "Cast", 2)]
    assert client.get(f"/v1/lexicons/{created['id']}", headers=AUTH).get_json() == created

    replaced = client.put(
        f"/v1/lexicons/{created['id']}", json={"name": "Cast II", "entries": NAMES[:1]}, headers=AUTH
    ).get_json()
    assert (replaced["name"], len(replaced["entries"]), replaced["created_at"]) == ("Cast II", 1, created["created_at"])
    changed = client.patch(f"/v1/lexicons/{created['id']}", json={"description": "names in book 2"}, headers=AUTH)
    assert changed.status_code == 200
    assert (changed.get_json()["description"], changed.get_json()["entries"]) == (
        "names in book 2",
        replaced["entries"],
    )
    assert client.patch(f"/v1/lexicons/{created['id']}", json={"entries": None}, headers=AUTH).status_code == 422

    assert client.delete(f"/v1/lexicons/{created['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/v1/lexicons/{created['id']}", headers=AUTH).status_code == 404
    assert client.get("/v1/lexicons", headers=AUTH).get_json() == {"data": []}


def test_another_tenants_lexicon_is_404_everywhere_and_in_a_job(client, service_env):
    mine = _create(client)
    path = f"/v1/lexicons/{mine['id']}"
    assert client.get(path, headers=OTHER).status_code == 404
    assert client.put(path, json={"name": "x", "entries": []}, headers=OTHER).status_code == 404
    assert client.patch(path, json={"name": "x"}, headers=OTHER).status_code == 404
    assert client.delete(path, headers=OTHER).status_code == 404
    assert client.get("/v1/lexicons", headers=OTHER).get_json() == {"data": []}
    assert client.get(path, headers=AUTH).get_json() == mine  # untouched

    job = client.post("/v1/jobs", json={"inputs": [{"text": "Hello."}], "lexicons": [mine["id"]]}, headers=OTHER)
    assert job.status_code == 404
    assert job.get_json()["error"] == {
        "code": "lexicon_not_found", "message": f"No lexicon {mine['id']!r}.", "field": "lexicons.0",
    }  # fmt: skip
    assert _job_keys(service_env) == []


def test_limits_on_entries_lengths_duplicates_and_lexicons_per_tenant(client):
    too_many = [{"match": f"w{i}", "respelling": "x"} for i in range(1001)]
    response = client.post("/v1/lexicons", json={"name": "big", "entries": too_many}, headers=AUTH)
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "entries"
    long = client.post(
        "/v1/lexicons", json={"name": "l", "entries": [{"match": "x" * 101, "respelling": "y"}]}, headers=AUTH
    )
    assert long.status_code == 422 and long.get_json()["error"]["field"] == "entries.0.match"
    twice = [{"match": "Nguyen", "respelling": "win"}, {"match": "NGUYEN", "respelling": "new yen"}]
    duplicate = client.post("/v1/lexicons", json={"name": "d", "entries": twice}, headers=AUTH)
    assert duplicate.status_code == 422 and "listed twice" in duplicate.get_json()["error"]["message"]
    for n in range(3):
        _create(client, name=f"n{n}")
    full = client.post("/v1/lexicons", json={"name": "one more", "entries": []}, headers=AUTH)
    assert full.status_code == 409 and full.get_json()["error"]["code"] == "too_many_lexicons"
    _create(client, headers=OTHER)  # the limit is per tenant


def test_a_job_keeps_the_entries_it_was_submitted_with(client, service_env):
    lexicon = _create(client)
    inline = [{"match": "Dr. Who", "respelling": "doctor who"}]
    body = {"inputs": [{"text": "Nguyen met Dr. Who."}], "lexicons": [lexicon["id"]], "lexicon": inline}
    response = client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    client.put(
        f"/v1/lexicons/{lexicon['id']}",
        json={"name": "Cast", "entries": [{"match": "x", "respelling": "y"}]},
        headers=AUTH,
    )
    client.delete(f"/v1/lexicons/{lexicon['id']}", headers=AUTH)
    spec = service_env.store().spec(job_id)
    assert spec is not None
    assert [(e.match, e.respelling) for e in spec.pronunciation()] == [
        ("Dr. Who", "doctor who"), ("Nguyen", "win"), ("Siobhan", "shiv awn"),
    ]  # fmt: skip
    # The same request again (an idempotent replay) is the same job, whatever the lexicon holds now.
    key = {"Idempotency-Key": "book-1"}
    first = client.post("/v1/jobs", json={**body, "lexicons": []}, headers={**AUTH, **key})
    again = client.post("/v1/jobs", json={**body, "lexicons": []}, headers={**AUTH, **key})
    assert (first.status_code, again.status_code) == (202, 200) and first.get_json()["id"] == again.get_json()["id"]


def test_a_client_cannot_send_the_snapshot_itself(client):
    body = {"inputs": [{"text": "Hello."}], "lexicon_snapshot": [{"match": "Hello", "respelling": "bye"}]}
    response = client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "lexicon_snapshot"


def test_malformed_ssml_is_400_naming_line_and_column_and_nothing_is_stored(client, service_env):
    ssml = "<speak>\n  <p>Chapter one.\n  <p>Nested but never closed.</p>\n</speak>"
    body = {"inputs": [{"text": "Fine.", "id": "a"}, {"text": ssml, "text_format": "ssml"}]}
    response = client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid_ssml", "inputs.1.text")
    assert error["message"] == "inputs.1.text: line 4, column 3: mismatched tag."
    unsupported = {"inputs": [{"text": '<speak>Hi <audio src="x.wav"/></speak>', "text_format": "ssml"}]}
    error = client.post("/v1/jobs", json=unsupported, headers=AUTH).get_json()["error"]
    assert error["message"].startswith("inputs.0.text: line 1, column 11: element <audio> is not supported")
    silent = {"inputs": [{"text": '<speak><break time="1s"/>…</speak>', "text_format": "ssml"}]}
    assert client.post("/v1/jobs", json=silent, headers=AUTH).status_code == 400
    assert client.post("/v1/estimate", json=unsupported, headers=AUTH).status_code == 400
    assert _job_keys(service_env) == []
    good = {"inputs": [{"text": "<speak><p>Hello <break time='1s'/> there.</p></speak>", "text_format": "ssml"}]}
    assert client.post("/v1/jobs", json=good, headers=AUTH).status_code == 202
    assert client.post("/v1/estimate", json=good, headers=AUTH).status_code == 200
