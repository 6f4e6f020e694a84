"""The web page at `/`: plain HTML, CSS and JavaScript from `api/static/` (Flask's static route).

The page itself needs no key (it asks for one) and every request it makes to `/v1` carries it. Everything
it loads comes from the API; only the audio elements play from the result links, which on S3 are on the
storage's own host, hence `media-src` beyond `'self'`.
"""

from __future__ import annotations

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue

bp = Blueprint("pages", __name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "media-src 'self' http: https:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.get("/")
def index() -> ResponseReturnValue:
    response = current_app.send_static_file("index.html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
