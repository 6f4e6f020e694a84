"""`shared.store.JobStore` on the real Redis: the status transitions every worker and the API rely on."""

from __future__ import annotations

import pytest

from shared.jobs import JobCreate, JobStatus
from shared.store import IdempotencyConflict, JobStore

pytestmark = pytest.mark.fast

SPEC = JobCreate(inputs=[{"text": "Hello there."}])


@pytest.fixture
def store(services) -> JobStore:
    return services.jobs


def queued(store: JobStore) -> str:
    job_id, created = store.create("dev", SPEC, body_hash="h")
    assert created
    return job_id


def test_a_new_job_is_queued_and_counted_until_a_worker_takes_its_plan_unit(store, services):
    before = store.queued_count()
    job_id = queued(store)
    assert store.status(job_id) == JobStatus.QUEUED and store.queued_count() == before + 1
    claim = services.units.take(lease_seconds=30, max_attempts=3)
    assert (claim.job_id, claim.kind, claim.attempts) == (job_id, "plan", 1)
    assert store.status(job_id) == JobStatus.RUNNING and store.queued_count() == before
    view = store.view(job_id)
    assert view.started_at is not None and view.attempts == 1


def test_cancel_stops_a_queued_or_running_job_and_is_refused_once_it_ended(store, services):
    running, done = queued(store), queued(store)
    for _ in (running, done):  # their plan units are taken: both run
        assert services.units.take(lease_seconds=30, max_attempts=3) is not None
    waiting = queued(store)
    assert store.transition(done, (JobStatus.RUNNING,), JobStatus.SUCCEEDED) == ("ok", "running")
    assert store.cancel(waiting) == ("ok", "queued")
    assert store.cancel(running) == ("ok", "running")
    assert store.cancel(done) == ("refused", "succeeded")
    assert store.cancel("job_missing") == ("missing", "")
    assert services.units.take(lease_seconds=30, max_attempts=3) is None  # a canceled job never runs
    assert store.view(waiting).error.code == "canceled"


def test_the_same_idempotency_key_returns_the_same_job_and_another_body_conflicts(store):
    first, created = store.create("dev", SPEC, body_hash="a", idempotency_key="k")
    again, created_again = store.create("dev", SPEC, body_hash="a", idempotency_key="k")
    assert created and not created_again and again == first
    with pytest.raises(IdempotencyConflict):
        store.create("dev", SPEC, body_hash="b", idempotency_key="k")
    other, other_created = store.create("other", SPEC, body_hash="b", idempotency_key="k")
    assert other_created and other != first  # keys are per tenant


def test_a_job_is_invisible_to_another_tenant_and_gone_after_delete(store):
    job_id = queued(store)
    assert store.view(job_id, tenant="other") is None and store.view(job_id, tenant="dev") is not None
    store.delete(job_id)
    assert store.view(job_id) is None and store.status(job_id) is None
