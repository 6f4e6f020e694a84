"""Failed authentications are limited per client address (real Redis, the real Flask app)."""

from __future__ import annotations

import time

from api import create_app
from tests.conftest import AUTH, ServiceEnv

WRONG = {"Authorization": "Bearer not-a-key"}


def _client(env: ServiceEnv, **settings: str):
    env.extra.update({f"NARRATE_{name.upper()}": value for name, value in settings.items()})
    app = create_app(env.settings())
    app.testing = True
    return app.test_client()


def _get(client, address: str, headers: dict, path: str = "/v1/jobs", **extra):
    return client.get(path, headers=headers, environ_base={"REMOTE_ADDR": address}, **extra)


def test_a_flood_of_wrong_keys_gets_429_after_the_limit(service_env):
    """The default 20 per minute: of 100 wrong keys from one address 20 are checked, the rest refused."""
    client = _client(service_env)
    statuses = [_get(client, "10.0.0.1", WRONG).status_code for _ in range(100)]
    assert statuses == [401] * 20 + [429] * 80
    refused = _get(client, "10.0.0.1", WRONG)
    assert refused.get_json()["error"]["code"] == "too_many_auth_failures"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_an_address_over_the_limit_is_refused_even_with_a_valid_key_but_the_tenant_is_not(service_env):
    client = _client(service_env, auth_failure_limit="5 per minute")
    for _ in range(5):
        assert _get(client, "10.0.0.1", WRONG).status_code == 401
    assert _get(client, "10.0.0.1", AUTH).status_code == 429  # no oracle: the key is not even checked
    assert _get(client, "10.0.0.1", {}).status_code == 429
    # The same tenant from anywhere else, and other addresses' own failures, are unaffected.
    assert _get(client, "10.0.0.2", AUTH).status_code == 200
    assert _get(client, "10.0.0.2", WRONG).status_code == 401
    assert _get(client, "10.0.0.3", AUTH).status_code == 200
    # Health and metrics are not /v1/ and stay open.
    assert _get(client, "10.0.0.1", {}, path="/healthz").status_code == 200


def test_successes_do_not_count_and_missing_keys_do(service_env):
    client = _client(service_env, auth_failure_limit="3 per minute")
    for _ in range(10):
        assert _get(client, "10.0.0.1", AUTH).status_code == 200
    assert [_get(client, "10.0.0.1", {}).status_code for _ in range(4)] == [401, 401, 401, 429]


def test_the_address_is_served_again_once_the_window_has_room(service_env):
    client = _client(service_env, auth_failure_limit="2 per 2 seconds")
    assert [_get(client, "10.0.0.1", WRONG).status_code for _ in range(2)] == [401, 401]
    refused = _get(client, "10.0.0.1", AUTH)
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 2
    time.sleep(retry_after + 0.2)
    assert _get(client, "10.0.0.1", AUTH).status_code == 200


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(service_env):
    # Without trusted proxies a forged X-Forwarded-For neither hides nor frames anyone.
    client = _client(service_env, auth_failure_limit="2 per minute")
    for n in range(2):
        assert _get(client, "10.0.0.1", {**WRONG, "X-Forwarded-For": f"192.0.2.{n}"}).status_code == 401
    assert _get(client, "10.0.0.1", {**AUTH, "X-Forwarded-For": "192.0.2.9"}).status_code == 429


def test_behind_a_trusted_proxy_clients_are_told_apart_by_the_forwarded_address(service_env):
    client = _client(service_env, auth_failure_limit="2 per minute", trusted_proxies="1")
    proxy = "172.16.0.1"
    for _ in range(2):
        assert _get(client, proxy, {**WRONG, "X-Forwarded-For": "198.51.100.7"}).status_code == 401
    assert _get(client, proxy, {**AUTH, "X-Forwarded-For": "198.51.100.7"}).status_code == 429
    # Another client behind the same proxy; a forged left-most entry does not move the client's address.
    assert _get(client, proxy, {**AUTH, "X-Forwarded-For": "198.51.100.8"}).status_code == 200
    assert _get(client, proxy, {**AUTH, "X-Forwarded-For": "198.51.100.7, 198.51.100.8"}).status_code == 200
