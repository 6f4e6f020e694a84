"""The job model: what a client may ask for and what a job record looks like.

The same pydantic models validate API requests, are stored with the job for the worker, and generate
the OpenAPI document, so the three can never disagree.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import string
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, overload

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from shared.audio.formats import FILE_TAGS, AudioFormat
from shared.audio.presets import MasteringPreset, MasteringTargets, preset_targets, with_overrides
from shared.text.dialogue import SPEAKER_PATTERN, Turn, parse_speaker_tags
from shared.text.languages import canonical_tag
from shared.text.lexicon import MAX_JOB_LEXICONS, MAX_LEXICON_ENTRIES, LexiconEntry, check_unique
from shared.text.normalize import is_speakable
from shared.text.ssml import TextFormat
from shared.url_guard import UrlRefused, check_syntax
from shared.voice_mix import MAX_MIX_CHARS, VOICE_PATTERN, canonical_voice, is_mix, parse_mix

# C0/C1 control characters other than tab, line feed and carriage return: never legitimate narration
# text, and some break tokenisers or subtitle files.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control_characters(text: str, *, line_breaks_allowed: bool) -> bool:
    """Whether `text` holds C0/C1 control characters (tab, line feed and carriage return aside, when
    `line_breaks_allowed`): a one-line field (a name) allows none."""
    return bool((_CONTROL if line_breaks_allowed else _CONTROL_OR_BREAK).search(text))


# Patterns end in `\Z` for Python (where `$` also matches before a final line feed) and `$` for the
# document and pydantic's regex engine (where it does not): the two spell one rule.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""Input ids (they become file names and storage keys) and the voices a job names."""
_INPUT_ID = re.compile(ID_PATTERN.removesuffix("$") + r"\Z")

MAX_METADATA_KEYS = 64
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 4096
MAX_METADATA_BYTES = 16 * 1024
"""Most bytes of `metadata` as compact JSON: it is stored twice with the job and written into the file's tags."""
METADATA_KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$"
_METADATA_KEY = re.compile(METADATA_KEY_PATTERN.removesuffix("$") + r"\Z")
MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer every JSON reader (JavaScript's included) keeps exact."""


def _mix_is_valid(value: Any) -> Any:
    """Before the pattern, so that a mix that breaks a rule (weights, repeats, size) is told which."""
    if isinstance(value, str) and is_mix(value):
        parse_mix(value)  # MixError is a ValueError: pydantic reports its message
    return value


def _canonical_voice(value: str) -> str:
    return canonical_voice(value)


VoiceName = Annotated[
    str,
    BeforeValidator(_mix_is_valid),
    StringConstraints(min_length=1, max_length=MAX_MIX_CHARS, pattern=VOICE_PATTERN),
    AfterValidator(_canonical_voice),
]
"""A voice id, or a weighted mix of cloned voices (`ada(0.7)+ben(0.3)`, stored in its canonical spelling
with the weights normalised)."""
LANGUAGE_TAG_PATTERN = r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}$"
LanguageTag = Annotated[
    str, StringConstraints(min_length=2, max_length=35, pattern=LANGUAGE_TAG_PATTERN), AfterValidator(canonical_tag)
]
"""A BCP-47 language tag (`es`, `es-MX`, `en-GB`), kept in its usual case."""
_LANGUAGE_TAG = re.compile(LANGUAGE_TAG_PATTERN.removesuffix("$") + r"\Z")


def _language_tag_in_words(value: Any) -> Any:
    """Before the pattern constraint, so that the message says the rule in words."""
    if isinstance(value, str) and not _LANGUAGE_TAG.match(value):
        raise ValueError("language must be a BCP-47 tag such as es, es-MX or en-GB")
    return value


