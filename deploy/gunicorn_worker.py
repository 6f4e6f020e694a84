"""The API's gunicorn worker: gevent, request bodies buffered under a deadline, errors as JSON.

Why not gthread: a thread reads a request body as the client sends it, so a dozen clients trickling
bodies a byte a second held every thread and /healthz timed out behind them. Here every connection
is a greenlet, so a slow client costs a socket and a few kilobytes, not a thread. The body is read
in full (into memory, spilling to a temporary file above 1 MiB) before the application sees it, within
`NARRATE_REQUEST_BODY_TIMEOUT_SECONDS` and up to `NARRATE_MAX_BODY_BYTES`: a slower one gets 408, a
larger one 413 before any of it is read, as a buffering reverse proxy (nginx) would answer. The
application itself then never waits on a client. A chunked body is buffered the same way (413 once it
passes the limit) and reaches the app with `wsgi.input_terminated`; for a gzip body
(`Content-Encoding: gzip`) this limit bounds the compressed bytes, and the app bounds the decompressed
ones (api/body_encoding.py).

gunicorn's own answers (400 malformed request, 414 request line, 431 headers too large, ...) come
from `gunicorn.util.write_error` as HTML; this worker replaces that function in its process so they
are in the API's one error shape, with gunicorn's own choice of status for each problem.

This module is loaded by the gunicorn master (`worker_class` in deploy/gunicorn.conf.py) before the
worker forks and monkey-patches, so it imports nothing of the application at module level.
"""

from __future__ import annotations

import json
import tempfile
from typing import IO, Any

import gevent
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

SPOOL_BYTES = 1024 * 1024
"""Bodies above this are buffered in a temporary file instead of memory."""

ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
}


def json_error(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response in the API's error shape; the connection closes after it."""
    code = ERROR_CODES.get(status, "http_error")
    body = json.dumps({"error": {"code": code, "message": message[:300] or reason}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for `gunicorn.util.write_error` (same signature), writing JSON instead of HTML."""
    util.write_nonblock(sock, json_error(status_int, reason, mesg))


class BodyRejected(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


class ApiWorker(GeventWorker):
    """gunicorn's gevent worker that buffers each request body before the application runs."""

    max_body_bytes = 8 * 1024 * 1024
    body_timeout = 60.0

    def init_process(self) -> None:
        util.write_error = write_json_error  # every gunicorn error page of this process is JSON
        super().init_process()

    def load_wsgi(self) -> None:
        # After monkey patching (GeventWorker.init_process patches first): the settings may be read now.
        from shared.settings import get_settings

        settings = get_settings()
        self.max_body_bytes = settings.max_body_bytes
        self.body_timeout = settings.request_body_timeout_seconds
        super().load_wsgi()

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        try:
            req.body = self.buffer_body(req, sock)
        except BodyRejected as exc:
            self.log.warning("Rejected body from ip=%s: %s", addr[0] if addr else "", exc.message)
            util.write_nonblock(sock, json_error(exc.status, exc.reason, exc.message))
            # The rest of the body is never read: half-close and linger briefly, so the unread bytes do
            # not make the kernel reset the connection before the client has read the answer.
            getattr(util, "close_graceful", util.close)(sock)
            raise StopIteration from exc
        return super().handle_request(listener_name, req, sock, addr)

    def buffer_body(self, req: Any, sock: Any) -> IO[bytes]:
        """The whole body, read within `body_timeout` seconds; BodyRejected when too slow or too large."""
        length = next((int(value) for name, value in req.headers if name == "CONTENT-LENGTH"), None)
        if length is not None and length > self.max_body_bytes:
            raise BodyRejected(413, "Content Too Large", "The request body is larger than the configured maximum.")
        if getattr(req, "_expected_100_continue", False):
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            req._expected_100_continue = False  # sent: gunicorn must not send it again
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - it becomes wsgi.input
        received = 0
        try:
            with gevent.Timeout(self.body_timeout):
                while chunk := req.body.read(64 * 1024):
                    received += len(chunk)
                    if received > self.max_body_bytes:
                        raise BodyRejected(
                            413, "Content Too Large", "The request body is larger than the configured maximum."
                        )
                    spool.write(chunk)
        except gevent.Timeout as exc:
            spool.close()
            raise BodyRejected(
                408,
                "Request Timeout",
                f"The request body did not arrive within {self.body_timeout:g} s "
                f"({received} bytes received); send it at once.",
            ) from exc
        except BodyRejected:
            spool.close()
            raise
        spool.seek(0)
        return spool
