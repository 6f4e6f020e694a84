"""A tenant's job list filtered by status, with 20,000 jobs: the per-status index against the scan it replaced.

Stores 20,000 jobs of one tenant in the real Redis (1% failed, spread over time; 70% succeeded; the rest
queued) under a throw-away key prefix, then times pages of `?status=failed` both ways in the same run:
`before` is the former JobStore.list (reads the tenant's whole index newest first, filtering each record),
`after` is JobStore.list on the status index. Prints the figures and writes bench/results/job_list.json
with the machine. Run: .venv/bin/python bench/job_list.py [--jobs 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.jobs import JobCreate, JobStatus  # noqa: E402
from shared.store import _SUMMARY_FIELDS, JobStore  # noqa: E402

TENANT = "bench"
SPEC = JobCreate(inputs=[{"text": "Hello there."}])


def scan_list(store: JobStore, client: redis.Redis, prefix: str, status: JobStatus, limit: int = 20) -> tuple[int, int]:
    """The former filtered list: (jobs found, records read)."""
    index = f"{prefix}:tenant:{TENANT}:jobs"
    upper: str = "+inf"
    found = read = 0
    exhausted = False
    while found < limit and not exhausted:
        batch = client.zrevrangebyscore(index, upper, "-inf", start=0, num=max(limit * 2, 50), withscores=True)
        exhausted = len(batch) < max(limit * 2, 50)
        pipe = client.pipeline()
        for member, _ in batch:
            pipe.hmget(f"{prefix}:job:{member.decode()}", _SUMMARY_FIELDS)
        rows = pipe.execute()
        read += len(rows)
        for (member, score), values in zip(batch, rows, strict=True):
            upper = f"({score!r}"
            view = store._to_view(member.decode(), values, TENANT)
            if view is not None and view.status == status:
                found += 1
                if found == limit:
                    break
        if not batch:
            exhausted = True
    return found, read


def median_ms(runs: int, work) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--redis-url", default=os.environ.get("NARRATE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    prefix = f"bench-joblist-{uuid.uuid4().hex[:8]}"
    store = JobStore(client, prefix=prefix, retention_seconds=7 * 24 * 3600)
    try:
        started = time.perf_counter()
        for n in range(args.jobs):
            job_id, _ = store.create(TENANT, SPEC, body_hash="h")
            if n % 100 == 50:
                store.claim(job_id, max_attempts=3)
                store.finish(job_id, JobStatus.FAILED)
            elif n % 10 < 7:
                store.claim(job_id, max_attempts=3)
                store.finish(job_id, JobStatus.SUCCEEDED)
        setup_s = time.perf_counter() - started
        store.list(TENANT, status=JobStatus.FAILED, limit=1)  # the once-per-tenant marker, as in service

        _, before_reads = scan_list(store, client, prefix, JobStatus.FAILED)
        before_ms = median_ms(5, lambda: scan_list(store, client, prefix, JobStatus.FAILED))
        page = store.list(TENANT, status=JobStatus.FAILED, limit=20)
        after_ms = median_ms(5, lambda: store.list(TENANT, status=JobStatus.FAILED, limit=20))
        third = store.list(TENANT, status=JobStatus.FAILED, limit=20, cursor=page.next_cursor)
        third = store.list(TENANT, status=JobStatus.FAILED, limit=20, cursor=third.next_cursor)
        after_third_ms = median_ms(
            5, lambda: store.list(TENANT, status=JobStatus.FAILED, limit=20, cursor=third.next_cursor)
        )
        all_ms = median_ms(5, lambda: store.list(TENANT, limit=20))
        # No job of the status at all (canceled): the scan reads the tenant's whole index.
        _, none_reads = scan_list(store, client, prefix, JobStatus.CANCELED)
        none_before_ms = median_ms(3, lambda: scan_list(store, client, prefix, JobStatus.CANCELED))
        none_after_ms = median_ms(3, lambda: store.list(TENANT, status=JobStatus.CANCELED, limit=20))
        result = {
            "benchmark": "job_list",
            "jobs": args.jobs,
            "failed_jobs": len(range(50, args.jobs, 100)),
            "setup_seconds": round(setup_s, 1),
            "page": "?status=failed&limit=20, median of 5",
            "before_scan_ms": before_ms,
            "before_records_read": before_reads,
            "after_index_ms": after_ms,
            "after_records_read": len(page.data),
            "after_index_fourth_page_ms": after_third_ms,
            "unfiltered_page_ms": all_ms,
            "no_match_before_scan_ms": none_before_ms,
            "no_match_before_records_read": none_reads,
            "no_match_after_index_ms": none_after_ms,
            "machine": {
                "node": platform.node(),
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "redis": client.info("server")["redis_version"],
            },
        }
    finally:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    print(
        f"{args.jobs:,} jobs, a page of 20 failed: before {before_ms} ms ({before_reads:,} records read), "
        f"after {after_ms} ms ({len(page.data)} read); fourth page {after_third_ms} ms; unfiltered {all_ms} ms; "
        f"?status=canceled (none): before {none_before_ms} ms ({none_reads:,} read), after {none_after_ms} ms"
    )
    out = ROOT / "bench" / "results" / "job_list.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
