"""Leases: one holder at a time for a piece of work, with fencing.

A lease is a Redis string whose value names its holder (`<random token>@<host>:<pid>`) and whose TTL is
the lease; the holder renews it while it works (`LeaseKeeper`). Every write of the holder runs in a Lua
script that first checks the lease still names it (`guard`), so a holder that stalled past its lease
and was replaced can no longer change anything: its next write raises `LeaseLost`. A job's claim is one
lease today (shared/store.py); the scheduler will hold leases on smaller units with the same pieces.

A holder whose process is gone from this host (a prefork child killed mid-job) can be replaced at once
(`holder_is_dead_here`), with a compare-and-set on its exact value, instead of waiting out its lease.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

LOST = -1
"""What a guarded script returns when the lease no longer names the caller."""


class LeaseLost(Exception):
    """The caller's lease expired and another holder took over: stop, and touch nothing shared."""


def guard(lease_key: str, token_arg: str) -> str:
    """Lua that returns `LOST` unless the lease (`KEYS[i]` expression `lease_key`) holds the token in
    `ARGV[j]` expression `token_arg`; put it first in every script a holder writes through."""
    return f"if redis.call('GET', {lease_key}) ~= {token_arg} then return {LOST} end\n"


RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


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


def holder_is_dead_here(token: str) -> bool:
    """Whether the lease's holder was a process of this host that no longer runs (its lease can be taken
    over now). A pid reused since is taken for alive: then the lease is waited out, which is safe."""
    holder = Holder.parse(token)
    if holder is None or holder.host != socket.gethostname() or holder.pid == os.getpid():
        return False
    return not _alive(holder.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped by its parent is a zombie: gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


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
