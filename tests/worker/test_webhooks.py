"""Webhooks end to end: the real API, Redis, synthesis worker and webhooks worker, and a real HTTP
receiver on 127.0.0.1 that checks every signature with its own implementation of the specification."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api import create_app
from tests.conftest import AUTH, ServiceEnv, wait_for, wait_status
from tests.support.webhooks import Receiver, WebhookWorker, verify_standard_webhook

pytestmark = pytest.mark.slow

WEBHOOK_ENV = {"NARRATE_WEBHOOK_ALLOW_HOSTS": "127.0.0.1", "NARRATE_WEBHOOK_RETRY_BASE_SECONDS": "0.3"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def client(service_env: ServiceEnv):
    service_env.extra.update(WEBHOOK_ENV)
    app = create_app(service_env.settings())
    app.testing = True
    return app.test_client()


@pytest.fixture
def webhook_worker(service_env: ServiceEnv, tmp_path: Path) -> Iterator:
    started: list[WebhookWorker] = []

    def start(extra: dict[str, str] | None = None) -> WebhookWorker:
        worker = WebhookWorker(service_env, tmp_path / f"webhooks-{len(started)}.log", extra)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _endpoint(client, url: str, **extra) -> dict:
    response = client.post("/v1/webhooks", json={"url": url, **extra}, headers=AUTH)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _deliveries(client, endpoint_id: str) -> list[dict]:
    response = client.get(f"/v1/webhooks/{endpoint_id}/deliveries", headers=AUTH)
    assert response.status_code == 200
    return response.get_json()["data"]


def test_a_finished_job_is_delivered_signed_to_the_endpoint_and_to_its_own_url(
    client, service_env, start_worker, webhook_worker, receiver
):
    endpoint = _endpoint(client, receiver.url("/hooks"), events=["job.succeeded", "job.failed"])
    secret = endpoint["secret"]
    default_secret = client.get("/v1/webhooks/default/secret", headers=AUTH).get_json()["secret"]
    assert default_secret.startswith("whsec_") and default_secret != secret
    start_worker(service_env)
    webhook_worker()
    body = {"inputs": [{"text": "Webhooks tell you when it is done."}], "webhook_url": receiver.url("/job-hook")}
    submitted = client.post("/v1/jobs", json=body, headers=AUTH)
    assert submitted.status_code == 202
    job_id = submitted.get_json()["id"]
    assert submitted.get_json()["webhook_url"] == receiver.url("/job-hook")
    job = wait_status(client, job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]

    [to_endpoint] = wait_for(lambda: receiver.at("/hooks"), message="the endpoint's delivery")
    [to_job] = wait_for(lambda: receiver.at("/job-hook"), message="the job URL's delivery")
    assert verify_standard_webhook(secret, to_endpoint.headers, to_endpoint.body)
    assert verify_standard_webhook(default_secret, to_job.headers, to_job.body)
    assert not verify_standard_webhook(secret, to_job.headers, to_job.body)  # each is signed with its own secret
    for delivered in (to_endpoint, to_job):
        event = delivered.json()
        assert event["type"] == "job.succeeded" and event["timestamp"]
        assert event["data"]["id"] == job_id and event["data"]["status"] == "succeeded"
        assert event["data"]["result"]["sha256"] == job["result"]["sha256"]
        assert delivered.headers["Content-Type"] == "application/json"
    assert to_endpoint.headers["webhook-id"] != to_job.headers["webhook-id"]

    [attempt] = wait_for(lambda: _deliveries(client, endpoint["id"]), message="the attempt record")
    assert attempt["message_id"] == to_endpoint.headers["webhook-id"]
    assert attempt["outcome"] == "succeeded" and attempt["status_code"] == 200 and attempt["attempt"] == 1
    assert attempt["event"] == "job.succeeded" and attempt["subject"] == job_id
    assert attempt["next_attempt_at"] is None and attempt["duration_ms"] >= 0
    [own] = wait_for(lambda: _deliveries(client, "default"), message="the job URL's attempt record")
    assert own["message_id"] == to_job.headers["webhook-id"] and own["outcome"] == "succeeded"


def test_a_receiver_that_fails_twice_gets_three_attempts_each_recorded(client, webhook_worker, receiver):
    # A 500, then a redirect (never followed), then success; the cancel of a queued job is the event.
    receiver.script["/flaky"] = [500, 302]
    endpoint = _endpoint(client, receiver.url("/flaky"))
    webhook_worker()
    job_id = client.post("/v1/jobs", json={"inputs": [{"text": "Never spoken."}]}, headers=AUTH).get_json()["id"]
    assert client.delete(f"/v1/jobs/{job_id}", headers=AUTH).get_json()["status"] == "canceled"

    attempts = wait_for(lambda: (rows := _deliveries(client, endpoint["id"])) and len(rows) >= 3 and rows, timeout=30)
    assert [a["attempt"] for a in reversed(attempts)] == [1, 2, 3]
    first, second, third = reversed(attempts)
    assert (first["outcome"], first["status_code"]) == ("failed", 500) and first["next_attempt_at"]
    assert (second["outcome"], second["status_code"]) == ("failed", 302) and "redirect" in second["error"]
    assert (third["outcome"], third["status_code"]) == ("succeeded", 200) and third["next_attempt_at"] is None
    assert second["at"] > first["at"] and third["at"] > second["at"]
    requests = receiver.at("/flaky")
    assert len(requests) == 3 and receiver.at("/redirected") == []
    assert len({r.headers["webhook-id"] for r in requests}) == 1  # one message, retried
    assert all(verify_standard_webhook(endpoint["secret"], r.headers, r.body) for r in requests)
    assert requests[-1].json()["type"] == "job.canceled" and requests[-1].json()["data"]["id"] == job_id


def test_the_address_is_checked_again_at_delivery_time(client, webhook_worker, receiver):
    """Allowed when registered, no longer allowed when delivered: refused, recorded, nothing sent."""
    endpoint = _endpoint(client, receiver.url("/later-private"))
    webhook_worker({"NARRATE_WEBHOOK_ALLOW_HOSTS": "", "NARRATE_WEBHOOK_RETRY_WINDOW_SECONDS": "1"})
    job_id = client.post("/v1/jobs", json={"inputs": [{"text": "Never spoken."}]}, headers=AUTH).get_json()["id"]
    client.delete(f"/v1/jobs/{job_id}", headers=AUTH)
    attempts = wait_for(lambda: _deliveries(client, endpoint["id"]), timeout=30)
    assert attempts[0]["outcome"] == "refused" and attempts[0]["status_code"] is None
    assert "127.0.0.1" in attempts[0]["error"]
    assert receiver.requests == []
