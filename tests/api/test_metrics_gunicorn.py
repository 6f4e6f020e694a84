"""The API's metrics under several gunicorn worker processes: every scrape sees every process."""

from __future__ import annotations

import pytest
import requests

from devstack.stack import LocalStack
from tests.conftest import AUTH

pytestmark = pytest.mark.slow


def test_counters_are_merged_across_gunicorn_workers(service_env, tmp_path, unused_tcp_port):
    stack = LocalStack(
        port=unused_tcp_port, api_workers=3, worker=False, env=service_env.env(), log_dir=tmp_path, echo=False
    )
    with stack, requests.Session() as http:
        http.headers["Connection"] = "close"  # a new connection each time, so requests spread over workers
        for n in range(9):
            response = http.post(f"{stack.url}/v1/jobs", json={"inputs": [{"text": f"Line {n}."}]}, headers=AUTH)
            assert response.status_code == 202
        scrapes = [http.get(f"{stack.url}/metrics").text for _ in range(6)]
    for text in scrapes:
        assert "narrate_jobs_submitted_total 9.0" in text
        assert "narrate_queue_depth 9.0" in text
