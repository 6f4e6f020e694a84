"""A small Python client for the narrate HTTP API (used by the `narrate` CLI and the demo).

It speaks only HTTP: no imports from the service, so it can be copied into any script or CI job.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit
from urllib.request import url2pathname

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

DEFAULT_URL = "http://127.0.0.1:8080"
FINISHED = frozenset({"succeeded", "failed", "canceled"})
RETRY_STATUSES = (502, 503, 504)
"""Answers of a proxy or an API that could not reach its store or queue: worth asking again."""
RETRY_BACKOFF = 0.3
"""urllib3's backoff factor: a repeat waits 0, then 2 x, 4 x ... this many seconds."""

COMPRESS_ABOVE = 16 * 1024
"""JSON bodies larger than this many bytes are sent gzip-compressed and chunked; smaller ones as they are."""
_PIECE_BYTES = 64 * 1024
"""JSON bytes gathered before each gzip step (what one chunk of the upload is made from)."""

Job = dict[str, Any]
_ID_BODY = re.compile(r"[A-Za-z0-9_-]{1,128}")
"""What follows an id's prefix (`job_`, `voice_`) in the API's ids: URL-safe characters only."""


class ApiError(Exception):
    """An error answer of the API (`{"error": {"code", "message", "field"}}`), or no answer at all."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        status = f"HTTP {self.status} " if self.status else ""
        return f"{status}{self.code}: {self.message}{where}"


class DownloadError(ApiError):
    """A result could not be fetched, or its bytes do not match the job's sha256."""


class InvalidIdError(ApiError):
    """An argument that is not a job or voice id (nothing was sent)."""


def resource_path(collection: str, prefix: str, resource_id: str, suffix: str = "") -> str:
    """`/v1/{collection}/{id}{suffix}` for a well-formed id (URL-quoted all the same). Anything else is
    refused before a request is made, so an argument such as `../../healthz` never reaches another route."""
    if not (resource_id.startswith(prefix) and _ID_BODY.fullmatch(resource_id.removeprefix(prefix))):
        noun = collection.removesuffix("s")
        raise InvalidIdError(0, "invalid_id", f"{resource_id!r} is not a {noun} id (they look like {prefix}...)")
    return f"/v1/{collection}/{quote(resource_id, safe='')}{suffix}"


def book_options(
    book: Any, author: str | None, narrator: str | None, title: str | None, chapter_files: str | None
) -> dict[str, Any]:
    """The job's `book` field for a `client.books.Book`: given values over the book's own."""
    options: dict[str, Any] = {
        "title": title or book.title,
        "author": author or book.author,
        "narrator": narrator,
        "chapter_files": chapter_files,
    }
    if book.cover is not None:
        options["cover"] = {"media_type": book.cover[1], "data": base64.b64encode(book.cover[0]).decode()}
    return {key: value for key, value in options.items() if value is not None}


def job_path(job_id: str, suffix: str = "") -> str:
    return resource_path("jobs", "job_", job_id, suffix)


def voice_path(voice_id: str, suffix: str = "") -> str:
    return resource_path("voices", "voice_", voice_id, suffix)


def _check_sha256(url: str, actual: str, expected: str | None) -> None:
    if expected and actual != expected:
        raise DownloadError(0, "checksum_mismatch", f"{url} has sha256 {actual}, expected {expected}")


def _error_from_response(response: requests.Response) -> ApiError:
    try:
        body = response.json()
        error = body["error"]
        return ApiError(response.status_code, str(error["code"]), str(error["message"]), error.get("field"))
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:300] or response.reason or "no body"
        return ApiError(response.status_code, "http_error", text)


@dataclass
class Upload:
    """What one attempt sent of a JSON body: its size, the bytes that went out and whether they were gzip."""

    json_bytes: int
    sent_bytes: int
    compressed: bool
    attempt: int


