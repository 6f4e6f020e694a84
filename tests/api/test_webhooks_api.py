"""Webhook endpoints and the SSRF guard at submission, through the real API on a real Redis."""

from __future__ import annotations

import pytest
import redis

from api import create_app
from shared.url_guard import AllowList, UrlRefused, check_url
from tests.conftest import AUTH, ServiceEnv


def _app(env: ServiceEnv, **extra: str):
    env.extra.update(extra)
    app = create_app(env.settings())
    app.testing = True
    return app.test_client()


def _job_keys(env: ServiceEnv) -> list[bytes]:
    return list(redis.Redis.from_url(env.redis_url).scan_iter(match=f"{env.key_prefix}:job:*"))


REFUSED_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.5/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://224.0.0.1/hook",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_a_private_address_is_refused_at_submission_and_nothing_is_stored(service_env, url):
    client = _app(service_env)
    body = {"inputs": [{"text": "Hello."}], "webhook_url": url}
    response = client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "webhook_url_refused" and error["field"] == "webhook_url"
    assert _job_keys(service_env) == []
    endpoint = client.post("/v1/webhooks", json={"url": url}, headers=AUTH)
    assert endpoint.status_code == 400 and endpoint.get_json()["error"]["field"] == "url"
    assert client.get("/v1/webhooks", headers=AUTH).get_json() == {"data": []}


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http://user:pw@example.com/", "nohost"])
def test_a_url_that_is_not_http_is_invalid(service_env, url):
    client = _app(service_env)
    response = client.post("/v1/jobs", json={"inputs": [{"text": "Hello."}], "webhook_url": url}, headers=AUTH)
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "webhook_url"
    assert client.post("/v1/webhooks", json={"url": url}, headers=AUTH).status_code == 422
    assert _job_keys(service_env) == []


def test_the_guard_passes_public_addresses_and_what_the_allow_list_names():
    assert check_url("https://8.8.8.8/hook?x=1", AllowList.parse("")).path == "/hook?x=1"
    with pytest.raises(UrlRefused):
        check_url("http://127.0.0.1:9/x", AllowList.parse("10.0.0.0/8"))
    assert check_url("http://127.0.0.1:9/x", AllowList.parse("127.0.0.0/8")).address == "127.0.0.1"
    assert check_url("http://localhost:9/x", AllowList.parse("localhost")).host == "localhost"


def test_endpoints_are_created_listed_read_and_deleted_and_the_secret_is_shown_once(service_env):
    client = _app(service_env, NARRATE_WEBHOOK_ALLOW_HOSTS="127.0.0.1")
    created = client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["voice.ready"]}, headers=AUTH
    )
    assert created.status_code == 201
    endpoint = created.get_json()
    assert created.headers["Location"] == f"/v1/webhooks/{endpoint['id']}"
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == ["voice.ready"]
    listed = client.get("/v1/webhooks", headers=AUTH).get_json()["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]
    read = client.get(f"/v1/webhooks/{endpoint['id']}", headers=AUTH).get_json()
    assert "secret" not in read and read["url"] == "http://127.0.0.1:9/hook"
    assert client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=AUTH).get_json() == {"data": []}
    everything = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/all"}, headers=AUTH).get_json()
    assert set(everything["events"]) == {"job.succeeded", "job.failed", "job.canceled", "voice.ready", "voice.failed"}
    assert client.delete(f"/v1/webhooks/{endpoint['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/v1/webhooks/{endpoint['id']}", headers=AUTH).status_code == 404
    assert client.delete(f"/v1/webhooks/{endpoint['id']}", headers=AUTH).status_code == 404
    assert client.get("/v1/webhooks/nope/deliveries", headers=AUTH).status_code == 404
    secret = client.get("/v1/webhooks/default/secret", headers=AUTH).get_json()["secret"]
    assert client.get("/v1/webhooks/default/secret", headers=AUTH).get_json()["secret"] == secret
    bad = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["job.started"]}, headers=AUTH)
    assert bad.status_code == 422 and bad.get_json()["error"]["field"].startswith("events")


def test_another_tenants_endpoint_is_not_found(service_env):
    import hashlib

    other = hashlib.sha256(b"other-key").hexdigest()
    client = _app(service_env, NARRATE_WEBHOOK_ALLOW_HOSTS="127.0.0.1", NARRATE_API_KEYS=f"other:{other}")
    endpoint = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=AUTH).get_json()
    theirs = {"Authorization": "Bearer other-key"}
    assert client.get(f"/v1/webhooks/{endpoint['id']}", headers=theirs).status_code == 404
    assert client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=theirs).status_code == 404
    assert client.delete(f"/v1/webhooks/{endpoint['id']}", headers=theirs).status_code == 404
    assert client.get("/v1/webhooks", headers=theirs).get_json() == {"data": []}
