"""One error shape for every failure: `{"error": {"code", "message", "field"}}`."""

from __future__ import annotations

from typing import Any, TypeVar

import redis
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def response(self) -> ResponseReturnValue:
        body: dict[str, str] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return jsonify(error=body), self.status


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

    @app.errorhandler(redis.RedisError)
    def _store_down(exc: redis.RedisError) -> ResponseReturnValue:
        return ApiError(
            503, "store_unavailable", "The job store (Redis) is unreachable; nothing was changed."
        ).response()

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> ResponseReturnValue:
        code = {
            404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 429: "rate_limited",
        }.get(exc.code or 500, "http_error")  # fmt: skip
        message = exc.description or exc.name
        if exc.code == 413:
            message = "The request body is larger than the configured maximum."
        return ApiError(exc.code or 500, code, message).response()
