"""`eval "$(python -m devstack.redis_for_tests)"`: make sure the test suite has a Redis.

Prints shell assignments: nothing when a Redis already answers at NARRATE_TEST_REDIS_URL (default
redis://127.0.0.1:6379/0), else it starts a throw-away redis-server on a free port, in the background,
and prints its URL and pid so the caller can stop it.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time

from devstack.stack import find_redis_server, redis_answers

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def main() -> int:
    url = os.environ.get("NARRATE_TEST_REDIS_URL", DEFAULT_URL)
    if redis_answers(url):
        return 0
    binary, source = find_redis_server()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="narrate-test-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 15
    while not redis_answers(url, timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            print(f"redis-server ({source}) did not start", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"no Redis answered; started {source} on port {port} for the tests", file=sys.stderr)
    print(f"export NARRATE_TEST_REDIS_URL={shlex.quote(url)} NARRATE_TEST_REDIS_PID={proc.pid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
