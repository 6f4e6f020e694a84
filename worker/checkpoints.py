"""Finished chunk audio kept in storage until the job ends, so a unit given back resumes after it.

A speak unit writes its chunks in parts: one FLAC object holding every chunk it finished since its
last part, written every `NARRATE_CHECKPOINT_INTERVAL_SECONDS`, at its end and when it stops (one
storage write per interval of a unit, not one per chunk). A chunk is a slice of its part
(`DurableChunk.offset`, `samples`). FLAC at 24 bits: lossless for our float audio at a third of the
size of raw floats.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import soundfile as sf

from shared.storage import Storage


def encode_part(audios: Sequence[np.ndarray], sample_rate: int) -> tuple[bytes, list[int]]:
    """One part object's bytes and the offset of each chunk in it."""
    offsets: list[int] = []
    position = 0
    for audio in audios:
        offsets.append(position)
        position += len(audio)
    joined = np.concatenate(list(audios)) if audios else np.zeros(0, np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(joined, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_24")
    return buffer.getvalue(), offsets


def save_part(storage: Storage, key: str, audios: Sequence[np.ndarray], sample_rate: int) -> list[int]:
    data, offsets = encode_part(audios, sample_rate)
    storage.put_bytes(key, data, "audio/flac")
    return offsets


def load_part(storage: Storage, key: str) -> np.ndarray:
    data, _ = sf.read(io.BytesIO(storage.get_bytes(key)), dtype="float32")
    return np.asarray(data, dtype=np.float32)
