"""`/v1/jobs/{id}/revisions`: pickups of a succeeded job (`api.pickups`, `shared.revisions`)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from api import pickups
from api.context import link_base_url, services
from api.errors import validate_body
from api.submission import known_voices, parse_json_body
from shared.revisions import PickBody, RevisionCreate, RevisionList

bp = Blueprint("revisions", __name__, url_prefix="/v1/jobs")


def _answer(job_id: str, revision_id: str, status: int) -> ResponseReturnValue:
    found = services()
    parent = pickups.parent_job(found, g.tenant, job_id)
    view = pickups.revision_view(found, g.tenant, parent, revision_id, base_url=link_base_url())
    response = jsonify(view.model_dump(mode="json"))
    response.status_code = status
    response.headers["Location"] = f"/v1/jobs/{job_id}/revisions/{revision_id}"
    return response


@bp.post("/<job_id>/revisions")
def create_revision(job_id: str) -> ResponseReturnValue:
    found = services()
    parent = pickups.parent_job(found, g.tenant, job_id)
    body = validate_body(RevisionCreate, parse_json_body(request.get_data(cache=False), request.content_type))
    revision_id = pickups.create_revision(found, g.tenant, parent, body, known_voices(found, g.tenant))
    return _answer(job_id, revision_id, 202)


@bp.get("/<job_id>/revisions")
def list_revisions(job_id: str) -> ResponseReturnValue:
    found = services()
    parent = pickups.parent_job(found, g.tenant, job_id)
    base_url = link_base_url()
    views = [
        pickups.revision_view(found, g.tenant, parent, rev, base_url=base_url)
        for rev in pickups.revision_ids(found, parent)
    ]
    return jsonify(RevisionList(data=views).model_dump(mode="json"))


@bp.get("/<job_id>/revisions/<revision_id>")
def get_revision(job_id: str, revision_id: str) -> ResponseReturnValue:
    return _answer(job_id, revision_id, 200)


@bp.post("/<job_id>/revisions/<revision_id>/pick")
def pick_take(job_id: str, revision_id: str) -> ResponseReturnValue:
    found = services()
    parent = pickups.parent_job(found, g.tenant, job_id)
    body = validate_body(PickBody, parse_json_body(request.get_data(cache=False), request.content_type))
    pickups.pick_take(found, g.tenant, parent, revision_id, body)
    return _answer(job_id, revision_id, 202)
