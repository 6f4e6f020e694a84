"""How long a job's data lives, and how it goes: the sweep of expired objects and a tenant's delete.

Expiry touches `storage_keys.EXPIRING_ROOTS` (results and checkpoints) and nothing else: voices live
under their own root until their owner deletes them. On S3 a bucket lifecycle rule per expiring root
does the same work (docker-compose.yml sets it for MinIO); the sweep is what expires the file backend.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shared.jobs import utcnow
from shared.storage import Storage
from shared.storage_keys import EXPIRING_ROOTS, checkpoint_prefix, result_prefix

if TYPE_CHECKING:
    from shared.services import Services

log = logging.getLogger(__name__)

SWEEP_GRACE_SECONDS = 3600
"""Objects live this much longer than their job record (whose expiry is counted from the job's end, a
moment after its last upload), so a record never links to an object already swept."""


def sweep_expired(storage: Storage, *, retention_seconds: int, now: float | None = None) -> int:
    """Delete result and checkpoint objects last written more than `retention_seconds` (+ grace) ago;
    returns how many went. Safe to run in several processes at once."""
    cutoff = (utcnow() if now is None else now) - retention_seconds - SWEEP_GRACE_SECONDS
    removed = 0
    for root in EXPIRING_ROOTS:
        for key, modified in storage.list_modified(root):
            if modified < cutoff:
                storage.delete(key)
                removed += 1
    if removed:
        log.info("retention sweep removed %d expired objects", removed)
    return removed


def remove_job(services: Services, job_id: str, tenant: str) -> None:
    """Every trace of a finished job: its results, checkpoints, record and idempotency key (a tenant's
    data-deletion request), and so of its pickups. Storage goes first, so a failure leaves the record
    for a retried delete."""
    for child in services.jobs.revisions(job_id):
        remove_job(services, child, tenant)
    services.storage.delete_prefix(result_prefix(tenant, job_id))
    services.storage.delete_prefix(checkpoint_prefix(job_id))
    services.usage.forget_job(job_id)
    services.jobs.delete(job_id)
