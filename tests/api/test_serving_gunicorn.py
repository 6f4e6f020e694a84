"""The API under the real gunicorn with the project's config (deploy/gunicorn.conf.py, as narrate-stack
and compose run it): slow clients hold nothing, slow or large bodies are cut off, and gunicorn's own
errors come in the JSON error shape."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.stack import LocalStack
from tests.conftest import AUTH
from tests.support.served_api import served_api

pytestmark = pytest.mark.slow

BODY_TIMEOUT = 4.0


@pytest.fixture(scope="module")
def stack(redis_url: str, key_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("serving")
    extra = {"NARRATE_REQUEST_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT), "NARRATE_MAX_BODY_BYTES": "100000"}
    with served_api(redis_url, key_prefix, root, extra, api_workers=2) as (running, _):
        yield running


def _connect(stack: LocalStack) -> socket.socket:
    return socket.create_connection((stack.host, stack.port), timeout=30)


def _head(path: str, length: int, *extra: str) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: test",
        f"Authorization: {AUTH['Authorization']}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length (all of this API's are)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def _error(body: bytes) -> dict:
    error = json.loads(body)["error"]
    assert set(error) <= {"code", "message", "field"} and error["message"]
    return error


def test_slow_clients_trickling_bodies_do_not_stall_health_or_listing(stack):
    """20 clients each sending a body a byte a second (more than gthread's 2 x 4 threads): /healthz and a
    job list still answer at once."""
    stop = threading.Event()
    body = json.dumps({"inputs": [{"text": "A slow line. " * 20}]}).encode()
    sockets = [_connect(stack) for _ in range(20)]

    def trickle(sock: socket.socket) -> None:
        try:
            sock.sendall(_head("/v1/jobs", len(body)))
            for byte in body:
                if stop.wait(1.0):
                    return
                sock.sendall(bytes([byte]))
        except OSError:
            pass

    threads = [threading.Thread(target=trickle, args=(sock,), daemon=True) for sock in sockets]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)  # every slow client has sent its headers and is in its body
        for _ in range(3):
            for path, headers in (("/healthz", {}), ("/v1/jobs?limit=5", AUTH), ("/v1/jobs?status=failed", AUTH)):
                started = time.monotonic()
                response = requests.get(f"{stack.url}{path}", headers=headers, timeout=5)
                elapsed = time.monotonic() - started
                assert response.status_code == 200, (path, response.text)
                assert elapsed < 1.0, f"{path} took {elapsed:.2f} s behind slow clients"
    finally:
        stop.set()
        for sock in sockets:
            sock.close()
        for thread in threads:
            thread.join(5)


def test_a_body_slower_than_the_timeout_gets_408_and_is_dropped(stack):
    with _connect(stack) as sock:
        sock.sendall(_head("/v1/jobs", 500) + b'{"inputs": [')
        started = time.monotonic()
        sock.settimeout(BODY_TIMEOUT + 10)
        for _ in range(int(BODY_TIMEOUT) + 3):  # keep trickling: only the deadline can stop it
            try:
                sock.sendall(b" ")
            except OSError:
                break
            time.sleep(0.5)
            if time.monotonic() - started > BODY_TIMEOUT + 0.5:
                break
        status, headers, body = _read_response(sock)
        elapsed = time.monotonic() - started
        assert status == 408 and headers["content-type"] == "application/json"
        assert _error(body)["code"] == "request_timeout"
        assert BODY_TIMEOUT - 0.5 < elapsed < BODY_TIMEOUT + 3
        assert sock.recv(1024) == b""  # the server closed the connection
    listing = requests.get(f"{stack.url}/v1/jobs", headers=AUTH, timeout=5).json()
    assert listing["data"] == []  # nothing was stored


def test_headers_sent_slower_than_the_keepalive_limit_are_dropped(stack):
    """gunicorn's `keepalive` (5 s in deploy/gunicorn.conf.py) bounds the request line and headers."""
    head = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 100
    with _connect(stack) as sock:
        started = time.monotonic()
        closed = False
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.25)
            if time.monotonic() - started > 12:
                break
        if not closed:
            sock.settimeout(5)
            try:
                closed = sock.recv(1024) == b""
            except ConnectionResetError:
                closed = True
        assert closed and time.monotonic() - started < 11


def test_a_body_over_the_limit_is_refused_before_it_is_sent(stack):
    with _connect(stack) as sock:
        sock.sendall(_head("/v1/jobs", 10_000_000))
        status, headers, body = _read_response(sock)
    assert status == 413 and headers["content-type"] == "application/json"
    assert _error(body)["code"] == "payload_too_large"


def test_expect_100_continue_is_answered_once_and_the_job_accepted(stack):
    body = json.dumps({"inputs": [{"text": "Hello there."}]}).encode()
    with _connect(stack) as sock:
        sock.sendall(_head("/v1/jobs", len(body), "Expect: 100-continue"))
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, _, answer = _read_response(sock)
    assert status == 202, answer
    assert json.loads(answer)["status"] == "queued"


GUNICORN_ERRORS = [
    ("request line too long", f"GET /{'a' * 5000} HTTP/1.1\r\nHost: t\r\n\r\n", 414, "uri_too_long"),
    ("header too large", f"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {'a' * 9000}\r\n\r\n", 431, "headers_too_large"),
    ("too many headers", "GET /healthz HTTP/1.1\r\nHost: t\r\n" + "".join(f"X-{n}: y\r\n" for n in range(120)) + "\r\n",
     431, "headers_too_large"),
    ("malformed request line", "GET\r\n\r\n", 400, "bad_request"),
    ("invalid header name", "GET /healthz HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400, "bad_request"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "raw", "status", "code"), GUNICORN_ERRORS, ids=[e[0] for e in GUNICORN_ERRORS])
def test_gunicorn_errors_are_in_the_json_error_shape(stack, what, raw, status, code):
    with _connect(stack) as sock:
        sock.sendall(raw.encode())
        got, headers, body = _read_response(sock)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert _error(body)["code"] == code


def test_a_stack_log_shows_no_monkey_patch_warning(stack):
    """The worker class is imported by the master before gevent patches: it must not drag ssl in early."""
    log = Path(stack.log_dir or ".", "api.log").read_text(errors="replace")
    assert "MonkeyPatchWarning" not in log
