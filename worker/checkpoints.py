"""Finished chunk audio kept in storage until the job ends, so a redelivered job resumes.

FLAC at 24 bits: lossless for our float audio at a third of the size of raw floats.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from shared.storage import Storage
from shared.storage_keys import checkpoint_key, checkpoint_prefix


def save_chunk(storage: Storage, job_id: str, run: int, chunk_key: str, audio: np.ndarray, sample_rate: int) -> None:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_24")
    storage.put_bytes(checkpoint_key(job_id, chunk_key, run), buffer.getvalue(), "audio/flac")


def load_chunk(storage: Storage, job_id: str, run: int, chunk_key: str) -> np.ndarray:
    """A chunk as the run that recorded it (`DoneChunk.run`) stored it."""
    data, _ = sf.read(io.BytesIO(storage.get_bytes(checkpoint_key(job_id, chunk_key, run))), dtype="float32")
    return data


def discard(storage: Storage, job_id: str) -> None:
    storage.delete_prefix(checkpoint_prefix(job_id))
