"""Prompt layout exactly as KaniTTS2 was trained, plus conversions between codec frames and tokens.

Training sequences were `[start_of_human] + tokenizer(text) + [end_of_text, end_of_human, start_of_ai,
start_of_speech] + audio + [end_of_speech, end_of_ai]`, where the LFM2 tokenizer puts BOS (1) in front
of the text; with a speaker embedding one extra input
position follows `start_of_human`. We end the prompt at `start_of_speech` so the model only ever
writes audio, and for a continued chunk we pre-fill the previous chunk's last frames after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from worker.engines.kanitts2.config import TokenIds

SPEAKER_SLOT = -1
"""Placeholder item for the projected speaker embedding (not a vocabulary id)."""
PROBE_TEXT = "en_us: Hello, world."
"""What `check_tokenizer` tokenizes to see which special tokens the tokenizer adds."""


def human_text(text: str, *, language_tag: str | None, context_text: str = "") -> str:
    """The text of the human turn: `<tag>: [previous sentence ]text`."""
    body = f"{context_text.strip()} {text.strip()}".strip() if context_text.strip() else text.strip()
    return f"{language_tag.strip().lower()}: {body}" if language_tag else body


def frames_to_tokens(frames: np.ndarray, ids: TokenIds) -> list[int]:
    """Codec frames `[T, codebooks]` (codes 0..codebook_size-1) to interleaved audio token ids."""
    frames = np.asarray(frames, dtype=np.int64).reshape(-1, ids.num_codebooks)
    if frames.size and (frames.min() < 0 or frames.max() >= ids.codebook_size):
        raise ValueError("codec code out of range")
    offsets = ids.audio_start + ids.codebook_size * np.arange(ids.num_codebooks, dtype=np.int64)
    return (frames + offsets).reshape(-1).tolist()


def tokens_to_frames(tokens: Sequence[int], ids: TokenIds) -> np.ndarray:
    """Interleaved audio token ids (whole frames, codebook order) back to frames `[T, codebooks]`."""
    array = np.asarray(tokens, dtype=np.int64)
    if array.size % ids.num_codebooks:
        raise ValueError("audio tokens do not fill whole frames")
    offsets = ids.audio_start + ids.codebook_size * np.arange(ids.num_codebooks, dtype=np.int64)
    frames = array.reshape(-1, ids.num_codebooks) - offsets
    if frames.size and (frames.min() < 0 or frames.max() >= ids.codebook_size):
        raise ValueError("token is not an audio token of the expected codebook")
    return frames


def check_tokenizer(tokenizer: Any, ids: TokenIds) -> None:
    """Fail unless the tokenizer adds BOS in front of a text and nothing else, as in training.

    A tokenizer without BOS, with another one, or with an EOS of its own shifts every prompt away from
    the trained layout; the model still speaks, only worse, so this is checked once at load.
    """
    plain = list(tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"])
    added = list(tokenizer(PROBE_TEXT)["input_ids"])
    if not plain or added != [ids.begin_of_text, *plain]:
        raise ValueError(
            f"tokenizer must add BOS {ids.begin_of_text} in front of the text and nothing else, as the LFM2 "
            f"tokenizer KaniTTS2 was trained with does; {PROBE_TEXT!r} became {added[:4]}...{added[-2:]} "
            f"({len(added)} ids) instead of [{ids.begin_of_text}] + {len(plain)} text ids"
        )


def build_prompt(
    tokenizer: Any,
    ids: TokenIds,
    text: str,
    *,
    language_tag: str | None = None,
    with_speaker: bool = False,
    context_text: str = "",
    context_frames: np.ndarray | None = None,
) -> list[int]:
    """Prompt items of one row; `SPEAKER_SLOT` marks where the speaker projection goes."""
    text_ids = list(tokenizer(human_text(text, language_tag=language_tag, context_text=context_text))["input_ids"])
    if not text_ids or text_ids[0] != ids.begin_of_text:
        raise ValueError(
            f"tokenizer did not put BOS {ids.begin_of_text} in front of the text (it starts {text_ids[:3]}): "
            "KaniTTS2 prompts need the LFM2 tokenizer of the checkpoint"
        )
    text_limit = ids.start_of_speech - 1
    if any(not 0 <= item < text_limit for item in text_ids):
        raise ValueError("tokenizer produced an id outside the text vocabulary")
    items = [ids.start_of_human]
    if with_speaker:
        items.append(SPEAKER_SLOT)
    items += text_ids
    items += [ids.end_of_text, ids.end_of_human, ids.start_of_ai, ids.start_of_speech]
    if context_frames is not None and len(context_frames):
        items += frames_to_tokens(context_frames, ids)
    return items
