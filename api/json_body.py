"""JSON bodies parsed within limits: what `json.loads` accepts but the service must not.

Python's parser takes nesting until the interpreter's recursion limit (then RecursionError), integers
up to 4,300 digits (then ValueError), `NaN`/`Infinity` and overflowing floats (values no JSON encoder
may write back) and `"\\ud800"` escapes, lone surrogates that fail much later when the text is
encoded. Each is a 400 `invalid_json` here, naming the field (a dotted path, as validation errors do).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from api.errors import ApiError

MAX_DEPTH = 32
"""Most levels of nested arrays and objects in a body (a job needs 4: body, inputs, input, its fields)."""
MAX_INT_DIGITS = 100
"""Most digits of an integer literal; the models bound each number much tighter."""

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_PLAIN = frozenset({int, float, bool, type(None)})
_PLAIN_AND_TEXT = _PLAIN | {str}
_CONTAINERS = frozenset({dict, list})
# Tokens that matter for the path to the deepest point: a key (string then colon), a string, brackets, commas.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"\s*:|"(?:[^"\\]|\\.)*"|[\[\]{},]')


class _Refused:
    """A number the parser met that the body may not hold; reported with its field once the path is known."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_int(text: str) -> int | _Refused:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return _Refused(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float | _Refused:
    value = float(text)
    shown = text if len(text) <= 24 else text[:24] + "..."
    return value if math.isfinite(value) else _Refused(f"the number {shown} is beyond the range of a double")


def _parse_constant(text: str) -> _Refused:
    return _Refused(f"{text} is not a JSON number")


def _field(path: list[str | int]) -> str | None:
    return ".".join(str(part) for part in path) or None


def _refuse(message: str, path: list[str | int]) -> ApiError:
    field = _field(path)
    return ApiError(400, "invalid_json", f"{field}: {message}" if field else f"The body: {message}", field)


def loads(text: str) -> Any:
    """`text` as JSON, or the 400 naming the first field beyond the limits."""
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except RecursionError as exc:
        raise _refuse(f"nested deeper than {MAX_DEPTH} levels", _deepest_path(text)) from exc
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc.msg} at line {exc.lineno}.") from exc
    # A lone surrogate can only come from a \u escape (the UTF-8 text itself cannot hold one): without
    # such an escape the texts need no look.
    _check(value, plain=_PLAIN_AND_TEXT if not _SURROGATE_ESCAPE.search(text) else _PLAIN)
    return value


def _check(root: Any, *, plain: frozenset[type]) -> None:
    """Walks the parsed body, iteratively (its depth is what is being checked), looking closer only at
    containers, texts and refused numbers: numbers, booleans and nulls, most of a large body, are passed
    over by their type alone (and so are texts, when `plain` holds `str`)."""
    _check_leaf(root, [])
    keys = str not in plain
    pending: list[tuple[Any, list[str | int]]] = [(root, [])] if type(root) in _CONTAINERS else []
    while pending:
        container, path = pending.pop()
        if len(path) >= MAX_DEPTH:
            raise _refuse(f"nested deeper than {MAX_DEPTH} levels", path)
        items = enumerate(container) if type(container) is list else container.items()
        for key, item in items:
            kind = type(item)
            if kind in plain:
                pass
            elif kind in _CONTAINERS:
                pending.append((item, [*path, key]))
            else:
                _check_leaf(item, path, key)
            if keys and type(key) is str and _SURROGATE.search(key):
                raise _refuse("a key holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text", path)


def _check_leaf(value: Any, path: list[str | int], *key: str | int) -> None:
    if isinstance(value, _Refused):
        raise _refuse(value.reason, [*path, *key])
    if isinstance(value, str) and _SURROGATE.search(value):
        raise _refuse("the text holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text", [*path, *key])


def _deepest_path(text: str) -> list[str | int]:
    """The path to the first point nested deeper than MAX_DEPTH, read from the tokens (the body was too
    deep for the parser, so there is no parsed value to walk); keys are shown as written."""
    path: list[str | int] = []
    containers: list[str] = []
    key: str | None = None
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            if containers and containers[-1] == "{":
                path.append(key if key is not None else "?")
            if len(containers) >= MAX_DEPTH:
                return path
            containers.append(token)
            if token == "[":
                path.append(0)  # the index of the element being read
            key = None
        elif token in ("]", "}"):
            if not containers:  # not JSON after all; the parser stopped before it could tell
                break
            if containers.pop() == "[":
                path.pop()
            if containers and containers[-1] == "{":
                path.pop()
        elif token == ",":
            if containers and containers[-1] == "[":
                index = path.pop()
                path.append(int(index) + 1)
        elif token.endswith(":") and containers and containers[-1] == "{":
            key = token.rstrip(":").rstrip()[1:-1]
    return path
