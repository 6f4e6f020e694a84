"""Prometheus metrics of the API and the workers, in base units (seconds, bytes).

Both run several processes (gunicorn workers, Celery's prefork child), so metrics are written in
prometheus-client's multiprocess mode whenever PROMETHEUS_MULTIPROC_DIR is set, and every scrape merges
all processes. Queue depth is read from the job store at scrape time rather than counted, so it is
right even after restarts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from shared.jobs import JobPriority

NAMESPACE = "narrate"

_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, float("inf"))
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))
_RTF_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, float("inf"))

JOBS_SUBMITTED = Counter(f"{NAMESPACE}_jobs_submitted_total", "Jobs accepted by the API.")
JOBS_FINISHED = Counter(f"{NAMESPACE}_jobs_finished_total", "Jobs that reached a final status.", ["status"])
QUEUE_WAIT = Histogram(
    f"{NAMESPACE}_job_queue_wait_seconds", "Time from submission to a worker starting the job.",
    buckets=_DURATION_BUCKETS,
)  # fmt: skip
JOB_DURATION = Histogram(
    f"{NAMESPACE}_job_duration_seconds", "Time from a worker starting a job to its end.", buckets=_DURATION_BUCKETS
)
CHUNK_RTF = Histogram(
    f"{NAMESPACE}_chunk_rtf",
    "Real-time factor of each chunk: synthesis seconds per audio second.",
    buckets=_RTF_BUCKETS,
)
AUDIO_SECONDS = Counter(f"{NAMESPACE}_audio_generated_seconds_total", "Seconds of speech generated.")
SYNTHESIS_SECONDS = Counter(f"{NAMESPACE}_synthesis_seconds_total", "Wall seconds spent in the engine.")
CHUNKS_REDRAWN = Counter(
    f"{NAMESPACE}_chunks_redrawn_total",
    "Chunks generated again because a draw failed quality control (cut off, run on, words missing).",
)
CHUNKS_FLAGGED = Counter(
    f"{NAMESPACE}_chunks_flagged_total",
    "Chunks kept although their best draw failed quality control (listed in the job's quality.flagged).",
)
QC_ASR_SECONDS = Counter(
    f"{NAMESPACE}_qc_asr_seconds_total", "Wall seconds spent transcribing chunks for quality control."
)
# Usage per tenant (the same numbers as GET /v1/usage; tenants are few and configured, so bounded labels).
USAGE_CHARACTERS = Counter(
    f"{NAMESPACE}_usage_characters_total", "Characters of the jobs a tenant submitted.", ["tenant"]
)
USAGE_AUDIO_SECONDS = Counter(
    f"{NAMESPACE}_usage_audio_seconds_total", "Seconds of speech produced for a tenant.", ["tenant"]
)
USAGE_ENGINE_SECONDS = Counter(
    f"{NAMESPACE}_usage_engine_seconds_total", "Wall seconds the engine spent on a tenant's chunks.", ["tenant"]
)
# The API's requests, by route template (bounded: the url map's rules, or "unmatched") and status code.
HTTP_REQUEST_DURATION = Histogram(
    f"{NAMESPACE}_http_request_duration_seconds", "Time the API took to answer a request.",
    ["method", "route", "status"], buckets=_HTTP_BUCKETS,
)  # fmt: skip
WEBHOOK_ATTEMPTS = Counter(f"{NAMESPACE}_webhook_attempts_total", "Webhook delivery attempts by outcome.", ["outcome"])
# Labelled, so that a CPU worker, which never sets them, exports no GPU series at all.
GPU_MEMORY_ALLOCATED = Gauge(
    f"{NAMESPACE}_gpu_memory_allocated_bytes", "GPU memory held by the engine of a worker.", ["device"],
    multiprocess_mode="liveall",
)  # fmt: skip
GPU_MEMORY_PEAK = Gauge(
    f"{NAMESPACE}_gpu_memory_peak_bytes", "Peak GPU memory of a worker since it started.", ["device"],
    multiprocess_mode="liveall",
)  # fmt: skip
GPU_MEMORY_TOTAL = Gauge(
    f"{NAMESPACE}_gpu_memory_total_bytes", "Memory of the GPU a worker's engine runs on (the alerts' limit).",
    ["device"], multiprocess_mode="liveall",
)  # fmt: skip
ENGINE_LOAD_SECONDS = Gauge(
    f"{NAMESPACE}_engine_load_seconds", "Seconds the worker took to load its engine.", ["engine"],
    multiprocess_mode="liveall",
)  # fmt: skip


class QueueDepthCollector(Collector):
    """Reports the number of queued jobs by asking the job store at scrape time."""

    def __init__(self, count: Callable[[], int]) -> None:
        self._count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(f"{NAMESPACE}_queue_depth", "Jobs accepted and waiting for a worker.")
        try:
            family.add_metric([], float(self._count()))
        except Exception:
            return
        yield family


class UnitsCollector(Collector):
    """Reports the scheduler's ready and leased units per priority class (`UnitStore.ready_counts`,
    `leased_counts`) at scrape time."""

    def __init__(
        self, ready: Callable[[], Mapping[JobPriority, int]], leased: Callable[[], Mapping[JobPriority, int]]
    ) -> None:
        self._ready = ready
        self._leased = leased

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, help_text, read in (
            ("units_ready", "Units (plan, speak, assemble) waiting for a worker, per job priority.", self._ready),
            ("units_leased", "Units a worker holds right now, per job priority.", self._leased),
        ):
            family = GaugeMetricFamily(f"{NAMESPACE}_{name}", help_text, labels=["priority"])
            try:
                counts = read()
            except Exception:
                continue
            for priority, count in counts.items():
                family.add_metric([str(priority)], float(count))
            yield family


class _Collectors(Collector):
    def __init__(self, *collectors: Collector) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:  # type: ignore[override]
        for collector in self._collectors:
            yield from collector.collect()


def combined(*collectors: Collector) -> Collector:
    """Several scrape-time collectors as the one `extra` of `scrape_registry`."""
    return _Collectors(*collectors)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def scrape_registry(extra: Collector | None = None) -> CollectorRegistry:
    """The registry to expose: all processes merged in multiprocess mode, else this process."""
    if multiprocess_enabled():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessCollectors())
    if extra is not None:
        registry.register(extra)
    return registry


class _ProcessCollectors(Collector):
    def collect(self) -> Iterator[Metric]:  # type: ignore[override]
        yield from REGISTRY.collect()


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
