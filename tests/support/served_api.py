"""The API alone under the real gunicorn (no worker), on a fresh key prefix and storage of the test run."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.stack import LocalStack
from tests.conftest import ServiceEnv


@contextmanager
def served_api(
    redis_url: str, key_prefix: str, root: Path, extra: dict[str, str], *, api_workers: int = 1
) -> Iterator[tuple[LocalStack, ServiceEnv]]:
    """(the running stack, the settings it serves) with `extra` settings on a free port."""
    prefix = f"{key_prefix}-{uuid.uuid4().hex[:6]}"
    env = ServiceEnv(redis_url, prefix, f"{prefix}-q", f"file://{root / 'storage'}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with LocalStack(
        port=port, api_workers=api_workers, worker=False, env={**env.env(), **extra}, log_dir=root / "logs", echo=False
    ) as running:
        yield running, env