MetadataKey = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY_CHARS, pattern=METADATA_KEY_PATTERN)
]
MetadataValue = (
    Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS)]
    | Annotated[int, Field(strict=True, ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | bool
    | None
)
"""Metadata values are scalars: nested values would make the bound on each value meaningless."""


TEMPLATE_FIELDS = ("id", "voice", "language", "index")
"""The fields `JobCreate.filename_template` may name."""
_TEMPLATE_LITERAL = re.compile(r"[A-Za-z0-9._-]*\Z")


def check_filename_template(template: str) -> None:
    """ValueError unless `template` names only `TEMPLATE_FIELDS` (with `{index}` also `{index:0Nd}`),
    names `{id}` or `{index}`, and its literal text is file-name safe."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"filename_template: {exc}") from exc
    named: set[str] = set()
    for literal, name, spec, conversion in parsed:
        if not _TEMPLATE_LITERAL.match(literal):
            raise ValueError("filename_template: literal text may hold only letters, digits, '.', '_' and '-'")
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS:
            raise ValueError(f"filename_template: unknown field {{{name}}}; known: {', '.join(TEMPLATE_FIELDS)}")
        if conversion or (spec and not (name == "index" and re.fullmatch(r"0?[1-9]d", spec))):
            raise ValueError(f"filename_template: {{{name}}} takes no format (only {{index:05d}} and the like)")
        named.add(name)
    if not named & {"id", "index"}:
        raise ValueError("filename_template must name {id} or {index}, so that every file has its own name")
    if template.startswith((".", "-")):
        raise ValueError("filename_template must start with a letter, a digit or a field")


def render_filename(template: str | None, *, id: str, voice: str, language: str, index: int) -> str:
    """An input's file name stem from `check_filename_template`'s template (default `{id}`)."""
    return (template or "{id}").format(id=id, voice=voice, language=language, index=index)[:200]


class LineStatus(StrEnum):
    """How one input of a batch of separate files (a line of a sheet) ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class JobPriority(StrEnum):
    """Scheduling class: a worker takes every ready unit of a higher class before any of a lower one."""

    INTERACTIVE = "interactive"
    """Short work a person waits for (a preview, a line being edited): ahead of everything else, its
    chunks admitted into the next free slots of a running batch."""
    NORMAL = "normal"
    """The default."""
    BATCH = "batch"
    """Bulk work (books, catalogues) that may wait while interactive and normal work runs."""


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


MAX_TITLE_CHARS = 300
MAX_COVER_BYTES = 2 * 1024 * 1024
"""Largest cover image (decoded); it is stored with the job and written into every file's tags."""
BITRATES_KBPS = (32, 48, 64, 96, 128, 160, 192, 256, 320)
"""Constant bitrates a job may ask of MP3 and M4B (AAC) files."""


class MasteringOptions(_Strict):
    """A preset with explicit targets in place of its own (`mastering` may also be just a preset name)."""

    preset: MasteringPreset = Field(default=MasteringPreset.DEFAULT)
    loudness_lufs: float | None = Field(default=None, ge=-40.0, le=-5.0, description="Integrated loudness target.")
    rms_db: float | None = Field(default=None, ge=-40.0, le=-6.0, description="RMS target (instead of loudness).")
    true_peak_dbfs: float | None = Field(default=None, ge=-12.0, le=0.0, description="True-peak ceiling (dBTP).")
    head_room_tone_seconds: float | None = Field(default=None, ge=0.0, le=5.0)
    tail_room_tone_seconds: float | None = Field(default=None, ge=0.0, le=10.0)

    @model_validator(mode="after")
    def _one_level_target(self) -> MasteringOptions:
        if self.loudness_lufs is not None and self.rms_db is not None:
            raise ValueError("give loudness_lufs or rms_db, not both")
        return self

    def targets(self, *, default_lufs: float, default_peak_dbfs: float) -> MasteringTargets:
        base = preset_targets(self.preset, default_lufs=default_lufs, default_peak_dbfs=default_peak_dbfs)
        return with_overrides(
            base,
            loudness_lufs=self.loudness_lufs,
            rms_db=self.rms_db,
            true_peak_dbfs=self.true_peak_dbfs,
            head_room_tone_s=self.head_room_tone_seconds,
            tail_room_tone_s=self.tail_room_tone_seconds,
        )


class PauseOptions(_Strict):
    """Silence after a clause, sentence or paragraph and between chapters (inputs); unset ones come from
    the service's settings (`NARRATE_PAUSE_*_MS`)."""

    clause_ms: int | None = Field(default=None, ge=0, le=5000)
    sentence_ms: int | None = Field(default=None, ge=0, le=5000)
    paragraph_ms: int | None = Field(default=None, ge=0, le=10000)
    chapter_ms: int | None = Field(default=None, ge=0, le=20000)
    turn_ms: int | None = Field(default=None, ge=0, le=10000, description="Between two speakers' turns of a dialogue.")


class Cover(_Strict):
    """Cover art written into the files (M4B `covr`, MP3 APIC, FLAC/Opus picture)."""

    media_type: str = Field(..., pattern=r"^image/(jpeg|png)$")
    data: str = Field(..., description=f"Base64 of the image, at most {MAX_COVER_BYTES} bytes decoded.")

    @field_validator("data")
    @classmethod
    def _is_an_image(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("cover data is not valid base64") from exc
        if len(raw) > MAX_COVER_BYTES:
            raise ValueError(f"cover image is {len(raw)} bytes; at most {MAX_COVER_BYTES}")
        if not (raw.startswith(b"\xff\xd8\xff") or raw.startswith(b"\x89PNG\r\n\x1a\n")):
            raise ValueError("cover data is neither a JPEG nor a PNG image")
        return value

    def image(self) -> bytes:
        return base64.b64decode(self.data)


class Book(_Strict):
    """What makes a job an audiobook: its tags and cover, and per-chapter files beside the whole book."""

    title: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE_CHARS)
    author: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE_CHARS)
    narrator: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE_CHARS)
    cover: Cover | None = None
    chapter_files: AudioFormat | None = Field(
        default=None,
        description="Also deliver one file per chapter (input) in this format, beside the whole book in "
        "`format` (e.g. m4b with mp3 chapters); they are listed under `inputs` and in the manifest.",
    )
    read_along: bool = Field(
        default=False,
        description="Also deliver an EPUB3 read-along book (Media Overlays: the text highlighted sentence by "
        "sentence in sync with the audio), built from the inputs' text, as the `read_along` file beside the "
        "whole book's subtitles. Needs one file for all inputs (`concatenate`).",
    )

    @field_validator("title", "author", "narrator")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and has_control_characters(value, line_breaks_allowed=False):
            raise ValueError("must be one line of text (no control characters or line breaks)")
        return value


