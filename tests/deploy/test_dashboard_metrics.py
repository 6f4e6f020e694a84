"""Every metric and label the Grafana dashboard and the alert rules query is one the running API and
worker actually export: a renamed metric or label would otherwise leave an empty panel or an alert that
can never fire, which nobody notices until the day it should have."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devstack.stack import LocalStack
from shared import metrics
from tests.conftest import AUTH, ServiceEnv, wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())

GPU_ONLY = {
    metrics.GPU_MEMORY_ALLOCATED._name,
    metrics.GPU_MEMORY_PEAK._name,
    metrics.GPU_MEMORY_TOTAL._name,
}
"""Exported only by a worker whose engine runs on a GPU (the test's worker runs Piper on the CPU);
tests/fast/worker/test_runtime.py checks the worker sets them under these names."""
TARGET_LABELS = {"job", "instance"}
"""Added by Prometheus to every scraped series."""
LE = "le"

_METRIC = re.compile(r"\b(narrate_[a-z0-9_]+|up)\b")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and alert rule."""
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            found.append((f"alert {rule['alert']}", rule["expr"]))
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def exported(redis_url: str, key_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """sample name -> label names, from the API's and the worker's /metrics after one job and one 404."""
    prefix = f"{key_prefix}-{uuid.uuid4().hex[:6]}"
    root = tmp_path_factory.mktemp("dashboard-metrics")
    worker_port = free_port()
    env = ServiceEnv(redis_url, prefix, f"{prefix}-q", f"file://{root / 'storage'}")
    env.extra["NARRATE_WORKER_METRICS_PORT"] = str(worker_port)
    with LocalStack(port=free_port(), api_workers=2, env=env.env(), log_dir=root / "logs", echo=False) as stack:
        job = requests.post(f"{stack.url}/v1/jobs", json={"inputs": [{"text": "One line."}]}, headers=AUTH, timeout=10)
        assert job.status_code == 202, job.text
        job_url = f"{stack.url}/v1/jobs/{job.json()['id']}"

        def ended() -> dict | None:
            body = requests.get(job_url, headers=AUTH, timeout=10).json()
            return body if body["status"] in ("succeeded", "failed") else None

        finished = wait_for(ended, timeout=120, message="the job to end")
        assert finished["status"] == "succeeded", finished["error"]
        assert requests.get(f"{stack.url}/v1/jobs/job_missing", headers=AUTH, timeout=10).status_code == 404
        texts = [
            requests.get(url, timeout=10).text
            for url in (f"{stack.url}/metrics", f"http://127.0.0.1:{worker_port}/metrics")
        ]
    samples: dict[str, set[str]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, set()).update(sample.labels)
    yield samples


@pytest.mark.parametrize(("where", "expr"), queries(), ids=[where for where, _ in queries()])
def test_every_queried_metric_and_label_is_exported(exported: dict[str, set[str]], where: str, expr: str) -> None:
    names = set(_METRIC.findall(expr))
    assert names, f"{where}: no metric in {expr!r}"
    labels: set[str] = set()
    for name in names - {"up"}:
        if name in GPU_ONLY:
            continue
        assert name in exported, f"{where}: {name} is not exported by the API or the worker"
        labels |= exported[name]
    if names & GPU_ONLY:
        labels.add("device")  # their only label (shared/metrics.py)
    used = {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",") if label.strip()}
    used |= set(_MATCHER.findall(expr))
    if "up" in names:
        # Prometheus's own series per target: the job label must name one of the scrape jobs.
        jobs = {job["job_name"] for job in PROMETHEUS["scrape_configs"]}
        assert set(re.findall(r'job="([^"]+)"', expr)) <= jobs, where
    unknown = used - labels - TARGET_LABELS - {LE}
    assert not unknown, f"{where}: labels {sorted(unknown)} are not on {sorted(names)}"
    if LE in used:
        assert any(name.endswith("_bucket") for name in names), where


def test_the_dashboard_has_the_panels_operators_asked_for() -> None:
    titles = [p["title"] for path in DASHBOARDS for p in json.loads(path.read_text())["panels"] if p["type"] != "row"]
    for wanted in (
        "Audio seconds per second, per worker", "Chunk RTF p50 / p95", "Queue depth", "Jobs by outcome",
        "Redrawn chunks", "GPU memory per worker", "API latency p50 / p95", "API answers 4xx / 5xx",
        "Characters submitted per tenant",
    ):  # fmt: skip
        assert wanted in titles
