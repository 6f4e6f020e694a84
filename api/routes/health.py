"""Liveness, readiness, metrics and the OpenAPI document: no authentication."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from api.openapi import openapi_document
from shared import metrics

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    ctx = current_app.extensions["narrate"]
    checks: dict[str, str] = {}
    for name, probe in (("redis", ctx.store.ping), ("storage", ctx.storage.check)):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503


@bp.get("/metrics")
def metrics_view():
    ctx = current_app.extensions["narrate"]
    body, content_type = metrics.render(metrics.scrape_registry(metrics.QueueDepthCollector(ctx.store.queued_count)))
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