SpeakerName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SPEAKER_PATTERN)]
MAX_SEGMENTS = 1000
MAX_LINE_SECONDS = 600.0
MIN_SPEED, MAX_SPEED = 0.5, 2.0


def _check_speakable(value: str) -> str:
    if not value.strip():
        raise ValueError("text is empty")
    if not is_speakable(value):
        raise ValueError("text has nothing to speak (no letters or digits)")
    if _CONTROL.search(value):
        raise ValueError("text contains control characters")
    return value


class DialogueSegment(_Strict):
    """One turn of a dialogue input: its speaker (a key of the job's `voices`) and what they say."""

    speaker: SpeakerName
    text: str = Field(..., min_length=1)

    @field_validator("text")
    @classmethod
    def _text_is_speakable(cls, value: str) -> str:
        return _check_speakable(value)


class FitStatus(StrEnum):
    """How a timed line met its `target_seconds` or `max_seconds`."""

    FITTED = "fitted"
    """Time-stretched (within the service's ratio bounds) to the target, or under the maximum."""
    WITHIN = "within"
    """Already under `max_seconds`: left as generated."""
    OVER_LIMIT = "over_limit"
    """No draw could be fitted within the ratio bounds: stretched as far as they allow, never cut."""


class LineFit(BaseModel):
    """What fitting a timed line to its time slot did (`inputs[].fit`)."""

    status: FitStatus
    duration_seconds: float = Field(..., description="The line's measured duration (its audio with padding).")
    target_seconds: float = Field(..., description="The target, or the maximum for `max_seconds`.")
    ratio: float = Field(..., description="Duration after / before the time-stretch (1.0: none).")


