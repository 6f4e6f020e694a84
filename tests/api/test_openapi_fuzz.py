"""A bounded fuzz run of the real app (in process, real Redis) from its own OpenAPI document.

schemathesis generates requests for every documented operation, from the schemas (positive) and
against them (negative), and for the operations on one record also with the path of a real job or
voice; it sends them with the API key and checks every answer: never a 5xx; status, content type,
headers and body as the document says; negative cases refused. The run is derandomized (the same
cases every run) and bounded (EXAMPLES); every failure is collected, not just the first, and the
figures are printed (`pytest -s`) and written to a file when asked (NARRATE_TEST_FUZZ_RESULTS=path,
as for bench/results/fuzz_api.json).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

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
from api.context import services_of
from api.openapi import openapi_document
from shared.jobs import JobCreate
from shared.lexicon_store import LexiconCreate
from shared.revisions import RevisionRecord
from shared.settings import DEV_TENANT
from shared.text.lexicon import LexiconEntry
from shared.webhook_store import WebhookCreate
from tests.conftest import AUTH, ServiceEnv

EXAMPLES = {GenerationMode.POSITIVE: 80, GenerationMode.NEGATIVE: 40}
"""Cases per operation and mode (at most: hypothesis stops early where it runs out of distinct cases)."""
EXISTING_EXAMPLES = 40
"""Positive cases per operation on one record when its path names an existing job or voice."""
NEEDS_A_WORKER = {("post", "/v1/audio/speech")}
"""Operations whose valid requests wait for a worker's audio (none runs here): only their negative cases
are fuzzed; tests/api/test_speech.py sends valid ones to the real stack."""
KNOWN_VALID = {
    ("POST", "/v1/jobs"): [
        {"inputs": [{"text": "Hello there."}]},
        {"inputs": [{"segments": [{"speaker": "Ana", "text": "Hi."}, {"speaker": "Bo", "text": "Hello."}]}],
         "voices": {"Ana": "en_us", "Bo": "default"}, "concatenate": False},
        {"inputs": [{"id": "l1", "text": "Halt!", "target_seconds": 1.5}, {"id": "l2", "text": "<speak>Go.</speak>",
                     "text_format": "ssml"}], "concatenate": False, "format": "ogg", "language": "en"},
    ],
    ("POST", "/v1/estimate"): [{"inputs": [{"text": "Hello there."}]}],
}  # fmt: skip
"""Bodies of the operations whose valid requests the generator seldom hits (every optional field of a job
has rules that span fields: a dialogue's speakers must be cast, a voice mix must name real voices): sent
as well, through the same checks, so that their success answers are held against the document too."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]  # fmt: skip


def _run_operation(
    operation: Any, mode: GenerationMode, figures: dict[str, Any], *, existing: dict[str, str] | None = None
) -> None:
    """Up to EXAMPLES[mode] cases of one operation; with `existing`, its path names a real record."""
    label = f"{operation.method.upper()} {operation.path} ({mode.value}{', existing' if existing else ''})"
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @settings(
        max_examples=EXISTING_EXAMPLES if existing else EXAMPLES[mode], derandomize=True, database=None, deadline=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=existing))
    def run(case: Case) -> None:
        response = case.call(headers=AUTH)
        figures["cases"] += 1
        figures["statuses"][str(response.status_code)] += 1
        figures["by_operation"][f"{label} {response.status_code}"] += 1
        if response.status_code >= 500:
            figures["server_errors"] += 1
        try:
            case.validate_response(response, checks=checks, headers=AUTH)
        except (AssertionError, FailureGroup) as exc:  # one check failed, or several
            figures["violations"].append(f"{label}: {response.status_code}: {str(exc)[:600]}")

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        figures["not_negatable"].append(label)  # nothing in the operation to send wrong (GET /healthz)


