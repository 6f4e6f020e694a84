"""Bearer API keys, stored as SHA-256 hashes, each belonging to a tenant; failed attempts limited per address."""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from flask import Response, g, make_response, request
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from api.errors import ApiError
from shared.services import limits_storage
from shared.settings import DEV_KEY, DEV_TENANT, Settings


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_keys(settings: Settings) -> list[tuple[str, str]]:
    """(tenant, sha256 hex) pairs from settings; the development key only in dev mode."""
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in settings.api_keys.split(","))):
        tenant, _, digest = item.partition(":")
        if not tenant or len(digest) != 64:
            raise ValueError(f"NARRATE_API_KEYS entry {tenant!r} is not tenant:sha256hex")
        pairs.append((tenant, digest.lower()))
    if settings.dev_mode:
        pairs.append((DEV_TENANT, hash_key(DEV_KEY)))
    return pairs


def tenant_for(key: str, keys: list[tuple[str, str]]) -> str | None:
    """Constant-time match against every configured hash (no early exit on the first hit)."""
    digest = hash_key(key)
    found = None
    for tenant, expected in keys:
        if hmac.compare_digest(digest, expected):
            found = tenant
    return found


class FailureLimit:
    """Failed authentications per client address, in a moving window in Redis (the `limits` library that
    flask-limiter is built on).

    Over the limit, an address gets 429 for every request, even with a valid key: were valid keys let
    through, each guess would still be answered (429 wrong, 200 right) and brute force would go on at full
    speed. Only the address is counted, never the tenant, so failures from one address cannot lock a
    tenant's other clients out. The address is the TCP peer, or with `trusted_proxies` the one those
    proxies forwarded (werkzeug's ProxyFix, in create_app).
    """

    def __init__(self, settings: Settings) -> None:
        self.item = parse(settings.auth_failure_limit)
        uri, options = limits_storage(settings)
        self.window = MovingWindowRateLimiter(storage_from_string(uri, **options))
        self.namespace = f"{settings.key_prefix}:auth-failures"

    def refusal(self, address: str) -> Response | None:
        """The 429 for an address over the limit (with Retry-After), or None."""
        if self.window.test(self.item, self.namespace, address):
            return None
        reset = self.window.get_window_stats(self.item, self.namespace, address).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        response = make_response(
            ApiError(
                429,
                "too_many_auth_failures",
                f"Too many failed authentications from this address; retry after {retry_after} s.",
            ).response()
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    def record(self, address: str) -> None:
        self.window.hit(self.item, self.namespace, address)


def authenticate(keys: list[tuple[str, str]], failures: FailureLimit | None = None) -> str:
    """The tenant of the request's bearer key; a 401 otherwise, counted against the client's address."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    sent = scheme.lower() == "bearer" and bool(key.strip())
    tenant = tenant_for(key.strip(), keys) if sent else None
    if tenant is None:
        if failures is not None:
            failures.record(request.remote_addr or "unknown")
        if not sent:
            raise ApiError(401, "unauthorized", "Missing API key: send 'Authorization: Bearer <key>'.")
        raise ApiError(401, "unauthorized", "The API key is not valid.")
    g.tenant = tenant
    return tenant
