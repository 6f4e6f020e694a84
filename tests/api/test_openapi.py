"""The OpenAPI document says what the app does: its paths and methods are the URL map's, and every
answer the app gives when Redis is down, a rate limit is spent or a query value is bad is documented
for that operation, in the documented error shape; the models' enums reach the document."""

from __future__ import annotations

import re
import types
import uuid
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from pydantic import BaseModel

from api import create_app
from api.openapi import DOCUMENTED_MODELS, ErrorResponse, openapi_document
from api.params import declared
from shared.jobs import JobCreate, JobStatus
from tests.conftest import AUTH, ServiceEnv

METHODS = ("get", "post", "put", "patch", "delete")
DOCUMENT = openapi_document()
OPERATIONS = [(path, method) for path, item in DOCUMENT["paths"].items() for method in METHODS if method in item]


def _app(env: ServiceEnv, **settings: str) -> Flask:
    env.extra.update({f"NARRATE_{name.upper()}": value for name, value in settings.items()})
    app = create_app(env.settings())
    app.testing = True
    return app


def _call(client: FlaskClient, path: str, method: str) -> Any:
    """One request to a documented operation: made-up ids in the path, an empty body of its kind."""
    url = re.sub(r"\{[^}]+\}", lambda _: f"x{uuid.uuid4().hex[:8]}", path)
    body: dict[str, Any] = {}
    content = DOCUMENT["paths"][path][method].get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body = {"json": {}}
    elif "multipart/form-data" in content:
        body = {"data": {"name": "probe"}, "content_type": "multipart/form-data"}
    return client.open(url, method=method.upper(), headers=AUTH, **body)


def _assert_documented(response: Any, path: str, method: str) -> None:
    documented = DOCUMENT["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, f"{method.upper()} {path} answers {response.status_code}"
    schema = documented[str(response.status_code)].get("content", {}).get("application/json", {}).get("schema", {})
    if schema.get("$ref", "").endswith("/ErrorResponse"):
        ErrorResponse.model_validate(response.get_json())  # the documented error shape


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)


def test_paths_methods_and_path_parameters_are_the_url_maps(api_client: FlaskClient) -> None:
    app: Flask = api_client.application
    routes: dict[str, set[str]] = {}
    arguments: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        routes.setdefault(path, set()).update(m.lower() for m in rule.methods or () if m not in ("HEAD", "OPTIONS"))
        arguments[path] = set(rule.arguments)
    documented = {path: {m for m in METHODS if m in item} for path, item in DOCUMENT["paths"].items()}
    assert documented == routes
    for path, method in OPERATIONS:
        parameters = DOCUMENT["paths"][path][method].get("parameters", [])
        in_path = {p["name"] for p in parameters if p["in"] == "path"}
        assert in_path == arguments[path], f"{method.upper()} {path}"
        assert all(p["required"] for p in parameters if p["in"] == "path")


def test_the_query_parameters_a_route_accepts_are_those_it_documents(api_client: FlaskClient) -> None:
    """A route declares the query parameters it reads (`api.params.accepts`); any other is a 400, so the
    document must name exactly those."""
    app: Flask = api_client.application
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        if not path.startswith("/v1/"):
            continue
        accepted = declared(app.view_functions[rule.endpoint])
        for method in (m.lower() for m in rule.methods or () if m not in ("HEAD", "OPTIONS")):
            parameters = DOCUMENT["paths"][path][method].get("parameters", [])
            assert {p["name"] for p in parameters if p["in"] == "query"} == accepted, f"{method.upper()} {path}"


FILES = "/v1/files/{token}"
"""Downloads carry a signed token instead of a key, and no per-key rate limit applies to them."""


def test_the_download_route_needs_no_key_and_documents_its_own_answers() -> None:
    operation = DOCUMENT["paths"][FILES]["get"]
    assert operation["security"] == []
    assert {"200", "206", "403", "404", "416", "503"} <= set(operation["responses"])
    assert "Range" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}


@pytest.mark.parametrize(("path", "method"), [op for op in OPERATIONS if op[0].startswith("/v1/") and op[0] != FILES])
def test_every_v1_operation_documents_key_rate_limit_and_store_errors(path: str, method: str) -> None:
    operation = DOCUMENT["paths"][path][method]
    expected = {"400", "401", "429", "503"}
    if "{" in path:
        expected.add("404")
    if "requestBody" in operation:
        # OpenAI's speech route answers an invalid field with 400, as OpenAI does, never 422.
        expected |= {"413", "415"} | (set() if path == "/v1/audio/speech" else {"422"})
    assert expected <= set(operation["responses"])
    assert "security" not in operation  # the document-wide bearer key applies


def test_with_redis_down_every_answer_is_documented(service_env: ServiceEnv, unused_tcp_port: int) -> None:
    client = _app(service_env, redis_url=f"redis://127.0.0.1:{unused_tcp_port}/0").test_client()
    for path, method in OPERATIONS:
        response = _call(client, path, method)
        _assert_documented(response, path, method)
        if path.startswith("/v1/") or path == "/readyz":
            assert response.status_code == 503, f"{method.upper()} {path}"


