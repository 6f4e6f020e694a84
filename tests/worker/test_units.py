"""Units across real worker processes (Piper): a dead machine's units move to another worker within about
a lease, interactive work goes before a queued book, tenants share a worker fairly, and a cancel stops
every worker holding one of the job's units.

The order in which units start is read from the workers' logs (`job <id>: <kind> unit <n> taken`), one
line per claim, written before the unit runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import time
from pathlib import Path

import pytest

from api import create_app
from shared.storage import storage_from_settings
from shared.units import UnitKind
from tests.conftest import AUTH, ServiceEnv, wait_for, wait_status
from tests.worker.test_synthesis_jobs import (
    LONG_TEXT,
    SMALL_CHUNKS,
    _audio_objects,
    _checkpoints,
    _submit,
    _unreferenced_checkpoints,
)

pytestmark = pytest.mark.slow

LEASE = 3.0
UNITS = {
    **SMALL_CHUNKS,
    "NARRATE_UNIT_AUDIO_SECONDS": "15",  # a long text becomes several speak units
    "NARRATE_LEASE_SECONDS": str(LEASE),
    "NARRATE_CHECKPOINT_INTERVAL_SECONDS": "1",
    "NARRATE_CHECKPOINT_MIN_AUDIO_SECONDS": "0",  # the tiny model's short chunks: a part every second
}
TAKEN = re.compile(r"job (job_[\w-]+): (plan|speak|assemble) unit (-?\d+) taken \(attempt (\d+)\)")
OTHER_KEY = "other-tenant-key"


def starts(*logs: Path) -> list[tuple[str, str, int]]:
    """(job, kind, unit) of every claim in the workers' logs, in the order of each log."""
    found = []
    for log in logs:
        for match in TAKEN.finditer(log.read_text(errors="replace")):
            found.append((match[1], match[2], int(match[3])))
    return found


def leased_speak_units(env: ServiceEnv, job_ids: list[str]) -> dict[str, list[int]]:
    units = env.services().units
    out = {}
    for job_id in job_ids:
        held = [u.index for u in units.units_of(job_id) if u.kind == UnitKind.SPEAK and u.state == "leased"]
        if held:
            out[job_id] = held
    return out


def test_a_killed_worker_machines_units_of_several_jobs_resume_on_the_other_worker(
    api_client, service_env, start_worker
):
    service_env.extra.update(UNITS, NARRATE_UNIT_AUDIO_SECONDS="40", NARRATE_WORKER_UNITS="6")
    survivor = start_worker(service_env)
    os.killpg(survivor.proc.pid, signal.SIGSTOP)  # kept out of the way until the other machine dies
    try:
        doomed = start_worker(service_env)
        jobs = [_submit(api_client, {"inputs": [{"text": LONG_TEXT}], "format": "mp3"}) for _ in range(2)]
        store = service_env.store()
        held = wait_for(
            lambda: (found := leased_speak_units(service_env, jobs)) and len(found) == 2 and found,
            timeout=60,
            message="the worker to hold speak units of both jobs",
        )
        wait_for(lambda: all(store.done_chunks(job_id) for job_id in jobs), message="a durable part of each job")
        doomed.kill()  # SIGKILL of its whole process group, holding units of both jobs
        killed = time.monotonic()
        held = leased_speak_units(service_env, jobs)  # as the dead worker left them
    finally:
        os.killpg(survivor.proc.pid, signal.SIGCONT)
    # What the dead worker had generated but not yet written (live chunks): lost, to be generated again.
    lost = {job_id: store.counters(job_id)["chunks_done"] - len(store.done_chunks(job_id)) for job_id in jobs}

    def resumed() -> bool:
        units = service_env.services().units
        return all(
            u.attempts >= 2 and u.state in ("leased", "done")
            for job_id, indices in held.items()
            for u in units.units_of(job_id)
            if u.kind == UnitKind.SPEAK and u.index in indices
        )

    wait_for(resumed, timeout=2 * LEASE + 15, interval=0.1, message="every held unit to be taken again")
    resumed_after = time.monotonic() - killed
    for job_id in jobs:
        job = wait_status(api_client, job_id, {"succeeded", "failed"}, timeout=180)
        assert job["status"] == "succeeded", job["error"]
        counters = store.counters(job_id)
        assert counters["chunks_done"] == counters["chunks_total"]
        # Only the dead worker's live chunks were generated again, and they are counted.
        assert counters["chunks_synthesized"] - counters["chunks_total"] == lost[job_id]
        assert len(_audio_objects(service_env, job_id)) == 1
        wait_for(lambda j=job_id: not _unreferenced_checkpoints(service_env, j), message="scratch parts to go")
    taken_again = [(j, u) for j, kind, u in starts(survivor.log_path) if kind == "speak"]
    assert all((job_id, unit) in taken_again for job_id, units in held.items() for unit in units)
    print(f"units of the dead worker taken again {resumed_after:.1f} s after the kill (lease {LEASE} s)")


