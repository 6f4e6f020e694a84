"""`shared.store.JobStore` on the real Redis: the status transitions every worker and the API rely on."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from shared.jobs import JobCreate, JobStatus
from shared.lease import LeaseLost
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


def test_a_new_job_is_queued_and_counted_until_a_worker_claims_it(store):
    before = store.queued_count()
    job_id = queued(store)
    assert store.status(job_id) == JobStatus.QUEUED and store.queued_count() == before + 1
    claim = store.claim(job_id, max_attempts=3)
    assert (claim.outcome, claim.attempts) == ("claimed", 1)
    assert store.status(job_id) == JobStatus.RUNNING and store.queued_count() == before
    view = store.view(job_id)
    assert view.started_at is not None and view.attempts == 1


def test_every_delivery_counts_and_one_past_the_cap_fails_the_job(store):
    job_id = queued(store)
    for _ in range(2):  # each delivery's run died without releasing its claim; its lease ran out
        assert store.claim(job_id, max_attempts=2, lease_seconds=0.05).outcome == "claimed"
        time.sleep(0.1)
    exhausted = store.claim(job_id, max_attempts=2)
    assert (exhausted.outcome, exhausted.attempts) == ("exhausted", 3)
    view = store.view(job_id)
    assert view.status == JobStatus.FAILED and view.error.code == "worker_lost" and "2 times" in view.error.message
    assert store.claim(job_id, max_attempts=2).outcome == "skip"  # a late redelivery finds nothing to do
    assert store.claim("job_missing", max_attempts=2).outcome == "missing"


def test_cancel_stops_a_queued_or_running_job_and_is_refused_once_it_ended(store):
    waiting, running, done = queued(store), queued(store), queued(store)
    store.claim(running, max_attempts=3)
    token = store.claim(done, max_attempts=3).token
    assert store.finish(done, token, JobStatus.SUCCEEDED, result={"file": None, "inputs": {}})
    assert store.cancel(waiting) == ("ok", "queued")
    assert store.cancel(running) == ("ok", "running")
    assert store.cancel(done) == ("refused", "succeeded")
    assert store.cancel("job_missing") == ("missing", "")
    assert store.claim(waiting, max_attempts=3).outcome == "skip"  # a canceled job never runs
    assert store.view(waiting).error.code == "canceled"


def test_a_worker_learns_of_a_cancel_because_its_writes_are_refused(store):
    job_id = queued(store)
    token = store.claim(job_id, max_attempts=3).token
    assert store.update_running(job_id, token, chunks_total=4)
    assert store.record_chunk(job_id, token, "00000-00000", run=1, seconds=1.5, synth_seconds=0.5, carry=b"frames")
    store.cancel(job_id)
    assert not store.update_running(job_id, token, chunks_total=5)
    assert not store.record_chunk(job_id, token, "00000-00001", run=1, seconds=1.0, synth_seconds=0.5, carry=None)
    assert not store.finish(job_id, token, JobStatus.SUCCEEDED)  # a late worker cannot flip it back
    counters = store.counters(job_id)
    assert (counters["chunks_total"], counters["chunks_done"]) == (4, 1)
    assert store.status(job_id) == JobStatus.CANCELED


def test_a_chunk_is_counted_once_and_kept_with_its_carry_until_the_job_ends(store):
    job_id = queued(store)
    token = store.claim(job_id, max_attempts=3).token
    for _ in range(2):  # a second write of the same chunk is not counted again
        assert store.record_chunk(
            job_id, token, "00000-00000", run=1, seconds=1.5, synth_seconds=0.5, carry=b"\x00frames"
        )
    assert store.record_chunk(job_id, token, "00000-00001", run=1, seconds=2.0, synth_seconds=0.25, carry=None)
    done = store.done_chunks(job_id)
    assert {key: (chunk.seconds, chunk.carry) for key, chunk in done.items()} == {
        "00000-00000": (1.5, b"\x00frames"),
        "00000-00001": (2.0, None),
    }
    counters = store.counters(job_id)
    assert (counters["chunks_done"], counters["audio_seconds"], counters["synth_seconds"]) == (2, 3.5, 0.75)
    assert store.view(job_id).rtf == round(0.75 / 3.5, 4)
    assert store.finish(job_id, token, JobStatus.SUCCEEDED)
    assert store.done_chunks(job_id) == {}
    assert store.view(job_id).progress.percent == 100.0


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


def test_a_running_job_with_a_live_claim_is_busy_for_a_second_delivery_and_not_counted(store):
    job_id = queued(store)
    first = store.claim(job_id, max_attempts=3, lease_seconds=30)
    second = store.claim(job_id, max_attempts=3, lease_seconds=30)  # the same message delivered again
    assert (second.outcome, second.attempts, second.token) == ("busy", 0, "")
    assert 25 < second.retry_in <= 30  # when the owner's lease would run out
    assert store.counters(job_id)["attempts"] == 1
    assert store.renew(job_id, first.token, 30) and store.update_running(job_id, first.token, chunks_total=2)
    assert store.finish(job_id, first.token, JobStatus.SUCCEEDED)
    assert store.claim(job_id, max_attempts=3).outcome == "skip"  # the owner finished: nothing left to do


def test_a_run_whose_claim_was_taken_over_can_write_nothing(store):
    job_id = queued(store)
    stale = store.claim(job_id, max_attempts=3, lease_seconds=0.05).token
    time.sleep(0.1)  # its worker stalled past the lease
    fresh = store.claim(job_id, max_attempts=3, lease_seconds=30)
    assert fresh.outcome == "claimed" and fresh.attempts == 2
    assert not store.renew(job_id, stale, 30)
    with pytest.raises(LeaseLost):
        store.update_running(job_id, stale, chunks_total=9)
    with pytest.raises(LeaseLost):
        store.record_chunk(job_id, stale, "00000-00000", run=1, seconds=1.0, synth_seconds=0.5, carry=None)
    with pytest.raises(LeaseLost):
        store.finish(job_id, stale, JobStatus.FAILED, error={"code": "x", "message": "late"})
    assert store.status(job_id) == JobStatus.RUNNING and store.counters(job_id)["chunks_done"] == 0
    assert store.finish(job_id, fresh.token, JobStatus.SUCCEEDED)
    with pytest.raises(LeaseLost):  # nor after the job ended
        store.update_running(job_id, stale)


def test_a_released_claim_or_one_of_a_dead_process_here_is_taken_over_at_once(store, services):
    job_id = queued(store)
    first = store.claim(job_id, max_attempts=3, lease_seconds=30)
    assert store.release(job_id, first.token) and not store.release(job_id, first.token)
    second = store.claim(job_id, max_attempts=3, lease_seconds=30)
    assert second.outcome == "claimed" and second.attempts == 2
    # A claim held by a process of this host that is gone (a killed prefork child):
    script = (
        "from shared.store import JobStore; import redis, sys; "
        "s = JobStore(redis.Redis.from_url(sys.argv[1]), prefix=sys.argv[2], retention_seconds=60); "
        "s.release(sys.argv[3], sys.argv[4]); print(s.claim(sys.argv[3], max_attempts=9, lease_seconds=30).token)"
    )
    settings = services.settings
    done = subprocess.run(
        [sys.executable, "-c", script, settings.redis_url, settings.key_prefix, job_id, second.token],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    dead_token = done.stdout.strip()  # that process claimed the job and exited without releasing it
    assert dead_token and store.counters(job_id)["attempts"] == 3
    third = store.claim(job_id, max_attempts=9, lease_seconds=30)
    assert third.outcome == "claimed" and third.attempts == 4
    with pytest.raises(LeaseLost):
        store.update_running(job_id, dead_token)
