"""`/v1/jobs`: submit, read, list, cancel, delete. Every job answered carries freshly minted links."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from api import params
from api.context import link_base_url, services
from api.errors import ApiError
from api.submission import (
    engine_speaks,
    engine_summary,
    known_voices,
    parse_json_body,
    submit,
    take_lexicon_snapshot,
    validate_job,
)
from shared import metrics
from shared.downloads import mint_view
from shared.jobs import JobStatus, JobView
from shared.retention import remove_job
from shared.store import InvalidCursor
from shared.webhooks import emit_job_event

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")


def _linked(view: JobView) -> JobView:
    return mint_view(services(), view, base_url=link_base_url())


def _job_json(view: JobView) -> dict[str, Any]:
    return _linked(view).model_dump(mode="json")


@bp.post("")
def create_job() -> ResponseReturnValue:
    found = services()
    payload = parse_json_body(request.get_data(cache=False), request.content_type)
    spec = validate_job(
        payload,
        found.settings,
        known_voices(found, g.tenant),
        engine_speaks(found),
        can_clone=engine_summary(found).can_clone,
    )
    spec = take_lexicon_snapshot(found.lexicons, g.tenant, spec)
    key = params.idempotency_key()
    job_id, created = submit(
        found.jobs, found.enqueue_job, g.tenant, spec, key,
        usage=found.usage, quota=found.settings.character_quota(g.tenant),
    )  # fmt: skip
    if created:
        metrics.JOBS_SUBMITTED.inc()
    view = found.jobs.view(job_id, tenant=g.tenant)
    if view is None:  # an idempotent replay of a job that has expired meanwhile
        raise ApiError(409, "idempotency_conflict", "The job of this Idempotency-Key no longer exists.")
    response = jsonify(_job_json(view))
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return response


@bp.get("/<job_id>")
def get_job(job_id: str) -> ResponseReturnValue:
    view = services().jobs.view(job_id, tenant=g.tenant)
    if view is None:
        raise ApiError(404, "not_found", f"No job {job_id!r}.")
    return jsonify(_job_json(view))


@bp.get("")
@params.accepts("status", "limit", "cursor")
def list_jobs() -> ResponseReturnValue:
    status_arg = request.args.get("status")
    try:
        status = JobStatus(status_arg) if status_arg else None
    except ValueError as exc:
        allowed = ", ".join(s.value for s in JobStatus)
        raise ApiError(422, "invalid_request", f"status must be one of {allowed}.", "status") from exc
    limit_arg = request.args.get("limit", "20")
    if not limit_arg.isascii() or not limit_arg.isdigit():  # int() would also take " 5", "+5" and "5_0"
        raise ApiError(422, "invalid_request", "limit must be an integer.", "limit")
    limit = int(limit_arg) if len(limit_arg) <= 3 else 0
    if not 1 <= limit <= 100:
        raise ApiError(422, "invalid_request", "limit must be between 1 and 100.", "limit")
    try:
        page = services().jobs.list(g.tenant, status=status, limit=limit, cursor=request.args.get("cursor"))
    except InvalidCursor as exc:
        raise ApiError(400, "invalid_cursor", "cursor is not one that next_cursor gave.", "cursor") from exc
    linked = page.model_copy(update={"data": [_linked(view) for view in page.data]})
    return jsonify(linked.model_dump(mode="json"))


@bp.delete("/<job_id>")
def delete_job(job_id: str) -> ResponseReturnValue:
    """A finished job is removed with everything it stored (204); a queued or running one is canceled."""
    found = services()
    view = found.jobs.view(job_id, tenant=g.tenant)
    if view is None:
        raise ApiError(404, "not_found", f"No job {job_id!r}.")
    if view.status.finished:
        remove_job(found, job_id, g.tenant)
        return "", 204
    return _cancel(job_id)


@bp.post("/<job_id>/cancel")
def cancel_job(job_id: str) -> ResponseReturnValue:
    if services().jobs.view(job_id, tenant=g.tenant) is None:
        raise ApiError(404, "not_found", f"No job {job_id!r}.")
    return _cancel(job_id)


def _cancel(job_id: str) -> ResponseReturnValue:
    store = services().jobs
    outcome, current = store.cancel(job_id)
    if outcome == "refused":  # also a job that ended between the caller's read and this cancel
        raise ApiError(409, "already_finished", f"The job already ended with status {current!r}.")
    if outcome == "ok" and current == JobStatus.QUEUED:
        # A running job is counted by its worker when it stops at the next chunk.
        metrics.JOBS_FINISHED.labels(status="canceled").inc()
    if outcome == "ok":  # this request made the transition, so it sends the event
        emit_job_event(services(), job_id)
    view = store.view(job_id, tenant=g.tenant)
    if outcome == "missing" or view is None:  # expired between the two reads
        raise ApiError(404, "not_found", f"No job {job_id!r}.")
    return jsonify(_job_json(view))
