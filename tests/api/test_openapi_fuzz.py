"""A bounded fuzz run of the real app (in process, real Redis) from its own OpenAPI document.

schemathesis generates requests for every documented operation, from the schemas (positive) and
against them (negative), sends them with the API key, and checks every answer: never a 5xx, and
status, content type, headers and body as the document says. The run is derandomized (the same cases
every run) and bounded by EXAMPLES per operation and mode; every failure is collected, not just the
first, and the figures are printed (`pytest -s`) and written to bench/results/ when asked
(NARRATE_TEST_FUZZ_RESULTS=path).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from api import create_app
from tests.conftest import AUTH, ServiceEnv

EXAMPLES = {GenerationMode.POSITIVE: 100, GenerationMode.NEGATIVE: 50}
"""Cases per operation and mode (at most: hypothesis stops early where it runs out of distinct cases)."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]  # fmt: skip


def _run_operation(operation: Any, mode: GenerationMode, figures: dict[str, Any]) -> None:
    label = f"{operation.method.upper()} {operation.path} ({mode.value})"

    @settings(
        max_examples=EXAMPLES[mode], derandomize=True, database=None, deadline=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        response = case.call(headers=AUTH)
        figures["cases"] += 1
        figures["statuses"][str(response.status_code)] += 1
        figures["by_operation"][f"{label} {response.status_code}"] += 1
        if response.status_code >= 500:
            figures["server_errors"] += 1
        try:
            case.validate_response(
                response,
                checks=CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else []),
                headers=AUTH,
            )
        except (AssertionError, FailureGroup) as exc:  # one check failed, or several
            figures["violations"].append(f"{label}: {response.status_code}: {str(exc)[:600]}")

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        figures["not_negatable"].append(label)  # nothing in the operation to send wrong (GET /healthz)


def test_fuzzing_the_documented_api_finds_no_5xx_and_no_schema_violation(service_env: ServiceEnv) -> None:
    limit = "100000 per minute"  # the fuzzer's pace is not what the rate limits are for
    service_env.extra.update(
        {"NARRATE_RATE_LIMIT": limit, "NARRATE_READ_RATE_LIMIT": limit, "NARRATE_VOICE_RATE_LIMIT": limit,
         # An engine that clones, so that uploads reach the form and audio checks instead of a 409.
         "NARRATE_ENGINE": "kanitts2"}
    )  # fmt: skip
    app = create_app(service_env.settings())
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    figures: dict[str, Any] = {"operations": 0, "cases": 0, "server_errors": 0, "statuses": Counter(), "violations": [],
               "not_negatable": [], "by_operation": Counter()}  # fmt: skip
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        figures["operations"] += 1
        for mode in EXAMPLES:
            _run_operation(operation, mode, figures)
    figures["seconds"] = round(time.monotonic() - started, 1)
    figures["examples_per_operation"] = {mode.value: n for mode, n in EXAMPLES.items()}
    figures["violation_count"] = len(figures["violations"])
    summary = json.dumps(figures, indent=2, sort_keys=True)
    print(summary)
    if target := os.environ.get("NARRATE_TEST_FUZZ_RESULTS"):
        Path(target).write_text(summary + "\n")
    assert figures["operations"] >= 10 and figures["cases"] >= 10 * sum(EXAMPLES.values()) // 2
    assert figures["server_errors"] == 0, summary
    assert figures["violations"] == [], summary


@pytest.mark.parametrize("mode", list(EXAMPLES))
def test_the_fuzzer_reaches_every_documented_operation(mode: GenerationMode) -> None:
    from api.openapi import openapi_document

    document = openapi_document()
    schema = schemathesis.openapi.from_dict(document)
    reached = {(op.ok().method.lower(), op.ok().path) for op in schema.get_all_operations()}
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert reached == documented
