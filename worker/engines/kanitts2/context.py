"""Context carried from chunk k-1 to chunk k of a stream, and its checkpointable form.

Chunk k is prompted with the last sentence(s) of chunk k-1: their text goes into the human turn in
front of the new text and their audio frames are pre-filled after `start_of_speech`, so positions
continue as if it were one utterance. Separately, the codec decodes chunk k behind the previous
chunk's trailing frames so the waveform continues without a seam.

Which frames belong to the last sentence is not known (the model aligns nothing): we estimate by
character share, `round(frames * len(sentence) / len(chunk text))`, bounded to [1 frame,
MAX_CONTEXT_SECONDS]; when the estimate runs past that bound the text would no longer match the
frames, so the chunk is prompted without LM context (the codec context stays). An estimate that is
off by a few frames cuts the sentence's first or last syllable in the prompt, which the model
tolerates; carrying no text at all (the reference) drifts more.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

MAX_CONTEXT_SECONDS = 12.0
"""Longest pre-filled audio context; keeps prompts well inside the 40 s the model was trained on."""
CARRY_VERSION = 1


@dataclass(frozen=True)
class StreamContext:
    text: str
    """Text of the previous chunk's last sentence(s), for the next prompt ("" = no LM context)."""
    frames: np.ndarray
    """Their estimated frames `[F, codebooks]`, pre-filled after start_of_speech."""
    tail: np.ndarray
    """The stream's last generated frames `[C, codebooks]`: the codec's left context."""

    def to_bytes(self) -> bytes:
        """Serialised with `np.savez` (no pickle), so a checkpoint cannot run code when loaded."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            version=np.array(CARRY_VERSION),
            text=np.array(self.text),
            frames=np.asarray(self.frames, dtype=np.int16),
            tail=np.asarray(self.tail, dtype=np.int16),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> StreamContext:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if int(archive["version"]) != CARRY_VERSION:
                raise ValueError(f"unsupported KaniTTS2 carry version {int(archive['version'])}")
            return cls(
                text=str(archive["text"]),
                frames=archive["frames"].astype(np.int64),
                tail=archive["tail"].astype(np.int64),
            )


def context_text(text: str, last_sentence: str, sentences: int) -> str:
    """The last `sentences` sentences of a chunk (`last_sentence` when one is asked for and known)."""
    if sentences <= 0 or not text.strip():
        return ""
    if sentences == 1 and last_sentence.strip():
        return last_sentence.strip()
    import pysbd

    parts = [p.strip() for p in pysbd.Segmenter(language="en", clean=False).segment(text) if p.strip()]
    return " ".join(parts[-sentences:])


def next_context(
    *,
    text: str,
    last_sentence: str,
    frames: np.ndarray,
    previous: StreamContext | None,
    sentences: int,
    tail_frames: int,
    frames_per_second: float,
) -> StreamContext:
    """What the next chunk of the stream needs, given this chunk's text and generated frames."""
    prior_tail = previous.tail if previous is not None else frames[:0]
    tail = np.concatenate([prior_tail, frames])[-tail_frames:] if tail_frames > 0 else frames[:0]
    sentence = context_text(text, last_sentence, sentences)
    chars = len(text.strip())
    if not sentence or not chars or not len(frames):
        return StreamContext(text="", frames=frames[:0], tail=tail)
    share = min(1.0, len(sentence) / chars)
    count = max(1, round(len(frames) * share))
    if count > math.floor(MAX_CONTEXT_SECONDS * frames_per_second):
        return StreamContext(text="", frames=frames[:0], tail=tail)
    return StreamContext(text=sentence, frames=frames[-count:], tail=tail)
