"""Where results and checkpoints live: an S3 bucket (AWS, MinIO, R2...) or a local directory.

Both backends speak the same small interface over string keys like `jobs/<id>/result.mp3`, so the
worker writes and the API links without knowing which one is configured (`NARRATE_STORAGE_URL`).
The local backend serves development and single-box installs; S3 is the production path.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import encode_rfc2231
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

_TMP_PREFIX = ".narrate-tmp-"
"""Name prefix of the local backend's half-written files; they never show up as keys."""


class StorageError(Exception):
    """A storage operation failed (the backend's own exception is chained)."""


class StorageKeyMissing(StorageError, KeyError):
    """The key does not exist. A `KeyError` too, so callers may treat storage like a mapping."""

    def __str__(self) -> str:  # KeyError's str() adds quotes; keep the plain message
        return str(self.args[0]) if self.args else "key missing"


class StorageUnavailable(StorageError):
    """The backend cannot be reached or used right now: raised by `check` (reported by /readyz), and by
    any operation whose transient failures (refused or dropped connections, timeouts, 5xx, throttling)
    outlasted the retry budget. Worth trying again later, unlike a plain `StorageError`."""


class _Transient(StorageError):
    """One try failed in a way that may pass (retried inside the backend, never seen outside)."""


_THROTTLING_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestLimitExceeded",
     "InternalError", "ServiceUnavailable", "TooManyRequests"}
)  # fmt: skip


def check_key(key: str) -> str:
    """Reject keys that could escape the storage root or that S3 and a filesystem read differently."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid storage key: {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid storage key: {key!r}")
    if key.rsplit("/", 1)[-1].startswith(_TMP_PREFIX):
        raise ValueError(f"invalid storage key: {key!r}")
    return key


def _check_prefix(prefix: str) -> str:
    if prefix.startswith("/") or "\\" in prefix or "\x00" in prefix or ".." in prefix.split("/"):
        raise ValueError(f"invalid storage prefix: {prefix!r}")
    return prefix


def content_disposition(filename: str) -> str:
    """`attachment` header value that survives non-ASCII names (RFC 6266 with an ASCII fallback)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "download"
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*={encode_rfc2231(filename, 'utf-8')}"
    return value


class Storage(ABC):
    """Blob store over `/`-separated string keys."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store `data` under `key`, replacing any previous object; readers never see half of it."""

    @abstractmethod
    def put_file(self, key: str, path: str | os.PathLike[str], content_type: str) -> None:
        """Store the file at `path` (streamed, multipart on S3 when large)."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; `StorageKeyMissing` when there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def copy(self, source: str, target: str) -> None:
        """Copy an object inside the store (server-side on S3: the bytes do not pass through this process),
        replacing `target`; `StorageKeyMissing` when `source` is absent. The copy is a new object: its
        last-modified time is now (retention counts from the copy)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with `prefix` (a plain string prefix, as in S3)."""

    @abstractmethod
    def list_modified(self, prefix: str) -> list[tuple[str, float]]:
        """(key, last-modified epoch seconds) of every key starting with `prefix` (the retention sweep)."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with `prefix` (must not be empty); returns how many went."""

    @abstractmethod
    def url_for(self, key: str, *, filename: str | None = None) -> str:
        """A URL to fetch the object from: a presigned GET on S3 (clients get these through
        `shared.downloads`), a `file://` URL locally (for processes on this machine; clients get the API's
        `/v1/files/` route instead)."""

    @abstractmethod
    def check(self) -> None:
        """Raise `StorageUnavailable` unless the backend can be used right now."""


