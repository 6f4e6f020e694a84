"""The one typed way a request handler reaches the process's services (stores, storage, queues)."""

from __future__ import annotations

from flask import Flask, current_app, request

from shared.services import Services

_KEY = "narrate"


def attach(app: Flask, services: Services) -> None:
    app.extensions[_KEY] = services


def services_of(app: Flask) -> Services:
    return app.extensions[_KEY]


def services() -> Services:
    """The services of the app handling the current request."""
    return services_of(current_app)


def link_base_url() -> str:
    """Where clients reach this API, for the file backend's download links: `NARRATE_PUBLIC_URL`, or the
    address the current request came to."""
    return services().settings.public_url or request.url_root.rstrip("/")
