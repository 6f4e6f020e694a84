"""Process helpers for tests that start real services: free ports, process trees, liveness."""

from __future__ import annotations

import socket
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, grandchildren...), read from /proc."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        children = Path(f"/proc/{current}/task/{current}/children")
        try:
            kids = [int(p) for p in children.read_text().split()]
        except OSError:
            continue
        found.extend(kids)
        pending.extend(kids)
    return found


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (a reaped-later corpse counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
