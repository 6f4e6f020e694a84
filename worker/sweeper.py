"""The retention sweep's thread: each worker process deletes expired results and checkpoints every
`NARRATE_STORAGE_SWEEP_INTERVAL_SECONDS`, so a local install (the file backend has no lifecycle rules)
does not grow without bound. What is swept, and what never is, is `shared.retention`'s."""

from __future__ import annotations

import logging
import threading
import time

from shared.retention import sweep_expired
from shared.services import Services
from shared.storage import LocalStorage

log = logging.getLogger(__name__)


def start_sweeper(services: Services) -> threading.Thread | None:
    """A daemon thread sweeping now and then every interval; None when the interval is 0 or storage is
    S3, whose lifecycle rule expires the same prefixes without every worker listing the bucket."""
    interval = services.settings.storage_sweep_interval_seconds
    if interval <= 0 or not isinstance(services.storage, LocalStorage):
        return None

    def loop() -> None:
        while True:  # a daemon thread: it ends with its process
            try:
                sweep_expired(services.storage, retention_seconds=services.settings.job_retention_seconds)
            except Exception:  # storage down for a while: try again next time
                log.exception("retention sweep failed")
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="narrate-retention-sweep", daemon=True)
    thread.start()
    return thread
