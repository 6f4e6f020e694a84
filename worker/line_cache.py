"""The tenant's cache of finished lines: a re-submitted sheet reuses the files of lines that did not change.

A line of a batch of separate files (`concatenate: false`) is keyed by a digest of everything its
file's bytes depend on: the text (Unicode NFC, runs of spaces and tabs as one space, each line
stripped), the voice and its embedding's digest (cloned voices), the language, the engine and its
`model_version`, sampling and seed, chunk budget, pauses, mastering targets (with the line's own
`loudness_lufs`), format, file rate, bitrate and file tags. Entries live under the tenant's own prefix
(`storage_keys.line_cache_prefix`): the tenant is in the key, never in the digest, so one tenant's
identical sheet is never served another's audio. The plan unit looks the lines up (`find_cached`);
assembly copies a hit server-side into the job's run prefix (`reuse`, byte-identical to the first
file) and files every line it synthesised (`remember`). An entry is written after its audio, so an
entry names audio that exists; a line whose entry vanished between planning and assembly (expired)
fails on its own with `line_cache_expired` (submit it again).

Unseeded sampling engines give a different draw each time; the cache still reuses the first one (the
point is not to pay for a line twice). Change `CACHE_VERSION` when the pipeline's sound changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from shared.audio.formats import file_rate
from shared.audio.presets import MasteringTargets
from shared.audio.subtitles import Cue, to_srt, to_timing_json, to_vtt
from shared.jobs import JobCreate, StoredFile
from shared.storage import Storage
from shared.storage_keys import line_cache_keys
from worker.assembly import Mastering

if TYPE_CHECKING:
    from shared.settings import Settings
    from worker.engines.base import Engine
    from worker.voice_embeddings import ClonedVoice

CACHE_VERSION = 1
LOOKUP_THREADS = 16
"""Existence checks in flight at once while a sheet is planned (S3 round trips dominate)."""

_SPACES = re.compile(r"[ \t\u00a0]+")


def normalised_text(text: str) -> str:
    """The text as far as the speech depends on it: NFC, spaces collapsed, lines stripped."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n")).strip()


def line_digest(
    spec: JobCreate,
    index: int,
    *,
    voice: str,
    voice_version: str,
    language: str,
    engine: str,
    file_rate: int,
    targets: MasteringTargets,
    pauses: dict[str, int],
    chunk_budget_seconds: float,
) -> str:
    """The cache key of input `index` (hex SHA-256); `engine` is the engine's name and model version."""
    item = spec.inputs[index]
    fmt = spec.book.chapter_files if spec.book is not None and spec.book.chapter_files else spec.format
    payload: dict[str, Any] = {
        "v": CACHE_VERSION,
        "text": normalised_text(item.spoken_text),
        "text_format": item.text_format.value,
        # What else shapes the line's audio: its timing, a dialogue's casting, the padding, the lexicon.
        "timing": [item.target_seconds, item.max_seconds, item.speed],
        "voices": spec.voices,
        "padding_ms": spec.padding_ms,
        "lexicon": [entry.model_dump(mode="json") for entry in spec.pronunciation()],
        "voice": voice,
        "voice_version": voice_version,
        "language": language,
        "engine": engine,
        "sampling": spec.sampling.model_dump(mode="json"),
        "chunk_budget_seconds": chunk_budget_seconds,
        "pauses": pauses,
        "targets": asdict(targets),
        "format": str(fmt),
        "file_rate": file_rate,
        "bitrate_kbps": spec.bitrate_kbps,
        "tags": spec.file_tags(),
    }
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def embedding_version(embedding: Any) -> str:
    """A cloned voice's version: the digest of its embedding (re-recording a voice changes it)."""
    return hashlib.sha256(embedding.tobytes()).hexdigest()[:16]


def find_cached(storage: Storage, tenant: str, digests: dict[int, str], extension: str) -> set[int]:
    """The inputs whose line has an entry in `tenant`'s cache (looked up in parallel)."""
    if not digests:
        return set()

    def present(item: tuple[int, str]) -> int | None:
        return item[0] if storage.exists(line_cache_keys(tenant, item[1], extension)[1]) else None

    with ThreadPoolExecutor(min(LOOKUP_THREADS, len(digests))) as pool:
        return {index for index in pool.map(present, digests.items()) if index is not None}