class JobInput(_Strict):
    # What the validators below enforce, said in the schema too (clients and the fuzzer read it): exactly
    # one of `text` and `segments`, and at most one of `target_seconds` and `max_seconds`.
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=False,
        json_schema_extra={
            "oneOf": [{"required": ["text"]}, {"required": ["segments"]}],
            "not": {"required": ["target_seconds", "max_seconds"]},
        },
    )

    id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN,
        description="Caller's id (file names, manifest). Defaults to the input's position.",
    )
    segments: list[DialogueSegment] | None = Field(
        None,
        min_length=1,
        max_length=MAX_SEGMENTS,
        description="A dialogue instead of `text`: turns of speakers named in the job's `voices`.",
    )
    text: str | None = Field(
        None,
        min_length=1,
        validate_default=True,
        description="Text to speak; paragraphs separated by blank lines. In a job with `voices`, lines "
        "starting with a speaker tag (`[Alice] ...`) are that speaker's turns. With `text_format: ssml`, an "
        "SSML document (the subset in docs/api.md).",
    )
    text_format: TextFormat = Field(
        TextFormat.PLAIN,
        description="`plain` (inline `[pause 1.5s]` markers allowed) or `ssml` (speak, p, s, break, sub, say-as "
        "characters/digits/date/telephone, lang); malformed SSML is a 400 naming its line and column.",
    )
    voice: VoiceName | None = Field(
        None, description="Voice for this input; defaults to the job's voice. A mix as for the job's `voice`."
    )
    target_seconds: float | None = Field(
        None,
        gt=0.0,
        le=MAX_LINE_SECONDS,
        description="Fit the line to this duration (its file, padding included) by time-stretching within "
        "the service's bounds; `inputs[].fit` reports how.",
    )
    max_seconds: float | None = Field(
        None, gt=0.0, le=MAX_LINE_SECONDS, description="Fit the line under this duration (shortened only if longer)."
    )
    speed: float | None = Field(
        None, ge=MIN_SPEED, le=MAX_SPEED, description="Speaking rate (1.0 as generated), pitch kept, before any fit."
    )
    language: LanguageTag | None = Field(
        None, description="BCP-47 language of this input (`es`, `es-MX`); defaults to the job's, else detected."
    )
    title: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_TITLE_CHARS,
        description="Chapter title: names its chapter mark, its file's title tag and (per-chapter files) its "
        "file name. Defaults to the input's id.",
    )
    loudness_lufs: float | None = Field(
        None,
        ge=-40.0,
        le=-5.0,
        description="Integrated loudness target of this input's file (a line of a batch), over the job's mastering.",
    )

    @field_validator("title")
    @classmethod
    def _title_is_one_line(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or has_control_characters(value, line_breaks_allowed=False)):
            raise ValueError("title must be one line of text (no control characters or line breaks)")
        return value

    _language_in_words = field_validator("language", mode="before")(_language_tag_in_words)

    @field_validator("id", mode="before")
    @classmethod
    def _id_is_safe(cls, value: Any) -> Any:
        """Before the pattern constraint, so that the message says the rule in words."""
        if isinstance(value, str) and not _INPUT_ID.match(value):
            raise ValueError(
                "id must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        if isinstance(value, str) and value.lower() == "manifest":
            raise ValueError("id 'manifest' is reserved for the batch manifest file")
        return value

    @field_validator("text", mode="after")
    @classmethod
    def _text_is_speakable(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Also run when `text` is absent (`validate_default`), so that the refusal names `text`."""
        if "segments" not in info.data:  # the segments were refused already: one error is enough
            return value
        if value is not None and info.data["segments"] is not None:
            raise ValueError("give text or segments, not both")
        if value is None:
            if info.data["segments"] is None:
                raise ValueError("text is required (or segments, for a dialogue)")
            return None
        return _check_speakable(value)

    @model_validator(mode="after")
    def _one_limit(self) -> JobInput:
        if self.target_seconds is not None and self.max_seconds is not None:
            raise ValueError("give target_seconds or max_seconds, not both")
        return self

    @property
    def spoken_text(self) -> str:
        """The input's text; a dialogue's segments as tagged lines (what is counted and digested)."""
        if self.segments is None:
            return self.text or ""
        return "\n\n".join(f"[{segment.speaker}] {segment.text}" for segment in self.segments)

    def turns(self, *, tags: bool) -> list[Turn]:
        """Who speaks what, in order: the segments, the text's speaker tags (when `tags`: the job maps
        speakers to voices), else the whole text in the input's voice."""
        if self.segments is not None:
            turns, start = [], 0
            for segment in self.segments:
                start += len(segment.speaker) + 3  # "[speaker] " of `spoken_text`
                turns.append(Turn(segment.speaker, segment.text, start))
                start += len(segment.text) + 2
            return turns
        return parse_speaker_tags(self.spoken_text) if tags else [Turn(None, self.spoken_text)]

    @property
    def timed(self) -> bool:
        """A line fitted to a time slot or spoken at another speed (one stream, fitted after assembly)."""
        return self.target_seconds is not None or self.max_seconds is not None or self.speed is not None


class JobCreate(_Strict):
    """Body of `POST /v1/jobs`."""

    inputs: Annotated[list[JobInput], Field(min_length=1)]
    voice: VoiceName | None = Field(
        None,
        description="Built-in voice, language tag or cloned voice id; or a weighted mix of cloned voices' speaker "
        "embeddings, `ada(0.7)+ben(0.3)` (weights above 0, normalised; `ada+ben` weighs them equally; at most "
        "4 voices; engines that clone only).",
    )
    language: LanguageTag | None = Field(
        None,
        description="BCP-47 language of the inputs (`en`, `es`, `es-MX`); an input's own wins. Unset: each input's "
        "voice's language, else detected in its text among the engine's languages.",
    )
    format: AudioFormat = Field(AudioFormat.MP3, description="m4b is AAC in MP4 with chapter marks.")
    sample_rate: int | None = Field(
        None, ge=8000, le=48000, description="Output sample rate in Hz; default: the engine's own."
    )
    concatenate: bool = Field(True, description="One file for all inputs (chapters) instead of one file per input.")
    streams: int | None = Field(
        None, ge=1, le=256, description="Side-by-side streams a long input is split into (KaniTTS2)."
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=MAX_METADATA_KEYS,
        # Keys outside the pattern are refused, not merely left unchecked as `patternProperties` alone says.
        json_schema_extra={
            "propertyNames": {"minLength": 1, "maxLength": MAX_METADATA_KEY_CHARS, "pattern": METADATA_KEY_PATTERN},
            "additionalProperties": False,
        },
        description=f"Returned unchanged with the job; {', '.join(FILE_TAGS)} are also written as tags into the "
        f"audio file. At most {MAX_METADATA_KEYS} keys and {MAX_METADATA_BYTES} bytes as compact JSON; values are "
        f"strings (at most {MAX_METADATA_VALUE_CHARS} characters, no control characters but tab and line breaks), "
        "integers of at most 2^53 - 1, finite numbers, booleans or null.",
    )
    sampling: SamplingOptions = Field(default_factory=SamplingOptions)
    priority: JobPriority = Field(
        JobPriority.NORMAL,
        description="Scheduling class: `interactive` (short work someone waits for) runs ahead of `normal`, which "
        "runs ahead of `batch` (books, catalogues); within a class each tenant gets a fair share of the workers.",
    )
    mastering: MasteringPreset | MasteringOptions = Field(
        default=MasteringPreset.DEFAULT,
        description="Mastering preset (default, acx, podcast, broadcast-ebu-r128) or explicit targets; every "
        "file's result carries a mastering report measured against it. acx also makes 44.1 kHz the default "
        "sample rate and 192 kb/s the default bitrate.",
    )
    pauses: PauseOptions = Field(default_factory=PauseOptions)
    voices: dict[SpeakerName, VoiceName] = Field(
        default_factory=dict,
        max_length=256,
        description="Dialogue casting: speaker name -> voice. Every speaker of a segment or speaker tag must "
        "be named here (else 400 `unknown_speaker`); speaker tags in text are read only when it is given.",
    )
    padding_ms: int | None = Field(
        default=None,
        ge=0,
        le=5000,
        description="Trim each input's leading and trailing silence to exactly this much (game engines), in "
        "place of the mastering preset's room tone head and tail.",
    )
    bitrate_kbps: int | None = Field(
        default=None, description=f"Constant bitrate of MP3 and M4B files, one of {', '.join(map(str, BITRATES_KBPS))}."
    )
    book: Book | None = None
    lexicons: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        max_length=MAX_JOB_LEXICONS,
        description="Ids of the tenant's pronunciation lexicons (`/v1/lexicons`) to apply; their entries are "
        "copied into the job when it is submitted (a later edit does not change it).",
    )
    lexicon: list[LexiconEntry] = Field(
        default_factory=list,
        max_length=MAX_LEXICON_ENTRIES,
        description="Entries of this job only. Where entries overlap the longest match wins, then the entry "
        "listed first: these, then those of `lexicons` in the order named.",
    )
    lexicon_snapshot: SkipJsonSchema[list[LexiconEntry]] = Field(
        default_factory=list,
        description="Set by the API at submission, never by clients: the entries of `lexicons` as they were then.",
    )
    filename_template: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="File name stem of each input's file when `concatenate` is false, from the fields "
        f"{', '.join('{' + name + '}' for name in TEMPLATE_FIELDS)} (`index`: the input's position, 0-based, "
        "`{index:05d}` pads it); it must name `{id}` or `{index}` so every file has a name of its own. Literal "
        "text: letters, digits, '.', '_' and '-'. Default: `{id}`.",
    )
    webhook_url: str | None = Field(
        None,
        max_length=2048,
        description="Also POST this job's final event (job.succeeded, job.failed, job.canceled) here, signed "
        "with the tenant's default webhook secret (GET /v1/webhooks/default/secret). Public http(s) only.",
    )

    @field_validator("lexicon")
    @classmethod
    def _unique_entries(cls, value: list[LexiconEntry]) -> list[LexiconEntry]:
        check_unique(value)
        return value

    _language_in_words = field_validator("language", mode="before")(_language_tag_in_words)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url_syntax(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_syntax(value)
            except UrlRefused as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("filename_template")
    @classmethod
    def _template_is_safe(cls, value: str | None) -> str | None:
        if value is not None:
            check_filename_template(value)
        return value

    @field_validator("format", mode="before")
    @classmethod
    def _known_format(cls, value: Any) -> Any:
        names = [fmt.value for fmt in AudioFormat]
        if value not in names:
            raise ValueError(f"format must be one of {', '.join(names)}")
        return value

    @field_validator("priority", mode="before")
    @classmethod
    def _known_priority(cls, value: Any) -> Any:
        names = [priority.value for priority in JobPriority]
        if value not in names:
            raise ValueError(f"priority must be one of {', '.join(names)}")
        return value

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_values_are_scalars(cls, value: Any) -> Any:
        """The constraints above in words, checked first: the union's own messages name each type it
        tried, and a large integer would otherwise pass as an inexact float."""
        for key, item in value.items() if isinstance(value, dict) else ():
            if not isinstance(key, str) or not _METADATA_KEY.match(key):
                raise ValueError(
                    f"metadata key {key!r} must be 1-{MAX_METADATA_KEY_CHARS} letters, digits, '_', '.', ':' or '-'"
                )
            if isinstance(item, str) and len(item) > MAX_METADATA_VALUE_CHARS:
                raise ValueError(f"metadata value {key!r} is longer than {MAX_METADATA_VALUE_CHARS} characters")
            if isinstance(item, dict | list):
                raise ValueError(f"metadata value {key!r} must be a string, number, boolean or null")
            if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_SAFE_INTEGER:
                raise ValueError(f"metadata value {key!r} is beyond +-(2^53 - 1)")
            if isinstance(item, str) and _CONTROL.search(item):
                raise ValueError(f"metadata value {key!r} contains control characters")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_is_bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes as JSON; at most {MAX_METADATA_BYTES}")
        return value

    @field_validator("bitrate_kbps")
    @classmethod
    def _known_bitrate(cls, value: int | None) -> int | None:
        if value is not None and value not in BITRATES_KBPS:
            raise ValueError(f"bitrate_kbps must be one of {', '.join(map(str, BITRATES_KBPS))}")
        return value

    @model_validator(mode="after")
    def _template_names_separate_files(self) -> JobCreate:
        if self.filename_template is not None and self.concatenate:
            raise ValueError("filename_template names separate files: it needs concatenate: false")
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> JobCreate:
        ids = [item.id for item in self.inputs if item.id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("input ids must be unique")
        return self

    @model_validator(mode="after")
    def _read_along_needs_one_file(self) -> JobCreate:
        if self.book is not None and self.book.read_along and not self.concatenate and len(self.inputs) > 1:
            raise ValueError("book.read_along needs one file for all inputs: leave concatenate true")
        return self

    @model_validator(mode="after")
    def _preset_delivery_defaults(self) -> JobCreate:
        """A preset that delivers at a fixed rate and bitrate (ACX) sets them when the job names none, so
        the job record says what the files are."""
        targets = self.mastering_options().targets(default_lufs=-19.0, default_peak_dbfs=-1.0)
        if self.sample_rate is None and targets.sample_rate is not None:
            self.sample_rate = targets.sample_rate
        if self.bitrate_kbps is None and targets.bitrate_kbps is not None:
            self.bitrate_kbps = targets.bitrate_kbps
        return self

    def pronunciation(self) -> list[LexiconEntry]:
        """The entries that apply, in precedence order: the inline ones, then the snapshot of `lexicons`."""
        return [*self.lexicon, *self.lexicon_snapshot]

    def mastering_options(self) -> MasteringOptions:
        if isinstance(self.mastering, MasteringOptions):
            return self.mastering
        return MasteringOptions(preset=self.mastering)

    def effective_pauses(self, defaults: dict[str, int]) -> dict[str, int]:
        """`defaults` (ms by boundary: clause, sentence, paragraph, end, chapter) with the job's own in
        their place; a paragraph pause also ends an input's last chunk."""
        own = self.pauses
        pauses = dict(defaults)
        for name, value in (
            ("clause", own.clause_ms),
            ("sentence", own.sentence_ms),
            ("paragraph", own.paragraph_ms),
            ("end", own.paragraph_ms),
            ("chapter", own.chapter_ms),
            ("turn", own.turn_ms),
        ):
            if value is not None:
                pauses[name] = value
        return pauses

    def input_titles(self) -> list[str]:
        """Each input's chapter title: its `title`, else its id."""
        return [item.title or input_id for item, input_id in zip(self.inputs, self.input_ids(), strict=True)]

    def input_ids(self) -> list[str]:
        return [item.id or f"input-{index:05d}" for index, item in enumerate(self.inputs)]

    def total_chars(self) -> int:
        return sum(len(item.spoken_text) for item in self.inputs)

    def unknown_speakers(self) -> list[tuple[int, str]]:
        """(input index, speaker) of every speaker the inputs name that `voices` does not cast."""
        tags = bool(self.voices)
        return [
            (index, turn.speaker)
            for index, item in enumerate(self.inputs)
            for turn in item.turns(tags=tags)
            if turn.speaker is not None and turn.speaker not in self.voices
        ]

    def file_tags(self) -> dict[str, str]:
        """The tags written into the audio file: the book's title, author and narrator (as album, artist
        and album_artist, composer and narrator, the audiobook conventions), then the metadata's
        `FILE_TAGS` keys with scalar values (which win)."""
        tags: dict[str, str] = {}
        if self.book is not None:
            if self.book.title:
                tags["title"] = tags["album"] = self.book.title
            if self.book.author:
                tags["artist"] = tags["album_artist"] = self.book.author
            if self.book.narrator:
                tags["composer"] = tags["narrator"] = self.book.narrator
            tags["genre"] = "Audiobook"
        tags.update(
            {
                key: str(value)
                for key, value in self.metadata.items()
                if key in FILE_TAGS and isinstance(value, str | int | float)
            }
        )
        return tags


class JobError(BaseModel):
    code: str
    message: str


class StoredFile(BaseModel):
    """A result file as the job record keeps it: storage keys only. URLs expire, so they are never stored;
    every read mints fresh ones (`shared.downloads`)."""

    key: str
    filename: str
    format: AudioFormat
    duration_seconds: float
    bytes: int
    sha256: str
    subtitles: dict[str, str] = Field(
        default_factory=dict,
        description="Keys of `srt`, `vtt`, `timing`, `words` (word timestamps) and `read_along` (EPUB3, when asked).",
    )
    mastering: dict[str, Any] | None = None

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


class FlaggedChunk(BaseModel):
    """A chunk whose best draw still failed quality control: where to listen, and what was wrong."""

    input: str = Field(..., description="Id of the input it belongs to.")
    chunk: str = Field(..., description="Key of the chunk (stable across retries of the job).")
    sentence: str = Field(
        ..., description="The sentence holding the first missing word; the chunk's whole text when none is known."
    )
    text: str = Field(..., description="The chunk's spoken text.")
    file: str = Field(..., description="File name of the result the offsets refer to.")
    start_seconds: float = Field(..., description="Where the chunk starts in `file`.")
    end_seconds: float = Field(..., description="Where the chunk ends in `file`.")
    at_seconds: float = Field(
        ..., description="Where to listen in `file`: the first missing word's place, else the chunk's start."
    )
    problem: str = Field(
        ...,
        description="`asr` (word error rate over the threshold), `silent`, `truncated`, `runaway` or `long_silence`.",
    )
    wer: float | None = Field(..., description="Word error rate of the kept draw; null when no recogniser ran.")
    missing: list[str] = Field(default_factory=list, description="Words of the text not heard.")
    inserted: list[str] = Field(default_factory=list, description="Words heard that the text does not have.")
    draws: int = Field(..., description="Draws made of the chunk; the best one was kept.")


class QualitySummary(BaseModel):
    """Quality control of a job's chunks (`NARRATE_QC_*`); per-chunk scores are in `quality_report`."""

    asr: str = Field(..., description="The recogniser that checked the chunks: `off`, `pocketsphinx` or `whisper`.")
    max_wer: float = Field(..., description="A chunk scoring above this word error rate was drawn again.")
    chunks: int
    checked: int = Field(..., description="Chunks scored by the recogniser.")
    redrawn: int = Field(..., description="Chunks drawn more than once.")
    mean_wer: float | None = None
    worst_wer: float | None = None
    flagged: list[FlaggedChunk] = Field(
        default_factory=list, description="Chunks still failing after their draws, in reading order: review these."
    )


class StoredResult(BaseModel):
    """The `result` field of a job record: what the worker uploaded, by storage key."""

    file: StoredFile | None = None
    inputs: dict[str, StoredFile] = Field(default_factory=dict)
    manifest: StoredObject | None = None
    fits: dict[str, LineFit] = Field(default_factory=dict, description="Input id -> fit of its timed line.")
    quality: QualitySummary | None = None
    quality_report: StoredObject | None = None
    manifest_csv: StoredObject | None = None
    failed: dict[str, JobError] = Field(default_factory=dict)
    """Inputs (lines) of a batch that failed on their own; the others have their files."""
    reused: list[str] = Field(default_factory=list)
    """Inputs whose file was copied from the tenant's line cache instead of synthesised."""
    render: StoredObject | None = None
    """The render record (`shared.revisions`): plan, chunk audio, seeds and engine a pickup starts from."""
    takes: list[StoredFile] = Field(default_factory=list)
    """A pickup of several takes: each take's span alone, take 1 first."""


class StoredVersion(BaseModel):
    """One published result of a job (`versions` in the record): the original render is version 1,
    each pickup that is published (`shared.revisions`) the next."""

    version: int
    created_at: float
    revision: str | None = None
    take: int | None = None
    result: StoredResult
    warnings: list[str] = Field(default_factory=list)


class FileLink(BaseModel):
    url: str = Field(..., description="Minted at every read; valid until `url_expires_at`.")
    url_expires_at: datetime
    key: str = Field(..., description="Storage key of the object (for operators).")
    bytes: int
    sha256: str


class MasteringRule(BaseModel):
    name: str
    value: float | None = Field(..., description="Measured; null for digital silence (-inf).")
    min: float | None
    max: float | None
    passed: bool


class MasteringReportView(BaseModel):
    """The mastering report of one file, measured on its final samples (after the last resample)."""

    preset: str
    sample_rate: int
    duration_seconds: float | None
    rms_db: float | None
    loudness_lufs: float | None = Field(..., description="Integrated loudness, ITU-R BS.1770-4.")
    true_peak_dbfs: float | None = Field(..., description="4x-oversampled true peak (dBTP).")
    noise_floor_db: float | None = Field(..., description="RMS of the quietest 500 ms.")
    head_silence_seconds: float | None
    tail_silence_seconds: float | None
    rules: list[MasteringRule]
    passed: bool


class FileResult(FileLink):
    filename: str
    format: AudioFormat
    duration_seconds: float
    subtitles: dict[str, str] = Field(
        default_factory=dict,
        description="URLs of `srt`, `vtt` (one cue per sentence), `timing` (JSON), `words` (JSON: every word's "
        "start and end and its characters in the input) and, for a book with `read_along`, `read_along` (EPUB3 "
        "with Media Overlays) files, minted with `url` and valid as long.",
    )
    mastering: MasteringReportView | None = Field(
        default=None, description="How the file measures against the job's mastering targets."
    )


class Progress(BaseModel):
    chunks_done: int = 0
    chunks_total: int = 0
    percent: float = 0.0
    audio_seconds: float = 0.0


class Usage(BaseModel):
    """What a job (or a tenant in a period) used."""

    characters: int = Field(default=0, description="Characters of text submitted.")
    audio_seconds: float = Field(default=0.0, description="Seconds of speech produced (kept chunks).")
    engine_seconds: float = Field(default=0.0, description="Wall seconds the engine spent generating them.")
    lines_reused: int = Field(
        default=0, description="Lines (inputs) whose file came from the line cache, not synthesised again."
    )


class InputView(BaseModel):
    id: str
    chars: int
    voice: str | None = None
    language: str | None = Field(
        None, description="The language it is spoken in: named at submission, or set when the job is planned."
    )
    language_detected: bool = Field(False, description="Whether `language` was detected in the text.")
    status: LineStatus | None = Field(
        default=None, description="Of a finished job of separate files: whether this line has its file."
    )
    reused: bool = Field(default=False, description="Its file was copied from the line cache (not synthesised).")
    error: JobError | None = Field(
        default=None,
        description="Why this line failed (the others are unaffected): `voice_deleted`, `voice_unavailable` or "
        "`cloning_unsupported` (its voice, when the job was planned), `synthesis_failed` (the engine could not "
        "synthesise it), `line_cache_expired` (its cached file went while the job ran).",
    )
    result: FileResult | None = None
    fit: LineFit | None = Field(
        default=None, description="A timed line's fit (`target_seconds`, `max_seconds`, `speed`)."
    )


class LineCounts(BaseModel):
    """The lines (inputs) of a finished job of separate files."""

    succeeded: int = Field(..., description="Lines with a file, reused ones included.")
    failed: int = Field(..., description="Lines that failed on their own (see each input's `error`).")
    reused: int = Field(..., description="Lines copied from the tenant's line cache.")
    synthesised: int = Field(..., description="Lines generated by this job.")


class VersionView(BaseModel):
    """A published result of the job: version 1 is the original render, each published pickup the next."""

    version: int
    created_at: datetime
    revision: str | None = Field(None, description="The pickup (revision id) that made it; null for version 1.")
    take: int | None = Field(None, description="The take of that pickup.")
    result: FileResult | None = None
    inputs: dict[str, FileResult] = Field(default_factory=dict, description="Per-input files, by input id.")
    warnings: list[str] = Field(default_factory=list)


class JobView(BaseModel):
    """A job as clients see it."""

    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    voice: str | None
    language: str | None = None
    format: AudioFormat
    sample_rate: int | None
    concatenate: bool
    metadata: dict[str, Any]
    priority: JobPriority = JobPriority.NORMAL
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
    quality: QualitySummary | None = Field(
        default=None, description="Quality control of the chunks (a succeeded job): counts and the flagged ones."
    )
    quality_report: FileLink | None = Field(
        default=None, description="Every chunk's scores and offsets (`quality.json`)."
    )
    manifest_csv: FileLink | None = Field(default=None, description="The same manifest as CSV (`manifest.csv`).")
    lines: LineCounts | None = Field(
        default=None,
        description="Of a finished job of separate files: a job whose lines partly failed still `succeeded`; "
        "`lines.failed` counts the lines without a file.",
    )
    error: JobError | None = None
    webhook_url: str | None = None
    usage: Usage = Field(default_factory=Usage)
    versions: list[VersionView] = Field(
        default_factory=list,
        description="Every published result once a pickup was published (`result` is the newest); empty before.",
    )
    revision_of: str | None = Field(None, description="The job this one is a pickup (revision) of.")

    _stored: StoredResult = PrivateAttr(default_factory=StoredResult)
    _versions: list[StoredVersion] = PrivateAttr(default_factory=list)

    @property
    def stored_result(self) -> StoredResult:
        """What the record holds by key; `shared.downloads.mint_view` turns it into the link fields."""
        return self._stored

    def with_stored_result(self, stored: StoredResult, versions: list[StoredVersion] | None = None) -> JobView:
        self._stored = stored
        if versions is not None:
            self._versions = versions
        return self

    @property
    def stored_versions(self) -> list[StoredVersion]:
        return self._versions


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