class JsonBody:
    """A JSON request body, encoded anew for each attempt (a streamed body can be sent only once).

    Up to `compress_above` bytes it is sent whole (with a Content-Length); beyond, it is encoded
    incrementally (`JSONEncoder.iterencode`) through gzip and sent as a generator of compressed pieces,
    chunked, with `Content-Encoding: gzip`: a 20,000-line sheet's JSON is never one string in memory, and
    a fifth or less of its size goes over the wire. `on_sent` sees each attempt's `Upload` once its body is out."""

    def __init__(
        self,
        value: Any,
        *,
        compress_above: int = COMPRESS_ABOVE,
        on_sent: Callable[[Upload], None] | None = None,
    ) -> None:
        self.value = value
        self.compress_above = compress_above
        self.on_sent = on_sent
        self.attempts = 0

    def open(self) -> tuple[dict[str, str], bytes | Iterator[bytes]]:
        """The headers and data of one more attempt."""
        self.attempts += 1
        attempt = self.attempts
        # ASCII and compact: escapes keep any lone surrogate for the API to name rather than fail here.
        pieces = json.JSONEncoder(separators=(",", ":"), allow_nan=False).iterencode(self.value)
        head: list[str] = []
        size = 0
        for piece in pieces:
            head.append(piece)
            size += len(piece)
            if size > self.compress_above:
                gzip_headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
                return gzip_headers, self._gzip("".join(head), pieces, attempt)
        whole = "".join(head).encode("ascii")
        self._sent(Upload(len(whole), len(whole), False, attempt))
        return {"Content-Type": "application/json"}, whole

    def _gzip(self, head: str, rest: Iterator[str], attempt: int) -> Iterator[bytes]:
        encoder = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
        json_bytes = sent = 0
        gathered, size = [head], len(head)
        for piece in rest:
            gathered.append(piece)
            size += len(piece)
            if size >= _PIECE_BYTES:
                data = "".join(gathered).encode("ascii")
                json_bytes += len(data)
                gathered, size = [], 0
                if out := encoder.compress(data):
                    sent += len(out)
                    yield out
        data = "".join(gathered).encode("ascii")
        json_bytes += len(data)
        out = encoder.compress(data) + encoder.flush()
        sent += len(out)
        yield out
        self._sent(Upload(json_bytes, sent, True, attempt))

    def _sent(self, upload: Upload) -> None:
        if self.on_sent is not None:
            self.on_sent(upload)


