"""A tenant's job list filtered by status reads only the jobs of that status (the per-status index),
and the index follows every status change, deletion and expiry."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import redis
from redis.client import Pipeline

from shared.jobs import JobCreate, JobStatus
from shared.store import JobStore
from tests.conftest import ServiceEnv

pytestmark = pytest.mark.fast

SPEC = JobCreate(inputs=[{"text": "Hello there."}])
TENANT = "dev"


class CountingPipeline(Pipeline):
    counts: Counter[str]

    def pipeline_execute_command(self, *args: Any, **options: Any) -> Any:
        self.counts[str(args[0]).upper()] += 1
        return super().pipeline_execute_command(*args, **options)


class CountingRedis(redis.Redis):
    """Counts the commands sent (pipelined ones too): HMGET is one job record read by a list."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter[str] = Counter()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.counts[str(args[0]).upper()] += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        pipe = CountingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.counts = self.counts
        return pipe


@pytest.fixture
def client(service_env: ServiceEnv) -> CountingRedis:
    return CountingRedis.from_url(service_env.redis_url)


@pytest.fixture
def store(service_env: ServiceEnv, client: CountingRedis) -> JobStore:
    return JobStore(client, prefix=service_env.key_prefix, retention_seconds=3600)


def create(store: JobStore) -> str:
    job_id, _ = store.create(TENANT, SPEC, body_hash="h")
    return job_id


def run_to(store: JobStore, job_id: str, status: JobStatus) -> None:
    """The job's status moves as its units would move it (their scripts move the index the same way; the
    unit store's tests follow those)."""
    assert store.transition(job_id, (JobStatus.QUEUED,), JobStatus.RUNNING)[0] == "ok"
    if status != JobStatus.RUNNING:
        assert store.transition(job_id, (JobStatus.RUNNING,), status)[0] == "ok"


def ids(store: JobStore, status: JobStatus | None = None, limit: int = 20) -> list[str]:
    """Every id of the filtered list, following the cursor."""
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list(TENANT, status=status, limit=limit, cursor=cursor)
        seen += [view.id for view in page.data]
        assert all(status is None or view.status == status for view in page.data)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def test_a_filtered_page_reads_only_records_of_that_status(store, client):
    """1,500 jobs of other statuses and 15 failed ones spread among them: a page of 5 failed jobs reads 5
    records (the scan of the tenant's whole index read about 500 of them)."""
    failed: list[str] = []
    queued: list[str] = []
    for n in range(1515):
        job_id = create(store)
        if n % 101 == 50:
            run_to(store, job_id, JobStatus.FAILED)
            failed.append(job_id)
        elif n % 3:
            run_to(store, job_id, JobStatus.SUCCEEDED)
        else:
            queued.append(job_id)
    store.list(TENANT, status=JobStatus.FAILED, limit=1)  # builds the marker once; not what is measured
    client.counts.clear()
    page = store.list(TENANT, status=JobStatus.FAILED, limit=5)
    assert [view.id for view in page.data] == failed[::-1][:5]
    assert client.counts["HMGET"] == 5, client.counts
    assert sum(client.counts.values()) <= 12, client.counts
    assert ids(store, JobStatus.FAILED, limit=4) == failed[::-1]
    assert ids(store, JobStatus.QUEUED, limit=200) == queued[::-1]
    assert len(ids(store, limit=500)) == 1515


def test_the_index_follows_every_status_change(store):
    jobs = [create(store) for _ in range(6)]
    assert ids(store, JobStatus.QUEUED) == jobs[::-1]
    store.cancel(jobs[0])
    run_to(store, jobs[1], JobStatus.RUNNING)
    run_to(store, jobs[2], JobStatus.SUCCEEDED)
    run_to(store, jobs[3], JobStatus.FAILED)
    run_to(store, jobs[4], JobStatus.FAILED)
    assert ids(store, JobStatus.QUEUED) == [jobs[5]]
    assert ids(store, JobStatus.CANCELED) == [jobs[0]]
    assert ids(store, JobStatus.RUNNING) == [jobs[1]]
    assert ids(store, JobStatus.SUCCEEDED) == [jobs[2]]
    assert ids(store, JobStatus.FAILED) == [jobs[4], jobs[3]]
    assert store.cancel(jobs[2])[0] == "refused"  # a refused move leaves the index alone
    assert ids(store, JobStatus.SUCCEEDED) == [jobs[2]] and ids(store, JobStatus.CANCELED) == [jobs[0]]
    run_to(store, jobs[5], JobStatus.RUNNING)
    store.cancel(jobs[5])
    assert ids(store, JobStatus.RUNNING) == [jobs[1]] and ids(store, JobStatus.CANCELED) == [jobs[5], jobs[0]]


def test_deleted_and_expired_jobs_leave_the_index(store, client, service_env):
    jobs = [create(store) for _ in range(4)]
    for job_id in jobs:
        run_to(store, job_id, JobStatus.FAILED)
    index = f"{service_env.key_prefix}:tenant:{TENANT}:jobs:failed"
    store.delete(jobs[0])
    client.delete(f"{service_env.key_prefix}:job:{jobs[1]}")  # the record expired
    assert ids(store, JobStatus.FAILED) == [jobs[3], jobs[2]]
    assert {member.decode() for member in client.zrange(index, 0, -1)} == {jobs[2], jobs[3]}
    assert 0 < client.ttl(index) <= 2 * 3600  # the index expires with the tenant's index of all jobs


def test_jobs_stored_before_the_status_index_are_indexed_on_the_first_filtered_list(store, client, service_env):
    jobs = [create(store) for _ in range(7)]
    for job_id in jobs[:5]:
        run_to(store, job_id, JobStatus.SUCCEEDED)
    base = f"{service_env.key_prefix}:tenant:{TENANT}:jobs"
    client.delete(*(f"{base}:{status.value}" for status in JobStatus))  # as a store of the last release left it
    client.delete(f"{base}:by-status-built")
    assert ids(store, JobStatus.SUCCEEDED, limit=2) == jobs[:5][::-1]
    assert ids(store, JobStatus.QUEUED) == jobs[5:][::-1]
    run_to(store, jobs[5], JobStatus.FAILED)
    assert ids(store, JobStatus.QUEUED) == [jobs[6]] and ids(store, JobStatus.FAILED) == [jobs[5]]


def test_another_tenants_jobs_are_not_listed(store):
    mine = create(store)
    theirs, _ = store.create("other", SPEC, body_hash="h")
    assert ids(store, JobStatus.QUEUED) == [mine]
    assert [view.id for view in store.list("other", status=JobStatus.QUEUED).data] == [theirs]
