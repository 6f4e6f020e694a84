"""Cloning a voice: reference clips in, a 128-d speaker embedding (and a short preview) out.

The body of the Celery task as plain functions. Each clip is decoded by content, mixed to mono,
resampled to the embedder's 16 kHz, trimmed of silence and checked (enough speech, not too quiet, not
clipped); every clip must pass, and the voice fails with a reason naming the clip otherwise. The
per-clip embeddings are averaged and L2-normalised: KaniTTS2 was trained on per-speaker averages, so
several clips give a steadier voice than one.

Reference audio is personal data: nothing here logs it, and a voice that fails keeps no audio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.audio.decode import AudioDecodeError, decode_audio
from shared.audio.encode import encode
from shared.audio.formats import AudioFormat
from shared.audio.resample import resample
from shared.audio.trim import trim_silence
from shared.speaker_embedding import EMBEDDING_DIM, embedding_to_bytes
from shared.storage import Storage, StorageKeyMissing
from shared.storage_keys import embedding_key, preview_key, reference_key, voice_prefix
from shared.text.rate import DEFAULT_CHARS_PER_SECOND
from shared.voice_store import MAX_SPEECH_SECONDS, MIN_SPEECH_SECONDS, VoiceRecord, VoiceStatus, VoiceStore
from shared.webhooks import emit_voice_event
from worker.engines.base import ChunkRequest, Engine, Sampling
from worker.engines.registry import SpeakerEmbedder

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)

EMBEDDER_RATE = 16000
TRIM_THRESHOLD_DB = -45.0
QUIET_RMS_DB = -40.0
"""Speech whose RMS (after trimming) stays below this is too quiet to characterise a voice."""
CLIP_LEVEL = 0.99
CLIPPED_FRACTION = 0.005
"""More than this share of the audible samples at full scale means the recording was clipped."""
PREVIEW_TEXT = "Hello! This is a short preview of the new voice, generated from your reference recordings."
PREVIEW_SEED = 1234


class ClipRejected(ValueError):
    """A reference clip cannot be used; `code` is machine-readable, the message is for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class PreparedClip:
    audio: np.ndarray
    """Mono float32 at 16 kHz, silence trimmed."""
    speech_seconds: float


def db(value: float) -> float:
    return 20.0 * float(np.log10(max(value, 1e-10)))


def prepare_clip(audio: np.ndarray, sr: int) -> PreparedClip:
    """16 kHz mono speech of the clip, or `ClipRejected` saying what is wrong with it."""
    magnitude = np.abs(audio)
    audible = int(np.count_nonzero(magnitude > 0.01))
    if audible and np.count_nonzero(magnitude >= CLIP_LEVEL) / audible > CLIPPED_FRACTION:
        raise ClipRejected("clipped", "the recording is clipped (distorted by too high a level); record it again lower")
    speech = trim_silence(resample(audio, sr, EMBEDDER_RATE), EMBEDDER_RATE, threshold_db=TRIM_THRESHOLD_DB)
    if speech.shape[0] == 0:
        raise ClipRejected("no_speech", "no speech found: the clip is silent or far too quiet")
    rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64))))
    if db(rms) < QUIET_RMS_DB:
        raise ClipRejected("too_quiet", f"too quiet (speech at {db(rms):.0f} dBFS RMS; at least {QUIET_RMS_DB:.0f})")
    seconds = speech.shape[0] / EMBEDDER_RATE
    if seconds < MIN_SPEECH_SECONDS:
        raise ClipRejected(
            "too_short",
            f"only {seconds:.1f} s of speech after trimming silence; at least {MIN_SPEECH_SECONDS:.0f} s",
        )
    if seconds > MAX_SPEECH_SECONDS:
        raise ClipRejected(
            "too_long",
            f"{seconds:.0f} s of speech after trimming silence; at most {MAX_SPEECH_SECONDS:.0f} s per clip "
            "(cut it into several clips)",
        )
    return PreparedClip(np.ascontiguousarray(speech, dtype=np.float32), seconds)


