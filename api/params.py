"""Request parameters outside the body: query parameters and the Idempotency-Key header.

Every `/v1` route takes only the query parameters it declares with `@accepts(...)` (none by default),
each at most once and never empty: `?status=a&status=b` or `?cursor=` would otherwise be read as one
of the values, or as absent, silently. A refusal is a 400 `invalid_query` naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, request

from api.errors import ApiError

F = TypeVar("F", bound=Callable[..., object])

_ATTRIBUTE = "narrate_query_parameters"

IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,200}$"
"""1-200 visible ASCII characters (no spaces): a header value that survives every proxy unchanged."""
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN.removesuffix("$") + r"\Z")


def accepts(*names: str) -> Callable[[F], F]:
    """Declares the query parameters a view reads (apply it below any wrapping decorator's)."""

    def mark(view: F) -> F:
        setattr(view, _ATTRIBUTE, frozenset(names))
        return view

    return mark


def declared(view: Callable[..., object] | None) -> frozenset[str]:
    return getattr(view, _ATTRIBUTE, frozenset())


def check_query() -> None:
    """Refuses repeated, empty and undeclared query parameters of a routed `/v1` request."""
    if request.url_rule is None or not request.path.startswith("/v1/"):
        return  # no route: the 404 or 405 comes next
    allowed = declared(current_app.view_functions.get(request.endpoint or ""))
    for name in request.args:
        values = request.args.getlist(name)
        if name not in allowed:
            known = f"; this operation takes {', '.join(sorted(allowed))}" if allowed else "; this operation takes none"
            raise ApiError(400, "invalid_query", f"Unknown query parameter {name!r}{known}.", name or None)
        if len(values) > 1:
            raise ApiError(400, "invalid_query", f"{name} is given {len(values)} times; give it once.", name)
        if not values[0]:
            raise ApiError(400, "invalid_query", f"{name} is empty; leave it out for the default.", name)


def idempotency_key() -> str | None:
    """The Idempotency-Key header, or None; a malformed one is a 400."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise ApiError(
            400, "invalid_idempotency_key", "Idempotency-Key must be 1-200 visible ASCII characters (no spaces).",
            "Idempotency-Key",
        )  # fmt: skip
    return key


def register(app: Flask) -> None:
    app.before_request(check_query)
