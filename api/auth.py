"""Bearer API keys, stored as SHA-256 hashes, each belonging to a tenant."""

from __future__ import annotations

import hashlib
import hmac

from flask import g, request

from api.errors import ApiError
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


def authenticate(keys: list[tuple[str, str]]) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthorized", "Missing API key: send 'Authorization: Bearer <key>'.")
    tenant = tenant_for(key.strip(), keys)
    if tenant is None:
        raise ApiError(401, "unauthorized", "The API key is not valid.")
    g.tenant = tenant
    return tenant
