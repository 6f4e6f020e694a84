"""`GET /v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD`: a tenant's usage per UTC day, totals and its quota."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from api import params
from api.context import services
from api.errors import ApiError
from shared.usage import MAX_RANGE_DAYS

bp = Blueprint("usage", __name__, url_prefix="/v1/usage")


def _day(name: str, default: date) -> date:
    value = request.args.get(name)
    if value is None:
        return default
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad(name)
    except ValueError:
        return _bad(name)


def _bad(name: str) -> date:
    raise ApiError(400, "invalid_date", f"{name} must be a date as YYYY-MM-DD (UTC).", name)


@bp.get("")
@params.accepts("from", "to")
def usage() -> ResponseReturnValue:
    """Default: the current UTC month up to today."""
    found = services()
    today = datetime.now(UTC).date()
    first = _day("from", today.replace(day=1))
    last = _day("to", today)
    if last < first:
        raise ApiError(400, "invalid_date", "to is before from.", "to")
    if last - first >= timedelta(days=MAX_RANGE_DAYS):
        raise ApiError(400, "invalid_date", f"The range may span at most {MAX_RANGE_DAYS} days.", "to")
    report = found.usage.report(g.tenant, first, last, found.settings.character_quota(g.tenant))
    return jsonify(report.model_dump(mode="json", by_alias=True))
