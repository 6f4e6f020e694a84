"""The HTTP API: validates, authenticates, stores job records and enqueues by task name.

Never imports torch, transformers, NeMo or `worker`: the image stays small and starts in a second.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, g, request
from flask_limiter import Limiter

from api import auth, errors
from api.routes import health, jobs, voices
from shared.queue import SYNTHESIZE_TASK, make_celery
from shared.settings import Settings, get_settings
from shared.storage import Storage, storage_from_settings
from shared.store import JobStore


@dataclass
class ApiContext:
    settings: Settings
    store: JobStore
    storage: Storage
    keys: list[tuple[str, str]]
    enqueue: object


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False

    store = JobStore.from_settings(settings)
    celery = make_celery(settings, "narrate-api")

    def enqueue(job_id: str) -> None:
        celery.send_task(SYNTHESIZE_TASK, args=[job_id], queue=settings.queue_name)

    ctx = ApiContext(settings, store, storage_from_settings(settings), auth.parse_keys(settings), enqueue)
    app.extensions["narrate"] = ctx
    errors.register(app)

    @app.before_request
    def _authenticate() -> None:
        if request.path.startswith("/v1/"):
            auth.authenticate(ctx.keys)

    limiter = Limiter(
        key_func=lambda: getattr(g, "tenant", None) or request.remote_addr or "anonymous",
        app=app,
        # Writes per route and key; status polling only counts against the overall per-key limit.
        default_limits=[settings.rate_limit],
        default_limits_exempt_when=lambda: request.method in ("GET", "HEAD"),
        application_limits=[settings.read_rate_limit],
        storage_uri=settings.redis_url,
        key_prefix=f"{settings.key_prefix}:ratelimit",
        strategy="moving-window",
    )
    limiter.exempt(health.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(jobs.bp)
    voices.register(app, limiter=limiter, celery=celery)
    return app