def _existing_records(app: Any) -> dict[str, str]:
    """A queued job and a ready voice of the key's tenant, so that the operations on one record also
    answer with it (and their 200s are held against the document), not only 404."""
    job = app.test_client().post("/v1/jobs", json={"inputs": [{"text": "Hello there."}]}, headers=AUTH)
    voices = services_of(app).voices
    voice_id = voices.new_id()
    consent = {"by": "Jane Doe", "at": "2026-01-15T10:00:00+00:00", "recorded_at": "2026-01-15T10:00:00+00:00"}
    voices.create(voice_id, DEV_TENANT, name="Jane", description=None, language="en_us", consent=consent,
                  clips=[{"filename": "a.wav", "bytes": 1000, "duration_seconds": 5.0}], limit=10)  # fmt: skip
    endpoint = services_of(app).webhooks.create(
        DEV_TENANT, WebhookCreate(url="https://hooks.example.com/narrate"), limit=10
    )
    lexicon = services_of(app).lexicons.create(
        DEV_TENANT, LexiconCreate(name="Cast", entries=[LexiconEntry(match="Nguyen", respelling="win")]), limit=10
    )
    # A download link of a real stored file, so the file route answers 200/206/416 as well as 404.
    found = services_of(app)
    key = f"results/{DEV_TENANT}/{job.get_json()['id']}/line.mp3"
    found.storage.put_bytes(key, b"ID3" + bytes(2000), "audio/mpeg")
    url, _ = found.links.link(key, "line.mp3", base_url="")
    # A pickup of that job, stored as the API stores one, so the revision routes answer with it too.
    pickup = RevisionRecord(parent=job.get_json()["id"], base_version=1, base_render=key, covered=[], seed=0, takes=2)
    revision_id, _ = found.jobs.create(
        DEV_TENANT, JobCreate(inputs=[{"text": "Hello there."}]), body_hash="fuzz", revision=pickup.model_dump()
    )
    return {
        "job_id": job.get_json()["id"], "voice_id": voice_id, "endpoint_id": endpoint.id,
        "token": url.rsplit("/", 1)[-1], "lexicon_id": lexicon.id, "revision_id": revision_id,
    }  # fmt: skip


def test_fuzzing_the_documented_api_finds_no_5xx_and_no_schema_violation(service_env: ServiceEnv) -> None:
    limit = "100000 per minute"  # the fuzzer's pace is not what the rate limits are for
    service_env.extra.update(
        {"NARRATE_RATE_LIMIT": limit, "NARRATE_READ_RATE_LIMIT": limit, "NARRATE_VOICE_RATE_LIMIT": limit,
             "NARRATE_AUTH_FAILURE_LIMIT": limit,  # its negative cases send bad keys on purpose
         # An engine that clones, so that uploads reach the form and audio checks instead of a 409.
         "NARRATE_ENGINE": "kanitts2"}
    )  # fmt: skip
    app = create_app(service_env.settings())
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    existing = _existing_records(app)
    figures: dict[str, Any] = {"operations": 0, "cases": 0, "server_errors": 0, "statuses": Counter(), "violations": [],
               "not_negatable": [], "by_operation": Counter()}  # fmt: skip
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        figures["operations"] += 1
        for mode in EXAMPLES:
            if mode is GenerationMode.POSITIVE and (operation.method, operation.path) in NEEDS_A_WORKER:
                continue
            _run_operation(operation, mode, figures)
        for body in KNOWN_VALID.get((operation.method.upper(), operation.path), []):
            case = operation.Case(body=body, media_type="application/json")
            response = case.call(headers=AUTH)
            figures["cases"] += 1
            figures["statuses"][str(response.status_code)] += 1
            label = f"{operation.method.upper()} {operation.path} (known valid)"
            figures["by_operation"][f"{label} {response.status_code}"] += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=AUTH)
            except (AssertionError, FailureGroup) as exc:
                figures["violations"].append(f"{label}: {response.status_code}: {str(exc)[:600]}")
            if response.status_code >= 300:
                figures["violations"].append(f"{label}: {response.status_code}: {response.text[:300]}")
        names = {p.name for p in operation.path_parameters}
        if names:
            _run_operation(operation, GenerationMode.POSITIVE, figures, existing={n: existing[n] for n in names})
    figures["seconds"] = round(time.monotonic() - started, 1)
    figures["examples_per_operation"] = {
        **{mode.value: n for mode, n in EXAMPLES.items()},
        "existing": EXISTING_EXAMPLES,
    }
    figures["violation_count"] = len(figures["violations"])
    summary = json.dumps(figures, indent=2, sort_keys=True)
    print(summary)
    if target := os.environ.get("NARRATE_TEST_FUZZ_RESULTS"):
        Path(target).write_text(summary + "\n")
    assert figures["operations"] >= 10 and figures["cases"] >= 10 * sum(EXAMPLES.values()) // 2
    for status in ("200", "202", "204", "400", "404", "422"):  # the run reached the answers that matter
        assert figures["statuses"][status], summary
    assert figures["server_errors"] == 0, summary
    assert figures["violations"] == [], summary


def test_the_fuzzer_reaches_every_documented_operation() -> None:
    document = openapi_document()
    schema = schemathesis.openapi.from_dict(document)
    reached = {(op.ok().method.lower(), op.ok().path) for op in schema.get_all_operations()}
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert reached == documented