def _retrying_session(methods: frozenset[str], retries: int) -> requests.Session:
    """A session that repeats `methods` on connection errors, timeouts and `RETRY_STATUSES`."""
    retry = Retry(
        total=retries,
        backoff_factor=RETRY_BACKOFF,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=methods,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class ApiClient:
    """Bearer-key client. Retried on connection errors, timeouts and 502/503/504: GET, HEAD and DELETE;
    job submissions (they always carry an Idempotency-Key, so a repeat returns the job the first try
    created); and downloads from presigned URLs (until their body starts). Voice uploads are not
    retried: they have no such key, and a repeat after a lost answer would clone the voice twice. Job
    bodies (submit, estimate) are `JsonBody`s: gzip-streamed when large, encoded anew for each try."""

    MAX_PAGE = 100
    """Largest page the API serves (`limit` of GET /v1/jobs)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
    ) -> None:
        self.base_url = (base_url or os.environ.get("NARRATE_API_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("NARRATE_API_KEY")
        self.timeout = timeout
        self.retries = retries
        self.session = _retrying_session(frozenset({"GET", "HEAD", "DELETE"}), retries)
        self._idempotent_session = _retrying_session(frozenset({"POST"}), retries)
        # JSON bodies are built anew per attempt, so their requests are repeated here, not by urllib3.
        self._body_session = requests.Session()  # requests' default: no retries
        # Presigned URLs carry their own permission: this one never sends our bearer key.
        self._storage_session = _retrying_session(frozenset({"GET"}), retries)
        if self.api_key:
            for session in (self.session, self._idempotent_session, self._body_session):
                session.headers["Authorization"] = f"Bearer {self.api_key}"

    def close(self) -> None:
        for session in (self.session, self._idempotent_session, self._body_session, self._storage_session):
            session.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, idempotent: bool = False, body: JsonBody | None = None, **kwargs: Any
    ) -> requests.Response:
        """One API call; `idempotent` marks a POST that is safe to repeat (it carries an Idempotency-Key).
        A `body` is encoded (and gzip-streamed when large) again for each attempt."""
        url = urljoin(self.base_url + "/", path.lstrip("/"))
        kwargs.setdefault("timeout", self.timeout)
        session = self._idempotent_session if idempotent else self.session
        try:
            if body is not None:
                response = self._send_body(method, url, body, idempotent, kwargs)
            else:
                response = session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            raise ApiError(0, "unreachable", f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        return response

    def _send_body(
        self, method: str, url: str, body: JsonBody, idempotent: bool, kwargs: dict[str, Any]
    ) -> requests.Response:
        """The request with a fresh encoding of `body` per attempt; an idempotent one is repeated as the
        sessions' urllib3 retries repeat theirs: on connection errors, timeouts and RETRY_STATUSES, up to
        `retries` times, 0.6 s, 1.2 s, ... apart (the first at once)."""
        extra = kwargs.pop("headers", None) or {}
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            if attempt > 1:
                time.sleep(RETRY_BACKOFF * 2 ** (attempt - 1))
            headers, data = body.open()
            last = attempt == attempts - 1
            try:
                response = self._body_session.request(method, url, data=data, headers={**extra, **headers}, **kwargs)
            except (requests.ConnectionError, requests.Timeout):
                if last:
                    raise
                continue
            if response.status_code not in RETRY_STATUSES or last:
                return response
            response.close()
        raise AssertionError("unreachable")  # the last attempt returns or raises

    # --- jobs -----------------------------------------------------------------------------------

    def submit(
        self,
        inputs: list[dict[str, str]],
        *,
        voice: str | None = None,
        format: str = "mp3",
        sample_rate: int | None = None,
        concatenate: bool = True,
        metadata: dict[str, Any] | None = None,
        sampling: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        on_sent: Callable[[Upload], None] | None = None,
        **options: Any,
    ) -> Job:
        """Queue a job. A fresh Idempotency-Key is sent unless one is given, so the automatic retry of a
        submit whose answer was lost returns the job the first attempt created instead of a second one.
        `options` are further fields of the job body (`mastering`, `pauses`, `bitrate_kbps`, `book`);
        None values are left out. A body above COMPRESS_ABOVE bytes is streamed gzip-compressed
        (`JsonBody`); `on_sent` sees what each attempt sent."""
        body = _job_body(inputs, voice, format, sample_rate, concatenate, options)
        body["metadata"] = metadata or {}
        if sampling:
            body["sampling"] = sampling
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        sent = JsonBody(body, on_sent=on_sent)
        return self.request("POST", "/v1/jobs", body=sent, headers=headers, idempotent=True).json()

    def estimate(
        self,
        inputs: list[dict[str, str]],
        *,
        voice: str | None = None,
        format: str = "mp3",
        sample_rate: int | None = None,
        concatenate: bool = True,
        **options: Any,
    ) -> dict[str, Any]:
        """`POST /v1/estimate`: the job's audio length per chapter and time to make it; nothing is queued."""
        body = _job_body(inputs, voice, format, sample_rate, concatenate, options)
        return self.request("POST", "/v1/estimate", body=JsonBody(body), idempotent=True).json()

    def submit_book(
        self,
        path: str | os.PathLike[str],
        *,
        chapters: Sequence[str] = (),
        skip: Sequence[str] = (),
        include_matter: bool = False,
        substitutions: Sequence[str] = (),
        author: str | None = None,
        narrator: str | None = None,
        title: str | None = None,
        chapter_files: str | None = None,
        format: str = "m4b",
        **options: Any,
    ) -> Job:
        """Queue a book (EPUB, Markdown, HTML or plain text; `client.books`) as one job of titled chapters,
        with its cover and tags; `substitutions` are `PATTERN=>REPLACEMENT` rules for the spoken text."""
        from client import books

        book = books.read_book(Path(path))
        inputs = books.book_inputs(
            book,
            only=chapters,
            skip=skip,
            include_matter=include_matter,
            substitutions=[books.Substitution.parse(rule) for rule in substitutions],
        )
        return self.submit(
            inputs, format=format, book=book_options(book, author, narrator, title, chapter_files), **options
        )

    def get_job(self, job_id: str) -> Job:
        return self.request("GET", job_path(job_id)).json()

    def list_jobs(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        params = {k: v for k, v in {"status": status, "limit": limit, "cursor": cursor}.items() if v}
        return self.request("GET", "/v1/jobs", params=params).json()

    def iter_jobs(self, *, status: str | None = None, limit: int | None = None) -> Iterator[Job]:
        """Every job (newest first, as the API orders them), following `next_cursor`; at most `limit`."""
        cursor: str | None = None
        seen = 0
        page_size = min(limit, self.MAX_PAGE) if limit else None
        while True:
            page = self.list_jobs(status=status, limit=page_size, cursor=cursor)
            for job in page["data"]:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield job
            cursor = page.get("next_cursor")
            if not cursor or (limit is not None and seen >= limit):
                return

    def cancel(self, job_id: str) -> Job:
        """Stop a queued or running job (`POST .../cancel`); HTTP 409 once it has finished. Cancelling
        twice is harmless, so the request is retried like a GET."""
        return self.request("POST", job_path(job_id, "/cancel"), idempotent=True).json()

    def delete_job(self, job_id: str) -> Job | None:
        """Remove a finished job with its results and checkpoints (204: None). The API cancels a job
        that is still queued or running instead and answers with it (200)."""
        response = self.request("DELETE", job_path(job_id))
        return None if response.status_code == 204 else response.json()

    def wait(
        self,
        job_id: str,
        *,
        interval: float = 1.0,
        timeout: float | None = None,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll until the job is finished; `on_update` sees every polled state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if on_update:
                on_update(job)
            if job["status"] in FINISHED:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise ApiError(0, "timeout", f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(interval)

    def ready(self) -> bool:
        """Whether /readyz answers 200 (the stack can take jobs)."""
        try:
            self.request("GET", "/readyz", timeout=5)
        except ApiError:
            return False
        return True

    # --- results --------------------------------------------------------------------------------

    def read(self, link: dict[str, Any]) -> bytes:
        """The bytes of a small linked object (`{"url", "sha256", ...}`, e.g. a batch's manifest), checked."""
        url = urljoin(self.base_url + "/", link["url"])
        data = b"".join(self._read_url(url))
        _check_sha256(url, hashlib.sha256(data).hexdigest(), link.get("sha256"))
        return data

    def download(self, result: dict[str, Any], dest: str | os.PathLike[str]) -> Path:
        """Fetch a result (`{"url", "sha256", ...}`) to `dest`, checking its sha256 when given.

        The file appears only once complete and verified (written beside `dest`, then renamed).
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        url = urljoin(self.base_url + "/", result["url"])
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                for block in self._read_url(url):
                    digest.update(block)
                    out.write(block)
            _check_sha256(url, digest.hexdigest(), result.get("sha256"))
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a downloaded result is an ordinary file
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    def _read_url(self, url: str) -> Iterator[bytes]:
        parts = urlsplit(url)
        if parts.scheme == "file":
            path = Path(url2pathname(parts.path))
            try:
                with path.open("rb") as fh:
                    yield from iter(lambda: fh.read(1024 * 1024), b"")
            except OSError as exc:
                raise DownloadError(0, "download_failed", f"cannot read {path}: {exc}") from exc
            return
        # Presigned URLs carry their own permission: never send our bearer key to the storage host.
        getter = self.session.get if url.startswith(self.base_url + "/") else self._storage_session.get
        try:
            with getter(url, stream=True, timeout=self.timeout) as response:
                if response.status_code >= 400:
                    error = _error_from_response(response)
                    raise DownloadError(error.status, "download_failed", f"GET {url}: {error.message}")
                yield from response.iter_content(1024 * 1024)
        except requests.RequestException as exc:
            raise DownloadError(0, "download_failed", f"GET {url}: {exc}") from exc


def _job_body(
    inputs: list[dict[str, str]],
    voice: str | None,
    format: str,
    sample_rate: int | None,
    concatenate: bool,
    options: dict[str, Any],
) -> dict[str, Any]:
    """A job's body as `POST /v1/jobs` and `POST /v1/estimate` both take it; None options are left out."""
    body: dict[str, Any] = {
        "inputs": inputs,
        "voice": voice,
        "format": format,
        "sample_rate": sample_rate,
        "concatenate": concatenate,
    }
    body.update({name: value for name, value in options.items() if value is not None})
    return body