def test_an_interactive_job_submitted_behind_a_queued_book_starts_before_the_books_next_unit(
    api_client, service_env, start_worker
):
    service_env.extra.update(UNITS, NARRATE_WORKER_UNITS="1")
    worker = start_worker(service_env)
    book = _submit(api_client, {"inputs": [{"text": LONG_TEXT * 2}], "priority": "batch"})
    units = service_env.services().units
    wait_for(lambda: leased_speak_units(service_env, [book]), message="the book's first speak unit")
    line = _submit(api_client, {"inputs": [{"text": "Right now, please."}], "priority": "interactive"})
    assert wait_status(api_client, line, {"succeeded", "failed"}, timeout=60)["status"] == "succeeded"
    order = starts(worker.log_path)
    first_line_start = order.index((line, "plan", -1))
    book_speak_before = [u for j, kind, u in order[:first_line_start] if j == book and kind == "speak"]
    # The book's unit that was running went on; its next unit waited for the whole interactive job.
    assert [j for j, _, _ in order[first_line_start : first_line_start + 3]] == [line] * 3
    assert book_speak_before and book_speak_before == list(range(len(book_speak_before)))
    ready = [u.index for u in units.units_of(book) if u.kind == UnitKind.SPEAK and u.state == "ready"]
    assert ready and len(ready) >= 2
    assert wait_status(api_client, book, {"succeeded", "failed"}, timeout=240)["status"] == "succeeded"


def test_two_tenants_share_one_worker_thread_by_turns(service_env, start_worker):
    digest = hashlib.sha256(OTHER_KEY.encode()).hexdigest()
    service_env.extra.update(UNITS, NARRATE_WORKER_UNITS="1", NARRATE_API_KEYS=f"other:{digest}")
    api_client = create_app(service_env.settings()).test_client()  # knows the second tenant's key
    worker = start_worker(service_env)
    books = [_submit(api_client, {"inputs": [{"text": LONG_TEXT}]}) for _ in range(3)]
    wait_for(lambda: leased_speak_units(service_env, books[:1]), message="the first book's speak units")
    other_key = {"Authorization": f"Bearer {OTHER_KEY}"}
    chapter = _submit(api_client, {"inputs": [{"text": LONG_TEXT[:400]}]}, other_key)
    read = lambda: api_client.get(f"/v1/jobs/{chapter}", headers=other_key).get_json()  # noqa: E731
    job = wait_for(lambda: (body := read())["status"] in ("succeeded", "failed") and body, timeout=120)
    assert job["status"] == "succeeded", job["error"]
    order = starts(worker.log_path)
    first = order.index((chapter, "plan", -1))
    other = [job == chapter for job, _, _ in order[first:] if job == chapter or job in books]
    chapter_units = sum(other)
    # From its first start on, the other tenant's units and the first tenant's take turns: its one
    # chapter is done after about twice its own units, not after the hundred books' units.
    assert other[: 2 * chapter_units - 1] == [i % 2 == 0 for i in range(2 * chapter_units - 1)]
    assert chapter_units >= 3
    # The first tenant's books were not done yet when the chapter was: it did not wait for them.
    assert any(service_env.store().status(book) != "succeeded" for book in books)


def test_cancel_of_a_job_running_on_two_workers_stops_both_and_leaves_no_checkpoint(
    api_client, service_env, start_worker
):
    service_env.extra.update(UNITS, NARRATE_WORKER_UNITS="2")
    workers = [start_worker(service_env) for _ in range(2)]
    job_id = _submit(api_client, {"inputs": [{"text": LONG_TEXT * 3}]})
    store = service_env.store()

    def on_both() -> bool:
        return all(any(j == job_id and k == "speak" for j, k, _ in starts(w.log_path)) for w in workers)

    wait_for(on_both, timeout=60, message="speak units of the job on both workers")
    wait_for(lambda: store.done_chunks(job_id), message="a durable part")
    canceled = api_client.delete(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
    assert canceled["status"] == "canceled"
    for worker in workers:  # each worker's running unit stops at its next chunk
        wait_for(lambda w=worker: f"job {job_id} speak unit" in (t := w.log_path.read_text()) and ": canceled" in t,
                 timeout=30, message="both workers to stop the job's units")  # fmt: skip
    wait_for(lambda: not _checkpoints(service_env, job_id), message="checkpoints to be discarded")
    done = store.counters(job_id)["chunks_done"]
    time.sleep(2 * LEASE)  # nothing of the job runs any more: no worker, no sweep brings a unit back
    assert store.counters(job_id)["chunks_done"] == done
    assert _checkpoints(service_env, job_id) == [] and _audio_objects(service_env, job_id) == []
    storage = storage_from_settings(service_env.settings())
    assert storage.list_keys(f"checkpoints/{job_id}/") == []


def test_a_worker_told_to_stop_checkpoints_and_hands_its_units_back_at_once(api_client, service_env, start_worker):
    # A lease far longer than the test waits: the unit comes back by its hand-back, not by expiry.
    service_env.extra.update(UNITS, NARRATE_UNIT_AUDIO_SECONDS="100000", NARRATE_LEASE_SECONDS="120")
    stopping = start_worker(service_env)
    job_id = _submit(api_client, {"inputs": [{"text": LONG_TEXT}], "streams": 1})
    store = service_env.store()
    wait_for(lambda: store.counters(job_id)["chunks_done"] >= 3, message="three chunks")
    stopping.stop()  # SIGTERM: a warm shutdown
    assert "handed back" in stopping.log_path.read_text()
    (unit,) = [u for u in service_env.services().units.units_of(job_id) if u.kind == UnitKind.SPEAK]
    assert unit.state == "ready" and unit.attempts == 1
    durable = len(store.done_chunks(job_id))
    assert durable == store.counters(job_id)["chunks_done"] >= 3  # everything it had was checkpointed
    start_worker(service_env)
    job = wait_status(api_client, job_id, {"succeeded", "failed"}, timeout=90)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job["error"]
    counters = store.counters(job_id)
    assert counters["chunks_synthesized"] == counters["chunks_total"]  # nothing generated twice