def average_embedding(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of unit vectors, L2-normalised again (the model was trained on such averages)."""
    stacked = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in vectors])
    if stacked.shape[1] != EMBEDDING_DIM or not np.all(np.isfinite(stacked)):
        raise ValueError(f"the embedder returned vectors of shape {stacked.shape[1:]}, expected ({EMBEDDING_DIM},)")
    mean = stacked.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-6:
        raise ValueError("the clips' embeddings cancel out")
    return (mean / norm).astype(np.float32)


def clone_voice(
    voice_id: str,
    *,
    voices: VoiceStore,
    storage: Storage,
    embedder: Callable[[], SpeakerEmbedder],
    engine: Engine | None,
    max_attempts: int = 3,
) -> VoiceStatus | None:
    """Process a voice in status `processing`; returns its final status (None: nothing to do).

    `embedder` is called only once the clips passed their checks, so a bad upload never loads a model.
    `engine` renders the preview when it can clone (None: no preview). A voice whose task was delivered
    more than `max_attempts` times (its workers kept dying on it) fails instead of looping.
    """
    record = voices.get(voice_id, tenant=None)
    attempts = voices.claim(voice_id) if record is not None else -1
    if record is None or attempts < 0:
        log.info("voice %s not processing (%s)", voice_id, record.status if record else "missing")
        return None
    if attempts > max_attempts:
        message = f"The worker cloning this voice stopped unexpectedly {max_attempts} times; giving up."
        return _failed(voices, storage, record, "worker_lost", message)
    try:
        prepared, clips = _prepare_all(record, storage)
        model = embedder()
        vector = average_embedding([model.embed(clip.audio, EMBEDDER_RATE) for clip in prepared])
        storage.put_bytes(embedding_key(record.tenant, voice_id), embedding_to_bytes(vector))
    except ClipRejected as exc:
        return _failed(voices, storage, record, exc.code, str(exc))
    except Exception as exc:
        log.exception("voice %s: cloning failed", voice_id)
        return _failed(voices, storage, record, "internal_error", f"Cloning failed: {type(exc).__name__}: {exc}")
    preview = _render_preview(record, storage, engine, vector) if engine is not None and engine.can_clone else False
    if not voices.mark_ready(voice_id, clips=clips, preview=preview):
        # Deleted while we worked: leave nothing behind.
        storage.delete_prefix(voice_prefix(record.tenant, voice_id))
        return None
    log.info("voice %s ready (%d clips)", voice_id, len(clips))
    return VoiceStatus.READY


def _prepare_all(record: VoiceRecord, storage: Storage) -> tuple[list[PreparedClip], list[dict[str, Any]]]:
    prepared: list[PreparedClip] = []
    clips: list[dict[str, Any]] = []
    problems: list[ClipRejected] = []
    for index, clip in enumerate(record.clips):
        label = f"clip {index + 1} ({clip.get('filename', '?')})"
        try:
            audio, sr = decode_audio(storage.get_bytes(reference_key(record.tenant, record.id, index)))
            ready = prepare_clip(audio, sr)
        except StorageKeyMissing:
            problems.append(ClipRejected("missing_audio", f"{label}: the uploaded audio is gone"))
            continue
        except AudioDecodeError as exc:
            problems.append(ClipRejected("invalid_audio", f"{label}: not readable audio ({exc})"))
            continue
        except ClipRejected as exc:
            problems.append(ClipRejected(exc.code, f"{label}: {exc}"))
            continue
        prepared.append(ready)
        clips.append({**clip, "speech_seconds": round(ready.speech_seconds, 3)})
    if problems:
        raise ClipRejected(problems[0].code, "; ".join(str(problem) for problem in problems))
    if not prepared:
        raise ClipRejected("no_clips", "the voice has no reference clips")
    return prepared, clips


def _failed(voices: VoiceStore, storage: Storage, record: VoiceRecord, code: str, message: str) -> VoiceStatus:
    """A failed voice keeps its reason but no audio and no embedding (data minimisation)."""
    storage.delete_prefix(voice_prefix(record.tenant, record.id))
    voices.mark_failed(record.id, code, message)
    log.info("voice %s failed: %s", record.id, code)
    return VoiceStatus.FAILED


def _render_preview(record: VoiceRecord, storage: Storage, engine: Engine, vector: np.ndarray) -> bool:
    """A short MP3 in the new voice; a voice is still usable when this fails."""
    request = ChunkRequest(
        key=f"preview-{record.id}",
        text=PREVIEW_TEXT,
        voice=record.id,
        speaker_embedding=vector,
        language=record.language,
        sampling=Sampling(seed=PREVIEW_SEED),
        last_sentence=PREVIEW_TEXT,
        expected_seconds=len(PREVIEW_TEXT) / DEFAULT_CHARS_PER_SECOND,
    )
    try:
        pieces = [result.audio for result in engine.generate([request])]
        audio = trim_silence(np.concatenate(pieces), engine.sample_rate) if pieces else np.zeros(0, np.float32)
        if audio.shape[0] == 0:
            return False
        storage.put_bytes(
            preview_key(record.tenant, record.id),
            encode(audio, engine.sample_rate, AudioFormat.MP3),
            AudioFormat.MP3.content_type,
        )
        return True
    except Exception:
        log.warning("voice %s: preview rendering failed", record.id, exc_info=True)
        return False


def run_clone(voice_id: str, rt: Runtime) -> str | None:
    """Celery task body: clone with the process's runtime; the embedder comes from the engine registry."""
    voices, engine = rt.voices, rt.engine
    if not engine.can_clone:
        record = voices.get(voice_id, tenant=None)
        if record is not None and record.status == VoiceStatus.PROCESSING:
            _failed(
                voices, rt.storage, record, "cloning_unsupported",
                f"Voice cloning needs the kanitts2 engine; this worker runs {engine.name!r}.",
            )  # fmt: skip
            emit_voice_event(rt.services, voice_id)
            return VoiceStatus.FAILED.value
        return None
    status = clone_voice(
        voice_id,
        voices=voices,
        storage=rt.storage,
        embedder=rt.speaker_embedder,
        engine=engine,
        max_attempts=rt.settings.max_attempts,
    )
    if status:
        emit_voice_event(rt.services, voice_id)
    return status.value if status else None
