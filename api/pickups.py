"""Pickups of a succeeded job (`shared.revisions`): create one, pick a take, show one.

A pickup is stored as a job of its own (`JobStore.create(revision=...)`), so it is queued, leased,
retried and canceled like any job; these functions check the request against the parent and its
newest render record and answer in the revision's own shape.
"""

from __future__ import annotations

import hashlib
import secrets

from api.errors import ApiError
from shared.downloads import mint_view
from shared.jobs import JobCreate, JobStatus, JobView
from shared.revisions import (
    PickBody,
    RangeError,
    RevisionCreate,
    RevisionRecord,
    RevisionView,
    TakeView,
    load_record,
    resolve_ranges,
    take_seed,
)
from shared.services import Services
from shared.storage import StorageKeyMissing


def parent_job(services: Services, tenant: str, job_id: str) -> JobView:
    view = services.jobs.view(job_id, tenant=tenant)
    if view is None:
        raise ApiError(404, "not_found", f"No job {job_id!r}.")
    return view


def create_revision(services: Services, tenant: str, parent: JobView, body: RevisionCreate, voices: set[str]) -> str:
    """Queue a pickup of `parent`'s newest version; its id. 409 unless the job succeeded and its render
    record is kept, 422 for ranges that do not fit its text or an unknown voice."""
    if parent.revision_of is not None:
        raise ApiError(409, "is_a_revision", f"This job is a pickup of {parent.revision_of}; pick up from that job.")
    if parent.status != JobStatus.SUCCEEDED:
        raise ApiError(409, "job_not_succeeded", f"Only a succeeded job can be picked up; this one is {parent.status}.")
    if body.voice is not None and body.voice not in voices:
        raise ApiError(422, "unknown_voice", f"Unknown voice {body.voice!r}; see GET /v1/voices.", "voice")
    render = parent.stored_result.render
    if render is None:
        raise ApiError(409, "no_render_record", "This job was rendered before pickups were kept; submit it again.")
    try:
        record = load_record(services.storage, render.key)
    except StorageKeyMissing as exc:
        raise ApiError(409, "render_expired", "This job's chunk audio has expired; submit it again.") from exc
    try:
        covered = resolve_ranges(record, body.ranges)
    except RangeError as exc:
        raise ApiError(422, "invalid_range", str(exc), exc.field) from exc
    spec = JobCreate.model_validate(record["spec"])
    spec = spec.model_copy(update={"voice": body.voice or spec.voice, "webhook_url": None})
    revision = RevisionRecord(
        parent=parent.id,
        base_version=max(1, len(parent.stored_versions)),
        base_render=render.key,
        covered=covered,
        seed=body.seed if body.seed is not None else secrets.randbelow(2**32),
        voice=body.voice,
        takes=body.takes,
    )
    plan_inputs = record["plan"]["inputs"]
    chars = body.takes * sum(
        len(plan_inputs[item.input][index]["chunk"]["text"]) for item in covered for index in item.chunks
    )
    return _queue(services, tenant, spec, revision, chars)


def pick_take(services: Services, tenant: str, parent: JobView, revision_id: str, body: PickBody) -> str:
    """Queue the publication of one take of a pickup of several; the pick job's id."""
    revision, view = _revision(services, tenant, parent, revision_id)
    if revision.takes == 1:
        raise ApiError(409, "nothing_to_pick", "A pickup of one take is published on its own.")
    if view.status != JobStatus.SUCCEEDED:
        raise ApiError(409, "revision_not_ready", f"The takes are not drawn yet ({view.status}).")
    if body.take > revision.takes:
        raise ApiError(422, "invalid_take", f"This pickup has takes 1-{revision.takes}.", "take")
    if _pick_of(services, parent.id, revision_id) is not None:
        raise ApiError(409, "already_picked", "A take of this pickup was already picked.")
    pick = revision.model_copy(update={"pick_of": revision_id, "take": body.take})
    return _queue(services, tenant, JobCreate.model_validate_json(_spec_json(services, revision_id)), pick, 0)


def revision_view(services: Services, tenant: str, parent: JobView, revision_id: str, *, base_url: str) -> RevisionView:
    revision, view = _revision(services, tenant, parent, revision_id)
    linked = mint_view(services, view, base_url=base_url)
    stored = view.stored_result
    links = services.links
    takes = [
        TakeView(
            take=take,
            seed=take_seed(revision.seed, take),
            audio=links.file(stored.takes[take - 1], base_url=base_url) if len(stored.takes) >= take else None,
        )
        for take in range(1, revision.takes + 1)
    ]
    status, error = linked.status, linked.error
    picked = 1 if revision.takes == 1 else None
    pick_id = _pick_of(services, parent.id, revision_id)
    if pick_id is not None and (pick := services.jobs.view(pick_id)) is not None:
        picked = (services.jobs.revision(pick_id) or {}).get("take")
        status, error = pick.status, pick.error
    published = next((v for v in parent.stored_versions if v.revision == revision_id), None)
    plan = services.units.plan(revision_id) or {}
    return RevisionView(
        id=revision_id,
        job_id=parent.id,
        status=status,
        takes=takes,
        covered_chunks=len(plan.get("covered", [])) or sum(len(item.chunks) for item in revision.covered),
        picked=picked,
        version=published.version if published else None,
        warnings=published.warnings if published else list(plan.get("warnings", [])),
        error=error,
    )


def revision_ids(services: Services, parent: JobView) -> list[str]:
    """The job's pickups, oldest first (pick jobs are part of their pickup, not listed)."""
    out = []
    for child in services.jobs.revisions(parent.id):
        record = services.jobs.revision(child)
        if record is not None and record.get("pick_of") is None:
            out.append(child)
    return out


def _revision(services: Services, tenant: str, parent: JobView, revision_id: str) -> tuple[RevisionRecord, JobView]:
    raw = services.jobs.revision(revision_id)
    view = services.jobs.view(revision_id, tenant=tenant)
    if raw is None or view is None or raw.get("parent") != parent.id or raw.get("pick_of") is not None:
        raise ApiError(404, "not_found", f"No revision {revision_id!r} of job {parent.id}.")
    return RevisionRecord.model_validate(raw), view


def _pick_of(services: Services, parent_id: str, revision_id: str) -> str | None:
    for child in services.jobs.revisions(parent_id):
        record = services.jobs.revision(child)
        if record is not None and record.get("pick_of") == revision_id:
            return child
    return None


def _spec_json(services: Services, job_id: str) -> str:
    spec = services.jobs.spec(job_id)
    if spec is None:
        raise ApiError(404, "not_found", f"No revision {job_id!r}.")
    return spec.model_dump_json()


def _queue(services: Services, tenant: str, spec: JobCreate, revision: RevisionRecord, chars: int) -> str:
    """Reserve the characters drawn again, store and enqueue the pickup job; undone on failure."""
    reservation = services.usage.reserve(tenant, chars, services.settings.character_quota(tenant))
    if not reservation.accepted:
        raise ApiError(429, "quota_exceeded", f"This pickup draws {chars} characters; the monthly quota is used up.")
    digest = hashlib.sha256(revision.model_dump_json().encode()).hexdigest()
    try:
        job_id, _ = services.jobs.create(tenant, spec, body_hash=digest, revision=revision.model_dump(mode="json"))
    except Exception:
        services.usage.release(reservation)
        raise
    try:
        services.enqueue_job(job_id)
    except Exception as exc:
        services.jobs.delete(job_id)
        services.usage.release(reservation)
        raise ApiError(503, "queue_unavailable", "The job queue is unreachable; nothing was stored.") from exc
    services.usage.record_submission(tenant, chars)
    return job_id
