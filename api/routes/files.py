"""`GET /v1/files/{token}`: downloads of the file backend, through links minted by `shared.downloads`.

The signed token is the permission (no API key: a browser's `<audio>` element sends none), so this
blueprint is exempt from key authentication and from the per-key rate limits. Range requests (206, 416)
and conditional requests come from werkzeug's `send_file(conditional=True)`, so players can seek.
"""

from __future__ import annotations

from flask import Blueprint, make_response, send_file
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from api.context import services
from api.errors import ApiError
from shared.downloads import FILES_ROUTE, LinkExpired, LinkInvalid
from shared.storage import LocalStorage

bp = Blueprint("files", __name__, url_prefix=FILES_ROUTE.rstrip("/"))


@bp.get("/<token>")
def download(token: str) -> ResponseReturnValue:
    found = services()
    try:
        grant = found.links.open(token)
    except LinkExpired as exc:
        message = "This download link has expired; read the job again for a fresh one."
        raise ApiError(403, "link_expired", message) from exc
    except LinkInvalid as exc:
        raise ApiError(404, "not_found", "No such file.") from exc
    storage = found.storage
    path = storage.path_for(grant.key) if isinstance(storage, LocalStorage) else None
    if path is None or not path.is_file():  # deleted, expired by the sweep, or another backend's link
        raise ApiError(404, "not_found", "No such file.")
    try:
        response = send_file(
            path, mimetype=grant.content_type, as_attachment=True, download_name=grant.filename, conditional=True
        )
    except RequestedRangeNotSatisfiable as exc:
        refused = make_response(
            ApiError(416, "range_not_satisfiable", "The requested byte range is outside the file.").response()
        )
        refused.headers["Content-Range"] = f"bytes */{exc.length}"
        return refused
    response.headers["Cache-Control"] = "private"  # the token is a credential: not for shared caches
    return response
