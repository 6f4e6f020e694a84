"""The fast in-process layer: pipeline, assembly, planning and the stores, in seconds.

Everything runs in this process on the real Redis and a local storage directory (the session's own
key prefix, as everywhere), with the deterministic `tests.support.fake_engine.FakeEngine` in place of
a model. Run it alone with `pytest tests/fast` (or `-m fast`); the real-process tests under
`tests/worker` stay for what only they can show (Celery delivery, killed processes, time limits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.jobs import JobCreate
from shared.services import Services
from tests.conftest import ServiceEnv
from tests.support.fake_engine import FakeEngine
from worker.engines.base import Engine
from worker.runtime import Runtime

TENANT = "dev"


@pytest.fixture
def services(service_env: ServiceEnv) -> Services:
    return service_env.services()


@pytest.fixture
def make_runtime(services: Services) -> Callable[..., Runtime]:
    """make_runtime(engine=None) -> a worker Runtime on the test's services (a fresh FakeEngine by default)."""

    def make(engine: Engine | None = None) -> Runtime:
        return Runtime(services, engine or FakeEngine())

    return make


@pytest.fixture
def queue_job(services: Services) -> Callable[..., str]:
    """queue_job(body) -> the id of a queued job of tenant `dev`, stored as the API would store it."""

    def queue(body: dict[str, Any]) -> str:
        spec = JobCreate.model_validate(body)
        job_id, created = services.jobs.create(TENANT, spec, body_hash=spec.model_dump_json())
        assert created
        return job_id

    return queue
