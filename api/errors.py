"""One error shape for every failure: `{"error": {"code", "message", "field"}}`."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import redis
from flask import Flask, Response, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)

STORE_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)
"""Redis failures that mean "not reachable now" (BusyLoadingError and AuthenticationError are kinds of
ConnectionError): a 503 worth retrying. Any other RedisError (a ResponseError, say) is a bug: a 500."""

_HTTP_CODES = {
    400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
    414: "uri_too_long", 415: "unsupported_media_type", 429: "rate_limited", 431: "headers_too_large",
    500: "internal_error",
}  # fmt: skip


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, str] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        response = jsonify(error=body)
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


def from_validation(exc: ValidationError) -> ApiError:
    """The first problem of a pydantic error, with its location as a dotted field path."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    return ApiError(422, "invalid_request", f"{field}: {message}" if field else message, field)


def validate_body(model: type[M], payload: Any) -> M:
    """A parsed JSON body as `model`, or the 422 naming the first field at fault."""
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_request", "The body must be a JSON object.")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise from_validation(exc) from exc


def register(app: Flask) -> None:
    app.register_error_handler(ApiError, lambda exc: exc.response())

    def _store_down(exc: redis.RedisError) -> ResponseReturnValue:
        return ApiError(
            503, "store_unavailable", "The job store (Redis) is unreachable; nothing was changed."
        ).response()

    for kind in STORE_UNREACHABLE:
        app.register_error_handler(kind, _store_down)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = "The request body is larger than the configured maximum."
        response = ApiError(status, _HTTP_CODES.get(status, "http_error"), message).response()
        # Keep what the exception says in its headers (405: Allow; 429: Retry-After), not its HTML type.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        """Anything else (a RedisError other than unreachable among them): logged, and a 500 that tells
        the client nothing of the internals."""
        log.exception("unhandled error")
        return ApiError(
            500, "internal_error", "The server met an unexpected error; nothing may have changed."
        ).response()
