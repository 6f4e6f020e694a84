"""Download links, minted when a job is read: job records hold storage keys, never URLs.

A URL signed once when a job ends would die after `NARRATE_S3_PRESIGN_EXPIRY_SECONDS` while the record
lives for days, so every read (the API's job routes, a webhook's payload) signs fresh ones. On S3 a link
is a presigned GET. The file backend has no server of its own: its links point at the API's
`GET /v1/files/{token}` route, where the token (itsdangerous, signed with `NARRATE_DOWNLOAD_SIGNING_KEY` or
a key created once in Redis) names the object, the download name and the expiry, and is the only
permission needed: no API key, so a browser's audio element can play and seek it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from threading import Lock
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, URLSafeSerializer

from shared.audio.formats import AudioFormat
from shared.jobs import FileLink, FileResult, JobView, StoredFile, StoredObject, VersionView, to_datetime, utcnow
from shared.storage import LocalStorage, S3Storage, Storage
from shared.storage_keys import preview_key
from shared.voice_store import VoiceRecord, VoiceStatus, VoiceView

if TYPE_CHECKING:
    from shared.services import Services

FILES_ROUTE = "/v1/files/"
"""Path of the file backend's download route; a token follows it."""

_SALT = "narrate.download.v1"
_TEXT_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt", "json": "application/json"}


class LinkInvalid(Exception):
    """The token was not signed by us (or is not a token at all)."""


class LinkExpired(Exception):
    """The token is ours but its time is up; reading the job again gives a fresh link."""


@dataclass(frozen=True)
class Grant:
    """What a valid download token lets its bearer fetch."""

    key: str
    filename: str
    expires_at: float

    @property
    def content_type(self) -> str:
        return content_type_for(self.filename)


def content_type_for(filename: str) -> str:
    extension = filename.rsplit(".", 1)[-1].lower()
    for fmt in AudioFormat:
        if fmt.extension == extension:
            return fmt.content_type
    return _TEXT_TYPES.get(extension, "application/octet-stream")


class Links:
    """Mints links to one process's storage; `secret` is asked for once, on the first file-backend link."""

    def __init__(self, storage: Storage, *, expiry_seconds: int, secret: Callable[[], bytes | str]) -> None:
        self.storage = storage
        self.expiry_seconds = expiry_seconds
        self._secret = secret
        self._serializer: URLSafeSerializer | None = None
        self._lock = Lock()

    def _signer(self) -> URLSafeSerializer:
        with self._lock:
            if self._serializer is None:
                self._serializer = URLSafeSerializer(self._secret(), salt=_SALT)
            return self._serializer

    def link(self, key: str, filename: str, *, base_url: str) -> tuple[str, datetime]:
        """(URL, expiry) of one object. `base_url` is where clients reach the API (`https://host`; `""`
        gives a path relative to the API, which the CLI resolves); S3 links ignore it."""
        if isinstance(self.storage, LocalStorage):
            expires = int(utcnow()) + self.expiry_seconds
            token = self._signer().dumps({"k": key, "f": filename, "e": expires})
            return f"{base_url.rstrip('/')}{FILES_ROUTE}{token}", to_datetime(float(expires))
        seconds = self.storage.presign_expiry_seconds if isinstance(self.storage, S3Storage) else self.expiry_seconds
        expires_at = to_datetime(utcnow() + seconds)  # taken before signing: never later than the signature's
        return self.storage.url_for(key, filename=filename), expires_at

    def file(self, stored: StoredFile, *, base_url: str) -> FileResult:
        url, expires_at = self.link(stored.key, stored.filename, base_url=base_url)
        subtitles = {
            kind: self.link(key, key.rsplit("/", 1)[-1], base_url=base_url)[0] for kind, key in stored.subtitles.items()
        }
        fields = stored.model_dump(exclude={"subtitles"})
        return FileResult(url=url, url_expires_at=expires_at, subtitles=subtitles, **fields)

    def object(self, stored: StoredObject, *, base_url: str) -> FileLink:
        url, expires_at = self.link(stored.key, stored.key.rsplit("/", 1)[-1], base_url=base_url)
        return FileLink(url=url, url_expires_at=expires_at, **stored.model_dump())

    def view(self, view: JobView, *, base_url: str) -> JobView:
        """The view with its result, per-input results and manifest linked."""
        stored = view.stored_result
        inputs = [
            item.model_copy(
                update={
                    "result": self.file(stored.inputs[item.id], base_url=base_url)
                    if item.id in stored.inputs
                    else item.result,
                    "fit": stored.fits.get(item.id, item.fit),
                }
            )
            for item in view.inputs
        ]
        versions = [
            VersionView(
                version=item.version,
                created_at=to_datetime(item.created_at),
                revision=item.revision,
                take=item.take,
                result=self.file(item.result.file, base_url=base_url) if item.result.file else None,
                inputs={name: self.file(f, base_url=base_url) for name, f in item.result.inputs.items()},
                warnings=item.warnings,
            )
            for item in view.stored_versions
        ]
        linked = view.model_copy(
            update={
                "result": self.file(stored.file, base_url=base_url) if stored.file else None,
                "inputs": inputs,
                "manifest": self.object(stored.manifest, base_url=base_url) if stored.manifest else None,
                "quality_report": self.object(stored.quality_report, base_url=base_url)
                if stored.quality_report
                else None,
                "manifest_csv": self.object(stored.manifest_csv, base_url=base_url) if stored.manifest_csv else None,
                "versions": versions,
            }
        )
        return linked.with_stored_result(stored, view.stored_versions)

    def open(self, token: str) -> Grant:
        """The grant a token carries; `LinkInvalid` or `LinkExpired` otherwise."""
        try:
            payload = self._signer().loads(token)
            grant = Grant(key=str(payload["k"]), filename=str(payload["f"]), expires_at=float(payload["e"]))
        except (BadSignature, KeyError, TypeError, ValueError) as exc:
            raise LinkInvalid(token) from exc
        if grant.expires_at <= utcnow():
            raise LinkExpired(token)
        return grant


def links_for(services: Services) -> Links:
    """The process's link minter over `services` (its storage, its settings' key and expiry)."""
    settings = services.settings

    def secret() -> bytes | str:
        if settings.download_signing_key is not None:
            return settings.download_signing_key.get_secret_value()
        return services.jobs.shared_secret("download-signing")

    return Links(services.storage, expiry_seconds=settings.s3_presign_expiry_seconds, secret=secret)


def mint_view(services: Services, view: JobView, *, base_url: str) -> JobView:
    """A job view with fresh links, valid `NARRATE_S3_PRESIGN_EXPIRY_SECONDS`: what the API answers and
    what a webhook carries. `base_url`: the API's public address (`NARRATE_PUBLIC_URL` outside a request)."""
    return services.links.view(view, base_url=base_url)


def mint_voice_view(services: Services, record: VoiceRecord, *, base_url: str) -> VoiceView:
    """A voice as clients see it, its preview linked afresh (once the voice is ready): what the API
    answers and what a webhook carries."""
    url = None
    if record.preview and record.status == VoiceStatus.READY:
        key, filename = preview_key(record.tenant, record.id), f"{record.id}-preview.mp3"
        url, _ = services.links.link(key, filename, base_url=base_url)
    return record.view(url)
