"""Request bodies sent with `Content-Encoding: gzip`, decoded as they are read, within the body limit.

`ApiRequest` is the app's request class: its `stream` (what `get_data`, `get_json` and form parsing
read) is the body as the client meant it. A gzip body is decompressed in pieces of at most
`PIECE_BYTES`, and `max_content_length` (NARRATE_MAX_BODY_BYTES, or a route's own) bounds the
DECOMPRESSED bytes: a small body that inflates past it (a zip bomb) is a 413 once the limit is passed,
never held whole. A body that is not valid gzip is 400 `invalid_encoding`; any other content coding is
415 naming it. The compressed bytes stay bounded as before (werkzeug's limit on the raw stream; the
gunicorn worker's before the app runs). A chunked body works wherever the server terminates the input
(`wsgi.input_terminated`: gunicorn, werkzeug's server), as for a plain body.
"""

from __future__ import annotations

import io
import zlib
from typing import IO, TYPE_CHECKING, cast

from flask import Request
from werkzeug.utils import cached_property
from werkzeug.wsgi import get_input_stream

from api.errors import ApiError

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

GZIP_CODINGS = frozenset({"gzip", "x-gzip"})
"""Content codings decoded (`x-gzip` is gzip's old name, RFC 9110 8.4.1.3)."""
PIECE_BYTES = 256 * 1024
"""Most decompressed bytes produced per step while a body is read whole."""
_READ_BYTES = 64 * 1024
"""Compressed bytes read from the client's stream at a time."""
_GZIP_WBITS = 31  # zlib's window bits for a gzip header and trailer


def content_coding(header: str | None) -> str | None:
    """The one coding of a Content-Encoding header to undo (`gzip`), or None for none (`identity`);
    a 415 naming any other (or more than one)."""
    codings = [part.strip().lower() for part in (header or "").split(",")]
    codings = [coding for coding in codings if coding and coding != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in GZIP_CODINGS:
        return "gzip"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Encoding {header!r} is not supported: send the body as it is, or gzip-compressed with "
        "Content-Encoding: gzip.",
        headers={"Accept-Encoding": "gzip"},
    )


class GzipBody(io.RawIOBase):
    """The decompressed bytes of a gzip stream (one or more members), at most `limit` of them."""

    def __init__(self, source: IO[bytes], limit: int | None) -> None:
        self._source = source
        self._limit = limit
        self._decoder = zlib.decompressobj(wbits=_GZIP_WBITS)
        self._pending = b""  # compressed bytes the decoder has not taken yet
        self._started = False  # any compressed byte read at all
        self._produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0  # (a max_length of 0 would mean "no limit" to zlib)
        data = self._next(len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        out = bytearray()
        while data := self._next(PIECE_BYTES):
            out += data
        return bytes(out)

    def _next(self, most: int) -> bytes:
        """Up to `most` more decompressed bytes; b"" at the end of the body."""
        while True:
            if not self._pending:
                self._pending = self._source.read(_READ_BYTES)
                if not self._pending:
                    if self._decoder.eof and self._started:
                        return b""
                    raise _corrupt("the body ends before its gzip stream does")
                self._started = True
            elif self._decoder.eof:  # another member follows (gzip allows several, concatenated)
                self._decoder = zlib.decompressobj(wbits=_GZIP_WBITS)
            try:
                data = self._decoder.decompress(self._pending, most)
            except zlib.error as exc:
                raise _corrupt(str(exc).removeprefix("Error -3 while decompressing data: ")) from exc
            self._pending = self._decoder.unconsumed_tail or self._decoder.unused_data
            if data:
                self._produced += len(data)
                if self._limit is not None and self._produced > self._limit:
                    raise ApiError(
                        413,
                        "payload_too_large",
                        f"The request body is larger than the configured maximum ({self._limit} bytes) once "
                        "decompressed.",
                    )
                return data


def _corrupt(problem: str) -> ApiError:
    return ApiError(400, "invalid_encoding", f"The body is not valid gzip (Content-Encoding: gzip): {problem}.")


class ApiRequest(Request):
    """Flask's request, whose body stream is decoded from its Content-Encoding."""

    @cached_property
    def stream(self) -> IO[bytes]:
        if self.shallow:
            raise RuntimeError("This request was created with 'shallow=True': its body may not be read.")
        raw = get_input_stream(self.environ, max_content_length=self.max_content_length)
        if content_coding(self.headers.get("Content-Encoding")) is None:
            return raw
        return cast(IO[bytes], GzipBody(raw, self.max_content_length))  # a RawIOBase, as werkzeug's own
