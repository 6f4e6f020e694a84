"""The cloned voices a job names (speaker embedding and language tag), loaded once when the job starts.

A voice mix (`ada(0.7)+ben(0.3)`) is loaded as its parts and blended here, under its own (canonical)
name, so the plan and the speak units treat it as one more voice.

A voice deleted after its job was queued fails the job at the start with `voice_deleted` rather than
letting it run in some other voice: the producer asked for that voice, and the voice's owner asked for
it to be gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from shared.jobs import JobCreate
from shared.speaker_embedding import embedding_from_bytes
from shared.storage import Storage, StorageKeyMissing
from shared.storage_keys import embedding_key
from shared.voice_mix import MixError, is_mix, mix_embeddings, parse_mix
from shared.voice_store import VoiceStatus, VoiceStore, is_voice_id

if TYPE_CHECKING:
    from worker.runtime import Runtime


class VoiceUnavailable(Exception):
    """A voice the job names cannot be used; `code` and the message go into the job's error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ClonedVoice:
    embedding: np.ndarray
    """Unit 128-d speaker embedding, one array shared by every chunk of the job."""
    language: str | None
    """The voice's language/accent tag (`en_gb`), which picks the model's tag for its chunks."""


def cloned_voice_ids(spec: JobCreate) -> list[str]:
    """Cloned voice ids and voice mixes the job, its inputs and its dialogue casting name, each once, in
    order of first use."""
    named = [spec.voice, *(item.voice for item in spec.inputs), *spec.voices.values()]
    return list(dict.fromkeys(voice for voice in named if voice and (is_voice_id(voice) or is_mix(voice))))


def load_cloned_voices(
    spec: JobCreate,
    tenant: str,
    *,
    voices: VoiceStore,
    storage: Storage,
    can_clone: bool,
    unavailable: dict[str, VoiceUnavailable] | None = None,
) -> dict[str, ClonedVoice]:
    """Voice id (or mix) -> embedding and language of every cloned voice of the job (of `tenant` only).
    With `unavailable`, a voice that cannot be used is put there instead of raising (a batch of lines
    fails only the lines in that voice)."""
    out: dict[str, ClonedVoice] = {}
    for name in cloned_voice_ids(spec):
        try:
            out[name] = _load_voice_or_mix(name, out, tenant, voices=voices, storage=storage, can_clone=can_clone)
        except VoiceUnavailable as exc:
            if unavailable is None:
                raise
            unavailable[name] = exc
    return out


def _load_voice_or_mix(
    name: str, loaded: dict[str, ClonedVoice], tenant: str, *, voices: VoiceStore, storage: Storage, can_clone: bool
) -> ClonedVoice:
    """A cloned voice, or a mix blended from its parts' embeddings (weighted mean, normalised again; the
    language of its heaviest part)."""
    if not is_mix(name):
        return _load_one(name, tenant, voices=voices, storage=storage, can_clone=can_clone)
    if not can_clone:
        raise VoiceUnavailable(
            "cloning_unsupported", f"The voice {name!r} is a voice mix; this worker's engine cannot clone."
        )
    mix = parse_mix(name)
    parts = {
        voice: loaded.get(voice) or _load_one(voice, tenant, voices=voices, storage=storage, can_clone=can_clone)
        for voice in mix.voices
    }
    try:
        vector = mix_embeddings([parts[voice].embedding for voice, _ in mix.parts], [w for _, w in mix.parts])
    except MixError as exc:
        raise VoiceUnavailable("voice_unavailable", f"The voice mix {name!r} cannot be used: {exc}.") from exc
    return ClonedVoice(vector, parts[mix.main_voice].language)


def _load_one(voice_id: str, tenant: str, *, voices: VoiceStore, storage: Storage, can_clone: bool) -> ClonedVoice:
    if not is_voice_id(voice_id):
        raise VoiceUnavailable("voice_unavailable", f"The voice {voice_id!r} has no speaker embedding to mix.")
    record = voices.get(voice_id, tenant=tenant)
    if record is None:
        raise VoiceUnavailable("voice_deleted", f"The voice {voice_id!r} was deleted after the job was queued.")
    if record.status != VoiceStatus.READY:
        raise VoiceUnavailable("voice_unavailable", f"The voice {voice_id!r} is {record.status.value}, not ready.")
    if not can_clone:
        raise VoiceUnavailable(
            "cloning_unsupported",
            f"The voice {voice_id!r} is a cloned voice; this worker's engine cannot clone.",
        )
    try:
        data = storage.get_bytes(embedding_key(tenant, voice_id))
    except StorageKeyMissing as exc:
        raise VoiceUnavailable(
            "voice_deleted", f"The voice {voice_id!r} was deleted after the job was queued."
        ) from exc
    return ClonedVoice(embedding_from_bytes(data), record.language)


def load_job_voices(
    spec: JobCreate, tenant: str, rt: Runtime, unavailable: dict[str, VoiceUnavailable] | None = None
) -> dict[str, ClonedVoice]:
    """`load_cloned_voices` with a worker `Runtime`'s voice store, storage and engine."""
    if not cloned_voice_ids(spec):
        return {}
    return load_cloned_voices(
        spec, tenant, voices=rt.voices, storage=rt.storage, can_clone=rt.engine.can_clone, unavailable=unavailable
    )
