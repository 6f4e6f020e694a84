"""A real HTTP receiver on 127.0.0.1, a Standard Webhooks verifier written from the specification
(independent of the `standardwebhooks` library the service signs with), and the webhooks worker.

Verification as the spec states it: the secret is the base64 after `whsec_`; the signed content is
`{webhook-id}.{webhook-timestamp}.{body}`; the signature is HMAC-SHA256 of it, base64, sent as `v1,<sig>`
among space-separated signatures; the timestamp must be within a tolerance of now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conftest import REPO, ServiceEnv

TOLERANCE_SECONDS = 300


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes) -> bool:
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id, timestamp, signatures = (lowered.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and timestamp and signatures) or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    for item in signatures.split(" "):
        version, _, signature = item.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return True
    return False


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Answers POSTs with the next status of `script[path]` (then 200), recording every request."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                    queue = receiver.script.get(self.path, [])
                    status = queue.pop(0) if queue else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/redirected")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WebhookWorker:
    """The real webhooks worker process (`worker.webhook_app`, thread pool) on the test's queue."""

    def __init__(self, env: ServiceEnv, log_path: Path, extra: dict[str, str] | None = None) -> None:
        child_env = {**os.environ, **env.env(), **(extra or {}), "PYTHONUNBUFFERED": "1"}
        child_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        queue = env.settings().webhook_queue_name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.webhook_app:app", "worker", "-Q", queue,
             "--pool", "threads", "--concurrency", "4", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-l", "INFO", "-n", f"webhooks-{uuid.uuid4().hex[:6]}@%h"],
            cwd=REPO, env=child_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.time() + 60
        while b"ready." not in log_path.read_bytes():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"webhooks worker did not start:\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        self._log.close()
