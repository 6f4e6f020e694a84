"""The job model: what a client may ask for and what a job record looks like.

The same pydantic models validate API requests, are stored with the job for the worker, and generate
the OpenAPI document, so the three can never disagree.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, overload

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from shared.audio.formats import FILE_TAGS, AudioFormat
from shared.text.normalize import is_speakable

# C0/C1 control characters other than tab, line feed and carriage return: never legitimate narration
# text, and some break tokenisers or subtitle files.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_INPUT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class SamplingOptions(_Strict):
    """Sampling of generative engines; the preview engine ignores all but the seed."""

    # `default=` by keyword: type checkers then see that every field has one (`SamplingOptions()`).
    temperature: float = Field(default=0.8, gt=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    top_k: int = Field(default=50, ge=0, le=4032, description="Keep the k most likely codes per step (0 = off).")
    repetition_penalty: float = Field(default=1.1, ge=1.0, le=2.0)
    seed: int | None = Field(default=None, ge=0, lt=2**32, description="Same seed and text give the same audio.")


class JobInput(_Strict):
    id: str | None = Field(None, description="Caller's id (file names, manifest). Defaults to the input's position.")
    text: str = Field(..., description="Text to speak; paragraphs separated by blank lines.")
    voice: str | None = Field(None, description="Voice for this input; defaults to the job's voice.")

    @field_validator("id")
    @classmethod
    def _id_is_safe(cls, value: str | None) -> str | None:
        if value is not None and not _INPUT_ID.match(value):
            raise ValueError("id must be 1-128 characters of letters, digits, '.', '_' or '-'")
        if value is not None and value.lower() == "manifest":
            raise ValueError("id 'manifest' is reserved for the batch manifest file")
        return value

    @field_validator("text")
    @classmethod
    def _text_is_speakable(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty")
        if not is_speakable(value):
            raise ValueError("text has nothing to speak (no letters or digits)")
        if _CONTROL.search(value):
            raise ValueError("text contains control characters")
        return value


class JobCreate(_Strict):
    """Body of `POST /v1/jobs`."""

    inputs: Annotated[list[JobInput], Field(min_length=1)]
    voice: str | None = Field(None, description="Built-in voice, language tag or cloned voice id.")
    format: AudioFormat = Field(AudioFormat.MP3, description="m4b is AAC in MP4 with chapter marks.")
    sample_rate: int | None = Field(
        None, ge=8000, le=48000, description="Output sample rate in Hz; default: the engine's own."
    )
    concatenate: bool = Field(True, description="One file for all inputs (chapters) instead of one file per input.")
    streams: int | None = Field(
        None, ge=1, le=256, description="Side-by-side streams a long input is split into (KaniTTS2)."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Returned unchanged with the job; {', '.join(FILE_TAGS)} are also written as tags into the "
        "audio file.",
    )
    sampling: SamplingOptions = Field(default_factory=SamplingOptions)

    @field_validator("format", mode="before")
    @classmethod
    def _known_format(cls, value: Any) -> Any:
        names = [fmt.value for fmt in AudioFormat]
        if value not in names:
            raise ValueError(f"format must be one of {', '.join(names)}")
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> JobCreate:
        ids = [item.id for item in self.inputs if item.id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("input ids must be unique")
        return self

    def input_ids(self) -> list[str]:
        return [item.id or f"input-{index:05d}" for index, item in enumerate(self.inputs)]

    def total_chars(self) -> int:
        return sum(len(item.text) for item in self.inputs)

    def file_tags(self) -> dict[str, str]:
        """The metadata written as tags into the audio file: the `FILE_TAGS` keys with scalar values."""
        return {
            key: str(value)
            for key, value in self.metadata.items()
            if key in FILE_TAGS and isinstance(value, str | int | float)
        }


class StoredFile(BaseModel):
    """A result file as the job record keeps it: storage keys only. URLs expire, so they are never stored;
    every read mints fresh ones (`shared.downloads`)."""

    key: str
    filename: str
    format: AudioFormat
    duration_seconds: float
    bytes: int
    sha256: str
    subtitles: dict[str, str] = Field(default_factory=dict, description="Keys of `srt`, `vtt` and `timing`.")

    @field_validator("subtitles")
    @classmethod
    def _keys_not_urls(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # Records written before links were minted at read time held URLs here; the files lie beside
        # the audio under the same stem, so their keys follow from its key.
        stem = str(info.data.get("key", "")).rsplit(".", 1)[0]
        legacy = {kind: f"{stem}.{'json' if kind == 'timing' else kind}" for kind in value}
        return {kind: legacy[kind] if "://" in ref else ref for kind, ref in value.items()}


class StoredObject(BaseModel):
    """Any other object of a job's result (the batch manifest), as the record keeps it."""

    key: str
    bytes: int
    sha256: str


class StoredResult(BaseModel):
    """The `result` field of a job record: what the worker uploaded, by storage key."""

    file: StoredFile | None = None
    inputs: dict[str, StoredFile] = Field(default_factory=dict)
    manifest: StoredObject | None = None


class FileLink(BaseModel):
    url: str = Field(..., description="Minted at every read; valid until `url_expires_at`.")
    url_expires_at: datetime
    key: str = Field(..., description="Storage key of the object (for operators).")
    bytes: int
    sha256: str


class FileResult(BaseModel):
    url: str = Field(..., description="Minted at every read; valid until `url_expires_at`.")
    url_expires_at: datetime
    key: str = Field(..., description="Storage key of the object (for operators).")
    filename: str
    format: AudioFormat
    duration_seconds: float
    bytes: int
    sha256: str
    subtitles: dict[str, str] = Field(
        default_factory=dict,
        description="URLs of `srt`, `vtt` and `timing` (JSON) files, minted with `url` and valid as long.",
    )


class Progress(BaseModel):
    chunks_done: int = 0
    chunks_total: int = 0
    percent: float = 0.0
    audio_seconds: float = 0.0


class JobError(BaseModel):
    code: str
    message: str


class InputView(BaseModel):
    id: str
    chars: int
    voice: str | None = None
    result: FileResult | None = None


class JobView(BaseModel):
    """A job as clients see it."""

    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    voice: str | None
    format: AudioFormat
    sample_rate: int | None
    concatenate: bool
    metadata: dict[str, Any]
    progress: Progress
    rtf: float | None = Field(None, description="Wall seconds of synthesis per second of audio.")
    attempts: int = 0
    timings: dict[str, float] = Field(
        default_factory=dict,
        description="Wall seconds per worker phase (chunking, generation, stitching, loudness, encoding, upload).",
    )
    result: FileResult | None = None
    inputs: list[InputView]
    manifest: FileLink | None = Field(
        default=None, description="The batch manifest (`manifest.json`) of a job of separate files (concatenate=false)."
    )
    error: JobError | None = None

    _stored: StoredResult = PrivateAttr(default_factory=StoredResult)

    @property
    def stored_result(self) -> StoredResult:
        """What the record holds by key; `shared.downloads.mint_view` turns it into the link fields."""
        return self._stored

    def with_stored_result(self, stored: StoredResult) -> JobView:
        self._stored = stored
        return self


class JobPage(BaseModel):
    data: list[JobView]
    next_cursor: str | None = None


def utcnow() -> float:
    return datetime.now(UTC).timestamp()


@overload
def to_datetime(epoch: float) -> datetime: ...
@overload
def to_datetime(epoch: None) -> None: ...
def to_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)
