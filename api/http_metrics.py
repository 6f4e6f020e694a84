"""Every answer of the API timed and counted by route template and status code (the dashboard's latency
and 4xx/5xx panels). The route is the url map's rule, never the raw path: ids would make the labels
unbounded."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from shared import metrics


def _start() -> None:
    g.request_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.get("request_started")
    if started is not None:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.HTTP_REQUEST_DURATION.labels(
            method=request.method, route=route, status=str(response.status_code)
        ).observe(time.perf_counter() - started)
    return response


def register(app: Flask) -> None:
    """Call first, so that the clock starts before authentication (a 401 is answered and timed too)."""
    app.before_request(_start)
    app.after_request(_observe)
