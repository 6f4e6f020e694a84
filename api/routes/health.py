"""Liveness, readiness, metrics and the OpenAPI document: no authentication."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from api.context import services
from api.openapi import openapi_document
from shared import metrics

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    found = services()
    checks: dict[str, str] = {}
    for name, probe in (("redis", found.jobs.ping), ("storage", found.storage.check)):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503


@bp.get("/metrics")
def metrics_view() -> ResponseReturnValue:
    found = services()
    depth = metrics.QueueDepthCollector(found.jobs.queued_count)
    units = metrics.UnitsCollector(found.units.ready_counts, found.units.leased_counts)
    body, content_type = metrics.render(metrics.scrape_registry(metrics.combined(depth, units)))
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(openapi_document())