def remember(
    storage: Storage,
    tenant: str,
    digest: str,
    stored: StoredFile,
    cues: list[Cue],
    span: tuple[float, float] | None,
) -> None:
    """File a line just uploaded (`stored`) in the cache: its audio copied, then its entry."""
    audio_key, entry_key = line_cache_keys(tenant, digest, stored.format.extension)
    storage.copy(stored.key, audio_key)
    entry = {
        "duration_seconds": stored.duration_seconds,
        "bytes": stored.bytes,
        "sha256": stored.sha256,
        "format": stored.format.value,
        "mastering": stored.mastering,
        "cues": [[cue.start, cue.end, cue.text] for cue in cues],
        "span": list(span) if span is not None else None,
    }
    storage.put_bytes(entry_key, json.dumps(entry).encode(), "application/json")


def reuse(
    storage: Storage, tenant: str, digest: str, extension: str, *, prefix: str, name: str, input_id: str
) -> StoredFile:
    """Copy a cached line into `prefix` as `name.extension`, with subtitles for `input_id`; raises
    `StorageKeyMissing` when the entry or its audio is gone. The entry is written again, so a line in use
    does not expire."""
    audio_key, entry_key = line_cache_keys(tenant, digest, extension)
    raw = storage.get_bytes(entry_key)
    entry = json.loads(raw)
    filename = f"{name}.{extension}"
    storage.copy(audio_key, prefix + filename)
    storage.put_bytes(entry_key, raw, "application/json")  # refreshes its last-modified time
    cues = [Cue(start, end, text) for start, end, text in entry["cues"]]
    spans = [(input_id, *entry["span"])] if entry.get("span") else []
    subtitles: dict[str, str] = {}
    for suffix, text, mime in (
        ("srt", to_srt(cues), "application/x-subrip"),
        ("vtt", to_vtt(cues), "text/vtt"),
        ("json", to_timing_json(cues, inputs=spans), "application/json"),
    ):
        storage.put_bytes(f"{prefix}{name}.{suffix}", text.encode(), mime)
        subtitles["timing" if suffix == "json" else suffix] = f"{prefix}{name}.{suffix}"
    return StoredFile(
        key=prefix + filename,
        filename=filename,
        format=entry["format"],
        duration_seconds=entry["duration_seconds"],
        bytes=entry["bytes"],
        sha256=entry["sha256"],
        subtitles=subtitles,
        mastering=entry["mastering"],
    )


def is_line_batch(spec: JobCreate) -> bool:
    """A batch of separate files, one per input (a line sheet): its lines fail, and are cached, one by one."""
    return not spec.concatenate and len(spec.inputs) > 1


def digests_for(
    spec: JobCreate,
    *,
    settings: Settings,
    engine: Engine,
    cloned: dict[str, ClonedVoice],
    languages: Sequence[str],
    skip: Iterable[int] = (),
) -> dict[int, str]:
    """Every line's `line_digest`, but those in `skip` (lines that failed already)."""
    mastering = Mastering.from_settings(settings)
    pauses = mastering.pauses_for(spec)
    rate = file_rate(spec.format, spec.sample_rate or engine.sample_rate)
    identity = f"{engine.name}:{engine.model_version}"
    skipped = set(skip)
    out: dict[int, str] = {}
    for index, item in enumerate(spec.inputs):
        if index in skipped:
            continue
        language = languages[index]
        voice = item.voice or spec.voice or engine.default_voice(language)
        clone = cloned.get(voice)
        out[index] = line_digest(
            spec,
            index,
            voice=voice,
            voice_version=embedding_version(clone.embedding) if clone is not None else "",
            language=clone.language if clone is not None and clone.language else language,
            engine=identity,
            file_rate=rate,
            targets=mastering.targets_for(spec, index),
            pauses=pauses,
            chunk_budget_seconds=settings.chunk_budget_seconds,
        )
    return out
