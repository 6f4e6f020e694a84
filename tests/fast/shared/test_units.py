"""`shared.units.UnitStore` on the real Redis: the order units are taken in, leases and their fencing,
recovery by the sweeper, attempt caps, and the job's status and progress as the units move."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from shared.jobs import JobCreate, JobPriority, JobStatus
from shared.lease import LeaseLost
from shared.services import Services
from shared.units import (
    ASSEMBLE_UNIT,
    PLAN_UNIT,
    DurableChunk,
    Exhausted,
    UnitClaim,
    UnitKind,
    UnitStore,
)

pytestmark = pytest.mark.fast

LEASE = 30.0


@pytest.fixture
def units(services: Services) -> UnitStore:
    return services.units


def create(services: Services, tenant: str = "dev", priority: str = "normal") -> str:
    spec = JobCreate(inputs=[{"text": "Hello there."}], priority=priority)
    job_id, created = services.jobs.create(tenant, spec, body_hash=spec.model_dump_json())
    assert created
    return job_id


def take(units: UnitStore, *, max_attempts: int = 3, lease_seconds: float = LEASE, **kw) -> UnitClaim:
    claim = units.take(lease_seconds=lease_seconds, max_attempts=max_attempts, **kw)
    assert isinstance(claim, UnitClaim), claim
    return claim


def planned(services: Services, n: int, tenant: str = "dev", priority: str = "normal") -> str:
    """A job whose plan unit ran and registered `n` speak units (ready, nothing else leased)."""
    job_id = create(services, tenant, priority)
    claim = take(services.units, kinds=frozenset({UnitKind.PLAN}))
    assert (claim.job_id, claim.kind) == (job_id, UnitKind.PLAN)
    made = services.units.register_plan(
        claim, plan={"v": 1}, units=[f'["c{i}"]' for i in range(n)], chunks_total=2 * n, engine="fake"
    )
    assert made == n
    return job_id


def chunk(key: str, seconds: float = 2.0) -> DurableChunk:
    return DurableChunk(key=key, offset=0, samples=100, seconds=seconds, synth_seconds=0.5, carry=b"ctx")


def later(seconds: float) -> float:
    return time.time() + seconds


# --- order --------------------------------------------------------------------------------------------
def test_a_new_job_is_one_ready_plan_unit_and_its_first_claim_starts_it(services, units):
    job_id = create(services, priority="batch")
    assert units.ready_counts()[JobPriority.BATCH] == 1
    assert services.jobs.queued_count() == 1
    claim = take(units)
    assert (claim.job_id, claim.unit, claim.kind, claim.attempts) == (job_id, PLAN_UNIT, UnitKind.PLAN, 1)
    assert (claim.tenant, claim.priority) == ("dev", JobPriority.BATCH)
    view = services.jobs.view(job_id)
    assert view.status == JobStatus.RUNNING and view.started_at is not None and view.attempts == 1
    assert view.priority == JobPriority.BATCH
    assert services.jobs.queued_count() == 0
    assert units.ready_counts()[JobPriority.BATCH] == 0 and units.leased_counts()[JobPriority.BATCH] == 1
    assert units.take(lease_seconds=LEASE, max_attempts=3) is None


def test_priority_classes_are_served_in_order_whatever_came_first(services, units):
    book = planned(services, 3, priority="batch")
    normal = create(services)
    interactive = create(services, priority="interactive")
    order = [(c.job_id, c.kind) for c in (take(units) for _ in range(3))]
    assert order == [(interactive, UnitKind.PLAN), (normal, UnitKind.PLAN), (book, UnitKind.SPEAK)]


def test_inside_a_tenant_the_oldest_job_goes_first_and_speak_units_in_index_order(services, units):
    first = planned(services, 3)
    second = create(services)
    order = [(c.job_id, c.unit) for c in (take(units) for _ in range(4))]
    assert order == [(first, 0), (first, 1), (first, 2), (second, PLAN_UNIT)]


def test_a_tenant_with_many_units_does_not_starve_another_tenants_one_job(services, units):
    for _ in range(3):
        planned(services, 4, tenant="studio")
    planned(services, 2, tenant="author")
    tenants = [take(units).tenant for _ in range(6)]
    # fewest units leased right now first: the author's two units go out among the first four takes
    assert tenants[:4] in (["studio", "author"] * 2, ["author", "studio"] * 2)
    assert tenants[4:] == ["studio", "studio"]


def test_between_tenants_with_nothing_leased_the_one_served_longest_ago_goes_first(services, units):
    for tenant in ("a", "b"):
        planned(services, 3, tenant=tenant)
    served = []
    for _ in range(6):
        claim = take(units)
        served.append(claim.tenant)
        for key in ("x", "y"):
            units.progress(claim, seconds=1.0, synth_seconds=0.1)
            units.checkpoint(claim, f"part-{claim.unit}", [chunk(f"{claim.tenant}-{claim.unit}-{key}")])
        units.finish_unit(claim)  # nothing stays leased: the tie is broken by who was served last
    assert served in (["a", "b"] * 3, ["b", "a"] * 3)


def test_take_can_be_limited_to_kinds(services, units):
    job_id = planned(services, 1)
    create(services)
    claim = take(units, kinds=frozenset({UnitKind.PLAN}))
    assert claim.kind == UnitKind.PLAN and claim.job_id != job_id
    assert units.take(lease_seconds=LEASE, max_attempts=3, kinds=frozenset({UnitKind.ASSEMBLE})) is None
    assert take(units).job_id == job_id


# --- plans --------------------------------------------------------------------------------------------
def test_register_plan_stores_the_plan_and_is_idempotent(services, units):
    job_id = create(services)
    claim = take(units)
    chunks = ['["a","b"]', '["c"]']
    assert units.register_plan(claim, plan={"k": [1, 2]}, units=chunks, chunks_total=3, engine="fake") == 2
    assert units.register_plan(claim, plan={"k": [1, 2]}, units=chunks, chunks_total=3, engine="fake") == 2
    assert units.ready_counts()[JobPriority.NORMAL] == 2 and units.leased_counts()[JobPriority.NORMAL] == 0
    assert units.plan(job_id) == {"k": [1, 2]}
    assert [units.unit_chunks(job_id, i) for i in (0, 1)] == chunks
    counters = services.jobs.counters(job_id)
    assert (counters["chunks_total"], counters["units_total"]) == (3, 2)
    assert [(u.kind, u.index, u.state) for u in units.units_of(job_id)] == [
        (UnitKind.PLAN, PLAN_UNIT, "done"), (UnitKind.SPEAK, 0, "ready"), (UnitKind.SPEAK, 1, "ready"),
    ]  # fmt: skip


def test_a_plan_of_no_speak_units_makes_the_assemble_unit_ready(services, units):
    job_id = create(services)
    claim = take(units)
    assert units.register_plan(claim, plan={}, units=[], chunks_total=0, engine="fake") == 1
    assemble = take(units)
    assert (assemble.job_id, assemble.unit, assemble.kind) == (job_id, ASSEMBLE_UNIT, UnitKind.ASSEMBLE)


# --- leases and fencing -------------------------------------------------------------------------------
def test_a_swept_holder_is_fenced_out_of_every_write(services, units):
    job_id = planned(services, 1)
    stale = take(units, lease_seconds=1)
    assert units.renew(stale, 1)
    assert units.sweep(stall_seconds=3600, now=later(60)) == 1
    assert not units.renew(stale, LEASE)
    for write in (
        lambda: units.progress(stale, seconds=1.0, synth_seconds=0.1),
        lambda: units.checkpoint(stale, "p", [chunk("c0")]),
        lambda: units.finish_unit(stale),
        lambda: units.hand_back(stale, reason="x", code="y"),
        lambda: units.fail_job(stale, error={"code": "x", "message": "y"}),
    ):
        with pytest.raises(LeaseLost):
            write()
    fresh = take(units)
    assert (fresh.job_id, fresh.unit, fresh.attempts) == (job_id, 0, 2) and fresh.token != stale.token
    with pytest.raises(LeaseLost):
        units.progress(stale, seconds=1.0, synth_seconds=0.1)
    assert units.progress(fresh, seconds=1.0, synth_seconds=0.1)
    assert services.jobs.view(job_id).attempts == 2  # the highest claim count of any of its units


def test_a_renewed_lease_survives_the_sweep_and_an_expired_one_comes_back(services, units):
    planned(services, 2)
    kept, lost = take(units, lease_seconds=2), take(units, lease_seconds=2)
    assert units.renew(kept, 3600)
    assert units.sweep(stall_seconds=3600, now=later(60)) == 1
    assert units.leased_counts()[JobPriority.NORMAL] == 1 and units.ready_counts()[JobPriority.NORMAL] == 1
    assert units.progress(kept, seconds=1.0, synth_seconds=0.1)
    again = take(units)
    assert (again.unit, again.attempts) == (lost.unit, 2)


def test_a_unit_without_progress_is_swept_as_stalled_and_then_fails_its_job(services, units):
    job_id = planned(services, 1)
    for attempt in (1, 2):
        claim = take(units, max_attempts=2, lease_seconds=3600)  # a live lease, renewed, but no chunk
        assert claim.attempts == attempt
        assert units.sweep(stall_seconds=100, now=later(50)) == 0  # not stalled yet
        assert units.sweep(stall_seconds=100, now=later(150)) == 1
    exhausted = units.take(lease_seconds=LEASE, max_attempts=2)
    assert isinstance(exhausted, Exhausted) and (exhausted.job_id, exhausted.tenant) == (job_id, "dev")
    assert exhausted.error["code"] == "unit_stalled" and "2 times" in exhausted.error["message"]
    view = services.jobs.view(job_id)
    assert view.status == JobStatus.FAILED and view.error.code == "unit_stalled" and view.finished_at
    assert units.ready_counts()[JobPriority.NORMAL] == 0 and units.take(lease_seconds=LEASE, max_attempts=2) is None


def test_progress_resets_the_stall_clock(services, units):
    planned(services, 1)
    claim = take(units, lease_seconds=3600)
    time.sleep(0.3)
    assert units.progress(claim, seconds=1.0, synth_seconds=0.1)
    assert units.sweep(stall_seconds=0.25) == 0  # its last chunk is younger than the stall time
    assert units.renew(claim, LEASE)


def test_expired_leases_up_to_the_cap_fail_the_job_as_worker_lost(services, units):
    job_id = planned(services, 2)
    for _ in range(2):
        take(units, max_attempts=2, lease_seconds=1)
        assert units.sweep(stall_seconds=3600, now=later(60)) == 1
    exhausted = units.take(lease_seconds=LEASE, max_attempts=2)
    assert isinstance(exhausted, Exhausted) and exhausted.error["code"] == "worker_lost"
    assert services.jobs.view(job_id).error.code == "worker_lost"
    # the job's other unit is dropped, not run
    assert units.take(lease_seconds=LEASE, max_attempts=2) is None
    assert [u.state for u in units.units_of(job_id)] == ["done", "stopped", "stopped"]
    page = services.jobs.list("dev", status=JobStatus.FAILED)
    assert [job.id for job in page.data] == [job_id]


def test_a_hand_back_with_a_delay_waits_and_its_code_is_what_the_job_fails_with(services, units):
    job_id = planned(services, 1)
    claim = take(units, max_attempts=1)
    assert units.hand_back(claim, reason="storage unreachable for 60 s.", code="storage_unavailable", delay_seconds=30)
    assert [u.state for u in units.units_of(job_id)] == ["done", "waiting"]
    assert units.take(lease_seconds=LEASE, max_attempts=1) is None
    assert units.sweep(stall_seconds=3600, now=later(10)) == 0
    assert units.sweep(stall_seconds=3600, now=later(40)) == 1
    exhausted = units.take(lease_seconds=LEASE, max_attempts=1)
    assert isinstance(exhausted, Exhausted) and exhausted.error["code"] == "storage_unavailable"
    assert "storage unreachable" in services.jobs.view(job_id).error.message


def test_a_hand_back_without_delay_is_ready_at_once(services, units):
    planned(services, 1)
    claim = take(units)
    assert units.hand_back(claim, reason="worker shutting down", code="worker_lost")
    again = take(units)
    assert (again.unit, again.attempts) == (claim.unit, 2)


# --- progress accounting ------------------------------------------------------------------------------
def test_chunks_done_counts_live_chunks_until_they_are_lost_and_durable_ones_for_good(services, units):
    job_id = planned(services, 1)
    claim = take(units)
    for _ in range(3):
        assert units.progress(claim, seconds=2.0, synth_seconds=0.5)
    assert units.units_of(job_id)[1].live == 3
    assert units.checkpoint(claim, "part-a", [chunk("k0"), chunk("k1")])
    [_, speak] = units.units_of(job_id)
    assert speak.live == 1 and speak.holder == f"{socket.gethostname()}:{os.getpid()}"
    counters = services.jobs.counters(job_id)
    assert (counters["chunks_done"], counters["chunks_synthesized"], counters["audio_seconds"]) == (3, 3, 6.0)
    assert units.sweep(stall_seconds=3600, now=later(60)) == 1  # its holder died: the third chunk is lost
    counters = services.jobs.counters(job_id)
    assert (counters["chunks_done"], counters["chunks_synthesized"], counters["audio_seconds"]) == (2, 3, 4.0)
    assert counters["synth_seconds"] == pytest.approx(1.0)
    done = services.jobs.done_chunks(job_id)
    assert sorted(done) == ["k0", "k1"]
    assert (done["k1"].part, done["k1"].offset, done["k1"].samples, done["k1"].run) == ("part-a", 0, 100, 1)
    assert done["k1"].carry == b"ctx"

    again = take(units)
    units.progress(again, seconds=2.0, synth_seconds=0.5)
    units.progress(again, seconds=2.0, synth_seconds=0.5)
    # k1 again (already durable) does not count twice; k2 is new
    assert units.checkpoint(again, "part-b", [chunk("k1"), chunk("k2")])
    assert services.jobs.done_chunks(job_id)["k1"].part == "part-a"
    units.progress(again, seconds=2.0, synth_seconds=0.5)
    assert units.hand_back(again, reason="shutting down", code="worker_lost")
    counters = services.jobs.counters(job_id)
    assert (counters["chunks_done"], counters["chunks_synthesized"], counters["audio_seconds"]) == (3, 6, 6.0)


def test_a_checkpoint_of_chunks_never_reported_counts_them(services, units):
    job_id = planned(services, 1)
    claim = take(units)
    assert units.checkpoint(claim, "p", [chunk("k0"), chunk("k1")])
    assert services.jobs.counters(job_id)["chunks_done"] == 2


# --- the end of a job ---------------------------------------------------------------------------------
def test_exactly_one_of_many_concurrent_finishes_gets_the_assembly(services, units):
    job_id = planned(services, 16)
    claims = [take(units) for _ in range(16)]
    results: list[str] = []
    start = threading.Barrier(len(claims))

    def finish(claim: UnitClaim) -> None:
        units.checkpoint(claim, f"p{claim.unit}", [chunk(f"k{claim.unit}")])
        start.wait()
        results.append(units.finish_unit(claim))

    threads = [threading.Thread(target=finish, args=(claim,)) for claim in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["assemble"] + ["done"] * 15
    assert units.finish_unit(claims[0]) == "done"  # a repeat changes nothing
    assemble = take(units)
    assert (assemble.job_id, assemble.kind) == (job_id, UnitKind.ASSEMBLE)
    assert units.take(lease_seconds=LEASE, max_attempts=3) is None
    assert units.finish_job(assemble, result={"file": None, "inputs": {}}, timings={"encode": 0.1})
    view = services.jobs.view(job_id)
    assert view.status == JobStatus.SUCCEEDED and view.progress.chunks_done == 16 and view.timings == {"encode": 0.1}
    assert units.leased_counts()[JobPriority.NORMAL] == 0
    assert [job.id for job in services.jobs.list("dev", status=JobStatus.SUCCEEDED).data] == [job_id]
    assert not services.jobs.list("dev", status=JobStatus.RUNNING).data


def test_cancel_drops_ready_units_and_stops_the_holders(services, units):
    job_id = planned(services, 5)
    other = create(services)
    held = take(units)
    assert services.jobs.cancel(job_id) == ("ok", "running")
    assert units.ready_counts()[JobPriority.NORMAL] == 1  # the other job's plan only
    assert units.leased_counts()[JobPriority.NORMAL] == 0
    assert units.progress(held, seconds=1.0, synth_seconds=0.1) is False  # stopped, not fenced out
    assert units.finish_unit(held) == "stopped"
    assert not units.renew(held, LEASE)
    assert {u.state for u in units.units_of(job_id)} == {"done", "stopped"}
    assert take(units).job_id == other
    assert [job.id for job in services.jobs.list("dev", status=JobStatus.CANCELED).data] == [job_id]
    assert services.jobs.cancel(job_id) == ("refused", "canceled")


def test_cancel_of_a_queued_job_leaves_nothing_to_take(services, units):
    job_id = create(services)
    assert services.jobs.cancel(job_id) == ("ok", "queued")
    assert services.jobs.queued_count() == 0 and units.ready_counts()[JobPriority.NORMAL] == 0
    assert units.take(lease_seconds=LEASE, max_attempts=3) is None


def test_a_failing_unit_fails_the_job_and_the_others_stop_at_their_next_write(services, units):
    job_id = planned(services, 3)
    failing, other = take(units), take(units)
    assert units.fail_job(failing, error={"code": "engine_error", "message": "boom"})
    assert services.jobs.view(job_id).error.code == "engine_error"
    assert units.progress(other, seconds=1.0, synth_seconds=0.1) is False
    assert units.hand_back(other, reason="x", code="y") is False
    assert units.take(lease_seconds=LEASE, max_attempts=3) is None
    assert units.leased_counts()[JobPriority.NORMAL] == 0


def test_delete_forgets_every_unit(services, units):
    job_id = planned(services, 3)
    take(units)
    services.jobs.delete(job_id)
    assert units.units_of(job_id) == [] and units.plan(job_id) is None
    assert units.ready_counts()[JobPriority.NORMAL] == 0 and units.leased_counts()[JobPriority.NORMAL] == 0
    assert units.take(lease_seconds=LEASE, max_attempts=3) is None


def test_unit_keys_expire_with_the_job_record(services, units):
    job_id = planned(services, 2)
    ttl = services.redis.ttl(f"{services.settings.key_prefix}:job:{job_id}:units")
    assert 0 < ttl <= services.settings.job_retention_seconds


def test_an_unknown_priority_is_refused_with_the_allowed_names():
    with pytest.raises(ValueError, match="priority must be one of interactive, normal, batch"):
        JobCreate(inputs=[{"text": "Hello."}], priority="urgent")
