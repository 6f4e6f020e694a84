"""Leases: one holder at a time for a piece of work, with fencing.

The unit store (shared/units.py) leases each unit to a token naming its holder (`<random
token>@<host>:<pid>`); the holder renews it while it works (`LeaseKeeper`). Every write of the holder
runs in a Lua script that first checks the unit is still leased to that token, so a holder that
stalled past its lease and was replaced can no longer change anything: its next write raises
`LeaseLost`. This module holds the pieces that are not about units.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

log = logging.getLogger(__name__)

LOST = -1
"""What a guarded script returns when the lease no longer names the caller."""


class LeaseLost(Exception):
    """The caller's lease expired and another holder took over: stop, and touch nothing shared."""


def new_token() -> str:
    """A holder value unique to this claim, naming the process that holds it."""
    return f"{secrets.token_hex(8)}@{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int

    @classmethod
    def parse(cls, token: str) -> Holder | None:
        try:
            _, where = token.split("@", 1)
            host, pid = where.rsplit(":", 1)
            return cls(host, int(pid))
        except ValueError:
            return None


class LeaseKeeper:
    """Renews a lease every `period` seconds in a daemon thread while a `with` block runs. A renewal that
    finds the lease gone sets `lost` and stops (the holder's next guarded write raises `LeaseLost`); one
    that cannot reach Redis is tried again next period (the lease expires if Redis stays away)."""

    def __init__(self, renew: Callable[[], bool], period: float) -> None:
        self._renew = renew
        self._period = period
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                if not self._renew():
                    log.info("lease no longer held (taken over, or the work ended)")
                    self.lost.set()
                    return
            except Exception:
                log.warning("lease renewal failed; retrying", exc_info=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
