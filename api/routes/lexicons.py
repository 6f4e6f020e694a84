"""`/v1/lexicons`: a tenant's pronunciation lexicons (create, list, read, replace, change, delete).

A job names lexicons in `lexicons`; their entries are copied into the job at submission, so an edit
here changes jobs submitted afterwards, never one already queued.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from api.context import services
from api.errors import ApiError, validate_body
from api.submission import parse_json_body
from shared.lexicon_store import LexiconCreate, LexiconLimitReached, LexiconList, LexiconPatch, LexiconView

bp = Blueprint("lexicons", __name__, url_prefix="/v1/lexicons")


def _not_found(lexicon_id: str) -> ApiError:
    return ApiError(404, "not_found", f"No lexicon {lexicon_id!r}.")


def _answer(view: LexiconView) -> ResponseReturnValue:
    return jsonify(view.model_dump(mode="json"))


@bp.post("")
def create_lexicon() -> ResponseReturnValue:
    found = services()
    spec = validate_body(LexiconCreate, parse_json_body(request.get_data(cache=False), request.content_type))
    try:
        view = found.lexicons.create(g.tenant, spec, limit=found.settings.lexicons_per_tenant)
    except LexiconLimitReached as exc:
        message = f"At most {exc.args[0]} lexicons per tenant; delete one first."
        raise ApiError(409, "too_many_lexicons", message) from exc
    response = jsonify(view.model_dump(mode="json"))
    response.status_code = 201
    response.headers["Location"] = f"/v1/lexicons/{view.id}"
    return response


@bp.get("")
def list_lexicons() -> ResponseReturnValue:
    return jsonify(LexiconList(data=services().lexicons.list(g.tenant)).model_dump(mode="json"))


@bp.get("/<lexicon_id>")
def get_lexicon(lexicon_id: str) -> ResponseReturnValue:
    view = services().lexicons.get(lexicon_id, tenant=g.tenant)
    if view is None:
        raise _not_found(lexicon_id)
    return _answer(view)


@bp.put("/<lexicon_id>")
def replace_lexicon(lexicon_id: str) -> ResponseReturnValue:
    spec = validate_body(LexiconCreate, parse_json_body(request.get_data(cache=False), request.content_type))
    view = services().lexicons.update(lexicon_id, tenant=g.tenant, changes=dict(spec))
    if view is None:
        raise _not_found(lexicon_id)
    return _answer(view)


@bp.patch("/<lexicon_id>")
def change_lexicon(lexicon_id: str) -> ResponseReturnValue:
    patch = validate_body(LexiconPatch, parse_json_body(request.get_data(cache=False), request.content_type))
    changes = {name: getattr(patch, name) for name in patch.model_fields_set}
    if changes.get("name", "") is None or changes.get("entries", []) is None:
        field = "name" if "name" in changes and changes["name"] is None else "entries"
        raise ApiError(422, "invalid_request", f"{field}: may not be null", field)
    view = services().lexicons.update(lexicon_id, tenant=g.tenant, changes=changes)
    if view is None:
        raise _not_found(lexicon_id)
    return _answer(view)


@bp.delete("/<lexicon_id>")
def delete_lexicon(lexicon_id: str) -> ResponseReturnValue:
    if not services().lexicons.delete(lexicon_id, tenant=g.tenant):
        raise _not_found(lexicon_id)
    return "", 204
