"""One webhook delivery attempt, as a plain function: the body of the `narrate.deliver_webhook` task.

Standard Webhooks (https://www.standardwebhooks.com): the body is POSTed with `webhook-id` (the
message id, the same on every retry), `webhook-timestamp` (this attempt, Unix seconds) and
`webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the secret), signed by
the spec's own library. Before each attempt the URL is checked again by the SSRF guard, and the
connection goes to the address the guard approved (urllib3 pool on that address, with the host name
for Host, SNI and certificate checks), so a DNS answer that changed since cannot redirect it. A
redirect is not followed (it counts as a failure). A failed attempt is retried after an exponential
back-off until `NARRATE_WEBHOOK_RETRY_WINDOW_SECONDS` after the event.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import urllib3
from standardwebhooks import Webhook

from shared import metrics
from shared.jobs import to_datetime, utcnow
from shared.services import Services
from shared.settings import Settings
from shared.url_guard import AllowList, Target, UrlRefused, check_url
from shared.webhook_store import DeliveryAttempt, DeliveryOutcome, Message

log = logging.getLogger(__name__)

USER_AGENT = "narrate-webhooks/1"


@dataclass(frozen=True)
class Sent:
    outcome: DeliveryOutcome
    status_code: int | None = None
    error: str | None = None


def backoff_seconds(settings: Settings, attempt: int) -> float:
    """Wait after failed attempt number `attempt` (1-based): base x 2^(attempt-1), capped below half the
    broker's visibility timeout (a longer countdown would be redelivered while it waits)."""
    cap = min(settings.webhook_retry_max_backoff_seconds, settings.visibility_timeout_seconds / 2)
    return min(settings.webhook_retry_base_seconds * 2 ** (attempt - 1), cap)


def signed_headers(secret: str, message_id: str, body: str, at: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id=message_id, timestamp=at, data=body)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def post(target: Target, headers: dict[str, str], body: bytes, timeout: float, ca_certs: str | None = None) -> Sent:
    """POST to the checked address; 2xx succeeded, anything else (redirects too) failed. https verifies
    the certificate against `target.host` (system CAs, or the PEM file `ca_certs`)."""
    pool_timeout = urllib3.Timeout(connect=min(timeout, 5.0), read=timeout)
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host:  # IPv6 literal
        host_header = f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address, target.port, timeout=pool_timeout, retries=False, maxsize=1,
            server_hostname=target.host, assert_hostname=target.host, cert_reqs="CERT_REQUIRED", ca_certs=ca_certs,
        )  # fmt: skip
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=pool_timeout, retries=False, maxsize=1)
    try:
        response = pool.urlopen(
            "POST", target.path, body=body, headers={**headers, "Host": host_header},
            redirect=False, retries=False, preload_content=False, assert_same_host=False,
        )  # fmt: skip
        status = response.status
        response.drain_conn()
        response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        return Sent(DeliveryOutcome.FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        pool.close()
    if 200 <= status < 300:
        return Sent(DeliveryOutcome.SUCCEEDED, status)
    if 300 <= status < 400:
        return Sent(DeliveryOutcome.FAILED, status, "redirects are not followed")
    return Sent(DeliveryOutcome.FAILED, status, f"the receiver answered HTTP {status}")


def attempt_delivery(services: Services, message: Message, secret: str) -> Sent:
    settings = services.settings
    try:
        target = check_url(message.url, AllowList.parse(settings.webhook_allow_hosts))
    except UrlRefused as exc:
        return Sent(DeliveryOutcome.REFUSED, error=str(exc))
    headers = signed_headers(secret, message.id, message.body, datetime.now(UTC))
    return post(target, headers, message.body.encode(), settings.webhook_timeout_seconds, settings.webhook_ca_bundle)


def deliver(services: Services, message_id: str) -> float | None:
    """Make the next attempt of a message and record it; returns the seconds until the next attempt
    is due, or None when the message is done (delivered, given up, expired or its endpoint deleted)."""
    store, settings = services.webhooks, services.settings
    message = store.message(message_id)
    if message is None:
        log.info("webhook message %s expired", message_id)
        return None
    secret = store.secret_for(message.tenant, message.endpoint)
    if secret is None:
        log.info("webhook message %s: endpoint %s was deleted", message_id, message.endpoint)
        return None
    attempt = store.next_attempt(message_id)
    started = time.perf_counter()
    sent = attempt_delivery(services, message, secret)
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    now = utcnow()
    retry_in: float | None = None
    if sent.outcome != DeliveryOutcome.SUCCEEDED:
        wait = backoff_seconds(settings, attempt)
        if now + wait <= message.created_at + settings.webhook_retry_window_seconds:
            retry_in = wait
    store.record_attempt(
        message,
        DeliveryAttempt(
            message_id=message.id,
            event=message.event,
            subject=message.subject,
            url=message.url,
            attempt=attempt,
            at=to_datetime(now),
            outcome=sent.outcome,
            status_code=sent.status_code,
            error=sent.error,
            duration_ms=duration_ms,
            next_attempt_at=to_datetime(now + retry_in) if retry_in is not None else None,
        ),
    )
    metrics.WEBHOOK_ATTEMPTS.labels(outcome=sent.outcome.value).inc()
    log.info(
        "webhook %s attempt %d to %s: %s %s", message_id, attempt, message.endpoint, sent.outcome.value,
        sent.status_code or sent.error,
    )  # fmt: skip
    return retry_in
