"""The web page at `/` and the request metrics, through the real Flask app (in process)."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY

from tests.conftest import AUTH


def test_the_page_needs_no_key_and_loads_only_from_the_api(api_client):
    page = api_client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    html = page.get_data(as_text=True)
    loaded = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert loaded and all(url.startswith("/static/") or url == "data:," for url in loaded), loaded
    for url in loaded:
        if url.startswith("/static/"):
            assert api_client.get(url).status_code == 200, url
    assert api_client.get("/v1/jobs").status_code == 401  # the API behind it still wants the key


def test_every_form_field_of_the_page_has_a_label(api_client):
    html = api_client.get("/").get_data(as_text=True)
    fields = set(re.findall(r'<(?:input|select|textarea)\b[^>]*\bid="([^"]+)"', html))
    labelled = set(re.findall(r'<label\b[^>]*\bfor="([^"]+)"', html))
    assert fields and fields <= labelled, fields - labelled


def answers(route: str, status: int, method: str = "GET") -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("narrate_http_request_duration_seconds_count", labels) or 0.0


def test_answers_are_counted_by_route_template_and_status(api_client):
    before = {
        "missing": answers("/v1/jobs/<job_id>", 404),
        "no_key": answers("/v1/jobs", 401),
        "unmatched": answers("unmatched", 404),
        "page": answers("/", 200),
    }
    assert api_client.get("/v1/jobs/job_nothing_here", headers=AUTH).status_code == 404
    assert api_client.get("/v1/jobs").status_code == 401
    assert api_client.get("/no/such/route").status_code == 404
    assert api_client.get("/").status_code == 200
    assert answers("/v1/jobs/<job_id>", 404) == before["missing"] + 1  # the template, never the id
    assert answers("/v1/jobs", 401) == before["no_key"] + 1  # refused before the view: timed too
    assert answers("unmatched", 404) == before["unmatched"] + 1
    assert answers("/", 200) == before["page"] + 1
