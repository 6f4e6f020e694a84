"""A fault-injecting TCP proxy for tests: a real socket server on 127.0.0.1 in front of another server
(the moto S3 server), whose behaviour the test switches while a real worker process talks through it.

Faults (`Fault`): `PASS` forwards; `REFUSE` closes every open connection and every new one at once (the
server is down); `CUT` drops the open connections once and lets new ones through (a blip); `HOLD` drops
the open connections and accepts new ones without ever answering (a hung server: the client's read
timeout is what ends each try).

With `record=True` it keeps the bytes it forwarded upstream, so a test can read a request as it was
sent (its headers, its chunked and compressed body).

An outage can start at an exact point of a job: `on_request(pattern, fault, seconds)` watches the HTTP
request lines going upstream (plain HTTP, so the proxy can read them) and, at the first request that
matches, drops that request and switches to `fault` for `seconds`.
"""

from __future__ import annotations

import contextlib
import enum
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_REQUEST_LINE = re.compile(rb"(GET|PUT|POST|DELETE|HEAD) (\S+) HTTP/1\.[01]\r\n")


class Fault(enum.Enum):
    PASS = "pass"
    REFUSE = "refuse"
    CUT = "cut"
    HOLD = "hold"


@dataclass
class Trigger:
    pattern: re.Pattern[bytes]
    fault: Fault
    seconds: float
    skip: int = 0
    """Matching requests let through before the one that starts the outage."""
    fired: threading.Event = field(default_factory=threading.Event)
    fired_at: float = 0.0
    request: str = ""
    """The request line that started the outage."""


class FaultProxy:
    def __init__(self, upstream_url: str, *, record: bool = False) -> None:
        parts = urlsplit(upstream_url)
        self.record = record
        self.upstream_bytes = bytearray()
        """With `record`, every byte sent upstream, in order (a test reads the requests as they went)."""
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._fault = Fault.PASS
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._triggers: list[Trigger] = []
        self._timer: threading.Timer | None = None
        self._closed = threading.Event()
        self.refused = 0
        """Connections refused, held or cut by a fault so far (a test checks the fault was felt)."""
        threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True).start()

    # --- control ------------------------------------------------------------------------------------
    @property
    def fault(self) -> Fault:
        return self._fault

    def set(self, fault: Fault) -> None:
        with self._lock:
            self._fault = fault
            if fault is not Fault.PASS:
                self._drop_open()

    def outage(self, fault: Fault, seconds: float) -> None:
        """Switch to `fault` now and back to `PASS` after `seconds`."""
        self.set(fault)
        with self._lock:
            if self._timer:
                self._timer.cancel()
            self._timer = threading.Timer(seconds, self.set, args=(Fault.PASS,))
            self._timer.daemon = True
            self._timer.start()

    def on_request(self, pattern: str, fault: Fault, seconds: float, *, skip: int = 0) -> Trigger:
        """Start an outage of `seconds` at the first request (after `skip` matching ones) whose request
        line (`METHOD /path?query HTTP/1.1`) matches the regular expression `pattern`."""
        trigger = Trigger(re.compile(pattern.encode()), fault, seconds, skip)
        with self._lock:
            self._triggers.append(trigger)
        return trigger

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._timer:
                self._timer.cancel()
            self._drop_open()
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------------------
    def _drop_open(self) -> None:
        for sock in list(self._open):
            _shut(sock)
        self.refused += len(self._open)
        self._open.clear()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                fault = self._fault
            if fault is Fault.REFUSE:
                self.refused += 1
                _shut(client)
            elif fault is Fault.HOLD:
                self.refused += 1
                with self._lock:
                    self._open.add(client)  # never read, never answered; dropped when the fault changes
            else:
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            _shut(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.update((client, upstream))
        threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
        self._pump(client, upstream, True)

    def _pump(self, source: socket.socket, target: socket.socket, to_upstream: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if to_upstream and self._fires(data):
                    break  # the matching request is dropped, as the outage begins
                if to_upstream and self.record:
                    with self._lock:
                        self.upstream_bytes += data
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(target)
            _shut(source)
            _shut(target)

    def _fires(self, data: bytes) -> bool:
        match = _REQUEST_LINE.search(data)
        if not match:
            return False
        with self._lock:
            for trigger in self._triggers:
                if trigger.fired.is_set() or not trigger.pattern.search(match.group(0)):
                    continue
                if trigger.skip > 0:
                    trigger.skip -= 1
                    continue
                trigger.request = match.group(0).decode(errors="replace").strip()
                trigger.fired_at = time.monotonic()
                trigger.fired.set()
                fault, seconds = trigger.fault, trigger.seconds
                break
            else:
                return False
        self.outage(fault, seconds)
        return True


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
