"""The HTTP API: validates, authenticates, stores job records and enqueues by task name.

Never imports torch, transformers, NeMo or `worker`: the image stays small and starts in a second.
"""

from __future__ import annotations

from flask import Flask, Response, g, request
from flask_limiter import Limiter
from werkzeug.middleware.proxy_fix import ProxyFix

from api import auth, context, errors, http_metrics, params
from api.body_encoding import ApiRequest
from api.routes import estimate, files, health, jobs, lexicons, pages, revisions, speech, usage, voices, webhooks
from shared.downloads import FILES_ROUTE
from shared.services import Services, limits_storage
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Flask:
    """The app on `services` (built from `settings` when not given: one set per app)."""
    settings = services.settings if services else settings or get_settings()
    app = Flask(__name__)
    app.request_class = ApiRequest  # bodies may come gzip-compressed; the limit bounds them decompressed
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # pyright: ignore[reportAttributeAccessIssue] - the default provider has it
    if services is None:
        # A request waits for storage briefly: a 503 the client retries beats a gunicorn timeout.
        retry = settings.api_storage_retry_seconds
        services = Services.from_settings(settings, client_name="narrate-api", storage_retry_seconds=retry)
    context.attach(app, services)
    keys = auth.parse_keys(settings)
    failures = auth.FailureLimit(settings)
    if settings.trusted_proxies:
        # request.remote_addr: the address the trusted proxies saw, not theirs (and not a forged header).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)
    errors.register(app)
    http_metrics.register(app)  # before the key check: refused requests are timed too

    @app.before_request
    def _authenticate() -> Response | None:
        # Download links carry their own signed token (api/routes/files.py) instead of a key.
        if request.path.startswith("/v1/") and not request.path.startswith(FILES_ROUTE):
            refused = failures.refusal(request.remote_addr or "unknown")
            if refused is not None:
                return refused
            auth.authenticate(keys, failures)
        return None

    limiter = Limiter(
        key_func=lambda: getattr(g, "tenant", None) or request.remote_addr or "anonymous",
        app=app,
        # Writes per route and key; status polling only counts against the overall per-key limit.
        default_limits=[settings.rate_limit],
        default_limits_exempt_when=lambda: request.method in ("GET", "HEAD"),
        application_limits=[settings.read_rate_limit],
        storage_uri=limits_storage(settings)[0],
        storage_options=limits_storage(settings)[1],
        key_prefix=f"{settings.key_prefix}:ratelimit",
        strategy="moving-window",
    )
    params.register(app)  # after the key and the rate limit: a stranger learns nothing from the parameters
    limiter.exempt(health.bp)
    limiter.exempt(pages.bp)  # the page and its files (/static: flask-limiter never counts it) need no key
    limiter.exempt(files.bp)  # a signed link, often fetched in many ranges by a player; no key to count against
    app.register_blueprint(health.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(revisions.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(lexicons.bp)
    app.register_blueprint(usage.bp)
    app.register_blueprint(estimate.bp)
    app.register_blueprint(speech.bp)
    voices.register(app, limiter=limiter, rate_limit=settings.voice_rate_limit)
    return app