class LocalStorage(Storage):
    """A directory tree; writes go to a temporary file and are renamed into place (atomic on POSIX)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        return self.root / check_key(key)

    @contextmanager
    def _atomic_target(self, key: str) -> Iterator[Any]:
        target = self.path_for(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        with self._atomic_target(key) as fh:
            fh.write(data)

    def put_file(self, key: str, path: str | os.PathLike[str], content_type: str) -> None:
        with open(path, "rb") as src, self._atomic_target(key) as fh:
            shutil.copyfileobj(src, fh, 1024 * 1024)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path_for(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise StorageKeyMissing(key) from exc

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def copy(self, source: str, target: str) -> None:
        try:
            with open(self.path_for(source), "rb") as src, self._atomic_target(target) as fh:
                shutil.copyfileobj(src, fh, 1024 * 1024)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise StorageKeyMissing(source) from exc

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return
        self._prune_empty_dirs(path.parent)

    def _walk(self, prefix: str) -> Iterator[tuple[str, Path]]:
        # Start at the deepest directory the prefix names, so listing one job does not walk them all.
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base_dir
        if not start.is_dir():
            return
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(_TMP_PREFIX):
                    continue
                path = Path(dirpath, name)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key, path

    def list_keys(self, prefix: str = "") -> list[str]:
        return sorted(key for key, _ in self._walk(_check_prefix(prefix)))

    def list_modified(self, prefix: str) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        for key, path in self._walk(_check_prefix(prefix)):
            try:
                found.append((key, path.stat().st_mtime))
            except FileNotFoundError:  # deleted meanwhile
                continue
        return sorted(found)

    def delete_prefix(self, prefix: str) -> int:
        if not _check_prefix(prefix):
            raise ValueError("delete_prefix needs a non-empty prefix")
        count = 0
        parents: set[Path] = set()
        for _key, path in list(self._walk(prefix)):
            path.unlink(missing_ok=True)
            parents.add(path.parent)
            count += 1
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            self._prune_empty_dirs(parent)
        return count

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:  # not empty (or already gone under a concurrent writer)
                return
            directory = directory.parent

    def url_for(self, key: str, *, filename: str | None = None) -> str:
        return self.path_for(key).as_uri()

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(prefix=_TMP_PREFIX, dir=self.root) as fh:
                fh.write(b"ok")
        except OSError as exc:
            raise StorageUnavailable(f"local storage {self.root} is not writable: {exc}") from exc


class S3Storage(Storage):
    """Objects under `prefix` in one bucket, through boto3 with standard retries.

    boto3 gives up on an unreachable endpoint within seconds; an S3 outage of half a minute must not fail
    a job, so every operation is also retried as a whole (exponential back-off with full jitter) for up to
    `retry_seconds` before it raises `StorageUnavailable`. Every operation is idempotent (a put replaces
    the object), so repeating one is safe. Errors that will not pass (access denied, no such bucket) are
    raised at once.

    The boto3 client is created lazily and again after a fork, because Celery's prefork workers must
    not share the parent's connection pool. `public_endpoint_url` is the address clients use when it
    differs from the services' (MinIO is `http://minio:9000` inside Docker, `localhost:9000` outside):
    presigned URLs are signed for that host.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str | None = None,
        presign_expiry_seconds: int = 3600,
        multipart_threshold_bytes: int = 16 * 1024 * 1024,
        max_attempts: int = 5,
        retry_seconds: float = 60.0,
        connect_timeout_seconds: float = 10.0,
        read_timeout_seconds: float = 60.0,
    ) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.public_endpoint_url = public_endpoint_url
        self.region = region
        self.presign_expiry_seconds = presign_expiry_seconds
        self.multipart_threshold_bytes = multipart_threshold_bytes
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self.connect_timeout_seconds = connect_timeout_seconds
        self.read_timeout_seconds = read_timeout_seconds
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={self.endpoint_url!r})"

    def _make_client(
        self, *, attempts: int, connect_timeout: float, read_timeout: float, endpoint_url: str | None
    ) -> Any:
        import boto3.session
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "max_attempts": attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            signature_version="s3v4",
            # MinIO and most S3-compatible servers need path-style URLs; AWS picks its own.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        session = boto3.session.Session()  # the default session is not thread-safe
        return session.client("s3", endpoint_url=endpoint_url, region_name=self.region, config=config)

    def _client(self, kind: str = "main") -> Any:
        with self._lock:
            if self._pid != os.getpid():
                self._clients.clear()
                self._pid = os.getpid()
            if kind not in self._clients:
                if kind == "probe":  # readiness: answer quickly rather than retry for a minute
                    options = {"attempts": 1, "connect_timeout": 2, "read_timeout": 5}
                else:
                    options = {
                        "attempts": self.max_attempts,
                        "connect_timeout": self.connect_timeout_seconds,
                        "read_timeout": self.read_timeout_seconds,
                    }
                endpoint = self.public_endpoint_url if kind == "public" else self.endpoint_url
                self._clients[kind] = self._make_client(endpoint_url=endpoint, **options)
            return self._clients[kind]

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.multipart_threshold_bytes,
            multipart_chunksize=max(self.multipart_threshold_bytes // 2, 5 * 1024 * 1024),
        )

    def full_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            if _is_transient(exc):
                raise _Transient(f"S3 request for {key!r} failed: {exc}") from exc
            if isinstance(exc, ClientError):
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in ("NoSuchKey", "404", "NotFound"):
                    raise StorageKeyMissing(key) from exc
                raise StorageError(f"S3 {code or 'error'} for {key!r}: {exc}") from exc
            if isinstance(exc, BotoCoreError) or _cause_of_type(exc, (BotoCoreError, ClientError)):
                raise StorageError(f"S3 request for {key!r} failed: {exc}") from exc
            raise

    def _retrying(self, key: str, operation: Callable[[], T]) -> T:
        """Run `operation` (one whole, idempotent S3 operation) until it succeeds, fails for good, or
        transient failures have lasted `retry_seconds`."""
        backoff = wait_random_exponential(multiplier=0.25, max=5.0)
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            # Back-off, but never sleeping past the budget: the last attempt starts when it is spent, so
            # the whole operation lasts the budget plus one attempt.
            wait=lambda state: min(backoff(state), max(0.0, self.retry_seconds - (state.seconds_since_start or 0.0))),
            stop=stop_after_delay(self.retry_seconds),
            before_sleep=lambda state: log.warning(
                "storage: %s (try %d), retrying", state.outcome and state.outcome.exception(), state.attempt_number
            ),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt, self._errors(key):
                    return operation()
        except _Transient as exc:
            raise StorageUnavailable(f"{exc} (still failing after {self.retry_seconds:g} s of retries)") from exc
        raise AssertionError("unreachable")  # pragma: no cover - Retrying either returns or raises

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        full = self.full_key(key)
        self._retrying(
            key,
            lambda: self._client().upload_fileobj(
                BytesIO(data),
                self.bucket,
                full,
                ExtraArgs={"ContentType": content_type},
                Config=self._transfer_config(),
            ),
        )

    def put_file(self, key: str, path: str | os.PathLike[str], content_type: str) -> None:
        full = self.full_key(key)
        self._retrying(
            key,
            lambda: self._client().upload_file(
                os.fspath(path),
                self.bucket,
                full,
                ExtraArgs={"ContentType": content_type},
                Config=self._transfer_config(),
            ),
        )

    def get_bytes(self, key: str) -> bytes:
        full = self.full_key(key)
        return self._retrying(key, lambda: self._client().get_object(Bucket=self.bucket, Key=full)["Body"].read())

    def exists(self, key: str) -> bool:
        try:
            self._retrying(key, lambda: self._client().head_object(Bucket=self.bucket, Key=self.full_key(key)))
        except StorageKeyMissing:
            return False
        return True

    def copy(self, source: str, target: str) -> None:
        origin = {"Bucket": self.bucket, "Key": self.full_key(source)}
        full = self.full_key(target)
        self._retrying(source, lambda: self._client().copy_object(CopySource=origin, Bucket=self.bucket, Key=full))

    def delete(self, key: str) -> None:
        self._retrying(key, lambda: self._client().delete_object(Bucket=self.bucket, Key=self.full_key(key)))

    def _objects(self, prefix: str) -> list[dict[str, Any]]:
        paginator = self._client().get_paginator("list_objects_v2")
        return [
            obj for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
            for obj in page.get("Contents", [])
        ]  # fmt: skip

    def _full_keys(self, prefix: str) -> list[str]:
        return [obj["Key"] for obj in self._objects(prefix)]

    def list_modified(self, prefix: str) -> list[tuple[str, float]]:
        _check_prefix(prefix)
        cut = len(self.prefix)
        objects = self._retrying(prefix, lambda: self._objects(prefix))
        return sorted((obj["Key"][cut:], obj["LastModified"].timestamp()) for obj in objects)

    def list_keys(self, prefix: str = "") -> list[str]:
        _check_prefix(prefix)
        cut = len(self.prefix)
        return sorted(full[cut:] for full in self._retrying(prefix, lambda: self._full_keys(prefix)))

    def delete_prefix(self, prefix: str) -> int:
        if not _check_prefix(prefix):
            raise ValueError("delete_prefix needs a non-empty prefix")
        return self._retrying(prefix, lambda: self._delete_listed(prefix))

    def _delete_listed(self, prefix: str) -> int:
        keys = self._full_keys(prefix)
        client = self._client()
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            response = client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                message = f"S3 could not delete {first.get('Key')!r}: {first.get('Message')}"
                if first.get("Code") in _THROTTLING_CODES:
                    raise _Transient(message)
                raise StorageError(message)
        return len(keys)

    def url_for(self, key: str, *, filename: str | None = None) -> str:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self.full_key(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        with self._errors(key):
            signer = self._client("public" if self.public_endpoint_url else "main")
            return signer.generate_presigned_url("get_object", Params=params, ExpiresIn=self.presign_expiry_seconds)

    def check(self) -> None:
        try:
            with self._errors(f"s3://{self.bucket}"):
                self._client("probe").head_bucket(Bucket=self.bucket)
        except StorageError as exc:
            raise StorageUnavailable(f"bucket {self.bucket!r} is not reachable: {exc}") from exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _cause_of_type(exc: BaseException, types: tuple[type[BaseException], ...]) -> bool:
    return any(isinstance(link, types) for link in _chain(exc))


def _is_transient(exc: BaseException) -> bool:
    """A failure that may pass: no connection, a dropped one, a timeout, a 5xx or throttling answer (also
    when boto3's transfer manager wrapped it in its own exception)."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    for link in _chain(exc):
        if isinstance(link, ConnectionError | HTTPClientError):
            return True
        if isinstance(link, ClientError):
            error = link.response.get("Error", {})
            status = int(link.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            return status >= 500 or status == 429 or str(error.get("Code", "")) in _THROTTLING_CODES
    return False


def local_path_from_url(url: str, *, cwd: str | os.PathLike[str] | None = None) -> Path:
    """Directory of a `file:///abs` or `file://./relative` URL (relative to `cwd`)."""
    if not url.startswith("file://"):
        raise ValueError(f"not a file:// URL: {url!r}")
    rest = url[len("file://") :]
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    path = Path(unquote(rest)).expanduser()
    if not path.is_absolute():
        path = Path(cwd or os.getcwd()) / path
    return path.resolve()


def storage_from_settings(settings: Settings, *, retry_seconds: float | None = None) -> Storage:
    """The backend `settings.storage_url` names (`s3://bucket/prefix` or `file://dir`); `retry_seconds`
    overrides `settings.storage_retry_seconds` (the API's requests use a shorter budget)."""
    url = settings.storage_url
    if url.startswith("file://"):
        return LocalStorage(local_path_from_url(url))
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"storage URL {url!r} names no bucket")
        return S3Storage(
            parts.netloc,
            parts.path,
            endpoint_url=settings.s3_endpoint_url,
            # Not a Settings field yet (asked for); read it when it exists.
            public_endpoint_url=settings.s3_public_endpoint_url,
            region=settings.s3_region,
            presign_expiry_seconds=settings.s3_presign_expiry_seconds,
            multipart_threshold_bytes=settings.s3_multipart_threshold_bytes,
            max_attempts=settings.s3_max_attempts,
            retry_seconds=settings.storage_retry_seconds if retry_seconds is None else retry_seconds,
            connect_timeout_seconds=settings.s3_connect_timeout_seconds,
            read_timeout_seconds=settings.s3_read_timeout_seconds,
        )
    raise ValueError(f"unsupported storage URL {url!r}: use s3://bucket/prefix or file:///dir")