def test_with_the_rate_limit_spent_every_answer_is_documented(service_env: ServiceEnv) -> None:
    limit = "1 per hour"
    client = _app(service_env, rate_limit=limit, read_rate_limit=limit, voice_rate_limit=limit).test_client()
    assert client.get("/v1/jobs", headers=AUTH).status_code == 200  # spends the key's one request
    for path, method in OPERATIONS:
        response = _call(client, path, method)
        _assert_documented(response, path, method)
        if path.startswith("/v1/") and path != FILES:
            assert response.status_code == 429, f"{method.upper()} {path}"
            assert response.get_json()["error"]["code"] == "rate_limited"


def test_list_query_parameters_behave_as_documented(api_client: FlaskClient) -> None:
    parameters = {p["name"]: p["schema"] for p in DOCUMENT["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert set(parameters) == {"status", "limit", "cursor"}

    def answer(**query: str | int) -> tuple[int, str | None]:
        response = api_client.get("/v1/jobs", headers=AUTH, query_string=query)
        _assert_documented(response, "/v1/jobs", "get")
        return response.status_code, (response.get_json().get("error") or {}).get("field")

    assert set(parameters["status"]["enum"]) == {status.value for status in JobStatus}
    for value in parameters["status"]["enum"]:
        assert answer(status=value) == (200, None)
    assert answer(status="lost") == (422, "status")
    low, high = parameters["limit"]["minimum"], parameters["limit"]["maximum"]
    assert answer(limit=low) == answer(limit=high) == (200, None)
    assert answer(limit=low - 1) == answer(limit=high + 1) == answer(limit="many") == (422, "limit")
    assert answer(cursor="not-a-cursor") == (400, "cursor")


def _enum_values(annotation: Any) -> set[str] | None:
    """The values an Enum or Literal annotation allows (through Optional and containers), else None."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return {member.value for member in annotation}
    if get_origin(annotation) is Literal:
        return set(get_args(annotation))
    if get_origin(annotation) in (Union, types.UnionType, list, tuple, set, frozenset):
        found = [v for arg in get_args(annotation) if (v := _enum_values(arg)) is not None]
        return set().union(*found) if found else None
    return None


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models(arg)]


def _schema_enum(schema: dict[str, Any]) -> set[str]:
    """Every enum value a property schema allows, following $ref, anyOf/allOf/oneOf and array items."""
    if "$ref" in schema:
        return _schema_enum(DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]])
    values = set(schema.get("enum", ())) | ({schema["const"]} if "const" in schema else set())
    for key in ("anyOf", "allOf", "oneOf"):
        for part in schema.get(key, ()):
            values |= _schema_enum(part)
    if isinstance(schema.get("items"), dict):
        values |= _schema_enum(schema["items"])
    return values


def _enum_fields() -> list[tuple[str, str, set[str]]]:
    """(component, property, allowed values) for every Enum/Literal field of the documented models."""
    found, seen = [], set()
    pending = [model for model, _ in DOCUMENTED_MODELS]
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            values = _enum_values(info.annotation)
            if values is not None:
                found.append((model.__name__, info.serialization_alias or info.alias or name, values))
            pending += _models(info.annotation)
    return found


def test_the_models_enums_reach_the_document() -> None:
    fields = _enum_fields()
    assert ("JobCreate", "format") in {(model, name) for model, name, _ in fields}  # the output formats
    for model, name, values in fields:
        schema = DOCUMENT["components"]["schemas"][model]["properties"][name]
        assert {str(v) for v in _schema_enum(schema)} == {str(v) for v in values}, f"{model}.{name}"


def test_the_served_document_is_this_one_and_names_the_output_formats(api_client: FlaskClient) -> None:
    served = api_client.get("/openapi.json").get_json()
    assert served == DOCUMENT
    fmt = JobCreate.model_fields["format"].annotation
    assert _schema_enum(served["components"]["schemas"]["JobCreate"]["properties"]["format"]) == _enum_values(fmt)


def test_every_undocumented_method_is_a_405_with_allow_in_the_error_shape(api_client: FlaskClient) -> None:
    for path, item in DOCUMENT["paths"].items():
        url = re.sub(r"\{[^}]+\}", "x1", path)
        documented = {method.upper() for method in METHODS if method in item}
        for method in (m.upper() for m in METHODS if m not in item):
            response = api_client.open(url, method=method, headers=AUTH)
            assert response.status_code == 405, f"{method} {path}"
            ErrorResponse.model_validate(response.get_json())
            assert response.get_json()["error"]["code"] == "method_not_allowed"
            allowed = {m.strip() for m in response.headers["Allow"].split(",")}
            assert allowed - {"HEAD", "OPTIONS"} == documented, f"{method} {path}"
