"""The one typed way a request handler reaches the process's services (stores, storage, queues)."""

from __future__ import annotations

from flask import Flask, current_app

from shared.services import Services

_KEY = "narrate"


def attach(app: Flask, services: Services) -> None:
    app.extensions[_KEY] = services


def services_of(app: Flask) -> Services:
    return app.extensions[_KEY]


def services() -> Services:
    """The services of the app handling the current request."""
    return services_of(current_app)
