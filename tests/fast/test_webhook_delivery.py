"""Webhook messages and delivery attempts in process: the real Redis and Celery queue, a real receiver
on 127.0.0.1, the signature checked by the test's own implementation of the specification."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import redis
import trustme

from shared.services import Services
from shared.url_guard import Target
from shared.webhook_store import DeliveryOutcome, WebhookCreate, WebhookEvent
from tests.conftest import ServiceEnv
from tests.support.fake_engine import FakeEngine
from tests.support.webhooks import Receiver, verify_standard_webhook
from worker.cloning import run_clone
from worker.webhooks import backoff_seconds, deliver, post

pytestmark = pytest.mark.fast

CONSENT = {"by": "Jane Doe", "at": "2026-11-01T00:00:00+00:00", "recorded_at": "2026-11-01T00:00:00+00:00"}
CLIPS = [{"filename": "a.wav", "bytes": 1000, "duration_seconds": 4.0}]


@pytest.fixture
def service_env(service_env: ServiceEnv) -> ServiceEnv:
    service_env.extra.update({"NARRATE_WEBHOOK_ALLOW_HOSTS": "127.0.0.1", "NARRATE_WEBHOOK_RETRY_BASE_SECONDS": "1"})
    return service_env


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def queued_messages(services: Services) -> list[str]:
    """The message ids waiting on the webhook queue (Celery's JSON messages, read from Redis)."""
    client = redis.Redis.from_url(services.settings.redis_url)
    ids = []
    for raw in client.lrange(services.settings.webhook_queue_name, 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == "narrate.deliver_webhook"
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        ids.append(args[0])
    return ids


def test_a_failed_voice_is_delivered_as_voice_failed_to_its_tenants_subscribed_endpoints(
    services, make_runtime, receiver
):
    subscribed = services.webhooks.create(
        "dev", WebhookCreate(url=receiver.url("/voices"), events=[WebhookEvent.VOICE_FAILED]), limit=5
    )
    services.webhooks.create("dev", WebhookCreate(url=receiver.url("/jobs"), events=[WebhookEvent.JOB_FAILED]), limit=5)
    services.webhooks.create("other", WebhookCreate(url=receiver.url("/other")), limit=5)
    voice_id = services.voices.new_id()
    services.voices.create(
        voice_id, "dev", name="Jane", description=None, language="en_gb", consent=CONSENT, clips=CLIPS, limit=5
    )
    assert run_clone(voice_id, make_runtime(FakeEngine(can_clone=False))) == "failed"

    [message_id] = queued_messages(services)  # one subscribed endpoint of this tenant
    assert deliver(services, message_id) is None
    [request] = receiver.requests
    assert request.path == "/voices"
    assert verify_standard_webhook(subscribed.secret, request.headers, request.body)
    event = request.json()
    assert event["type"] == "voice.failed" and event["data"]["id"] == voice_id
    assert event["data"]["status"] == "failed" and event["data"]["error"]["code"] == "cloning_unsupported"
    [attempt] = services.webhooks.attempts("dev", subscribed.id, subject=voice_id)
    assert attempt.outcome == "succeeded" and attempt.message_id == request.headers["webhook-id"] == message_id


def test_failures_back_off_exponentially_until_the_window_closes(service_env, receiver):
    service_env.extra["NARRATE_WEBHOOK_RETRY_WINDOW_SECONDS"] = "5"
    services = service_env.services()
    receiver.script["/down"] = [503] * 10
    endpoint = services.webhooks.create("dev", WebhookCreate(url=receiver.url("/down")), limit=5)
    message_id = services.webhooks.add_message(
        "dev", endpoint.id, endpoint.url, WebhookEvent.JOB_FAILED, "job_x", '{"type":"job.failed"}'
    )
    waits = [deliver(services, message_id) for _ in range(4)]
    assert waits == [1.0, 2.0, 4.0, None]  # back to back: 1, 2 and 4 s fit the 5 s window, 8 s would not
    rows = services.webhooks.attempts("dev", endpoint.id)
    assert [row.attempt for row in rows] == [4, 3, 2, 1] and {row.status_code for row in rows} == {503}
    assert rows[0].next_attempt_at is None and all(row.next_attempt_at for row in rows[1:])
    assert len(receiver.at("/down")) == 4


def test_the_back_off_is_capped_below_half_the_visibility_timeout(service_env):
    service_env.extra.update(
        {"NARRATE_WEBHOOK_RETRY_MAX_BACKOFF_SECONDS": "3600", "NARRATE_VISIBILITY_TIMEOUT_SECONDS": "180"}
    )
    settings = service_env.settings()
    assert [backoff_seconds(settings, n) for n in (1, 2, 3, 7, 8, 20)] == [1, 2, 4, 64, 90, 90]


def test_a_deleted_endpoint_gets_nothing_more(services, receiver):
    endpoint = services.webhooks.create("dev", WebhookCreate(url=receiver.url("/gone")), limit=5)
    message_id = services.webhooks.add_message(
        "dev", endpoint.id, endpoint.url, WebhookEvent.JOB_SUCCEEDED, "job_x", "{}"
    )
    assert services.webhooks.delete(endpoint.id, tenant="dev")
    assert deliver(services, message_id) is None
    assert receiver.requests == []


def test_https_goes_to_the_checked_address_with_the_host_name_for_tls_and_host(tmp_path):
    """The connection is pinned to the approved address; the certificate is still checked for the name."""
    authority = trustme.CA()
    certificate = authority.issue_cert("hooks.example.test")
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    port = server.server_address[1]
    try:
        # "hooks.example.test" does not resolve: only the pinned address can have reached the server.
        named = Target("https", "hooks.example.test", port, "/in", "127.0.0.1")
        assert post(named, {}, b"{}", 5, str(ca_file)).outcome == DeliveryOutcome.SUCCEEDED
        assert seen == [f"hooks.example.test:{port}"]
        wrong_name = Target("https", "other.example.test", port, "/in", "127.0.0.1")
        refused = post(wrong_name, {}, b"{}", 5, str(ca_file))
        assert refused.outcome == DeliveryOutcome.FAILED and "SSLError" in (refused.error or "")
        untrusted = post(named, {}, b"{}", 5)  # the system's CAs do not know this one
        assert untrusted.outcome == DeliveryOutcome.FAILED and "certificate verify failed" in (untrusted.error or "")
        assert len(seen) == 1
    finally:
        server.shutdown()
        server.server_close()
