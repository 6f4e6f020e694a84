"""Weighted voice mixes: `ada(0.7)+ben(0.3)` names a voice whose speaker embedding is the weighted mean
of its parts' embeddings.

A mix is a way to cast many characters from a few recordings, so it only exists where the engine
speaks from an embedding (KaniTTS2); its parts are cloned voices (or saved mixes). The spelling is
parsed once, at validation, into one canonical form (weights normalised to sum 1, `ada+ben` = equal
weights), and that form is the voice's name everywhere after: in the job, its plan and its chunks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_MIX_PARTS = 4
"""Most voices one mix blends (beyond a few, every mix tends to the same average voice)."""
MAX_MIX_CHARS = 600
"""Room for `MAX_MIX_PARTS` voice ids of up to 128 characters with their weights."""

_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_PART_PATTERN = rf"{_ID}(?: *\( *{_NUMBER} *\))?"
VOICE_PATTERN = rf"^{_PART_PATTERN}(?: *\+ *{_PART_PATTERN}){{0,{MAX_MIX_PARTS - 1}}}$"
"""A voice id, or a mix of up to `MAX_MIX_PARTS` ids with optional weights (spaces allowed around `+`
and inside the brackets)."""
_PART = re.compile(r" *([A-Za-z0-9][A-Za-z0-9._-]{0,127}) *(?:\( *([^()]*?) *\))? *\Z")


class MixError(ValueError):
    """The text is written as a mix but is not a valid one; the message says why."""


@dataclass(frozen=True)
class VoiceMix:
    parts: tuple[tuple[str, float], ...]
    """(voice id, weight) in the order written; weights are positive and sum to 1."""

    @property
    def spec(self) -> str:
        """The canonical spelling, e.g. `ada(0.7)+ben(0.3)`."""
        return "+".join(f"{voice}({_weight(weight)})" for voice, weight in self.parts)

    @property
    def voices(self) -> list[str]:
        return [voice for voice, _ in self.parts]

    @property
    def main_voice(self) -> str:
        """The heaviest part (the first of equals): its language tag is the mix's."""
        return max(self.parts, key=lambda part: part[1])[0]


def _weight(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def is_mix(value: str | None) -> bool:
    """Whether `value` is written as a mix (a `+` or a weight in brackets); a plain id is not."""
    return bool(value) and ("+" in value or "(" in value or ")" in value)


def parse_mix(value: str) -> VoiceMix:
    """The mix `value` spells, or `MixError` naming what is wrong (syntax, weights, repeats, size)."""
    if len(value) > MAX_MIX_CHARS:
        raise MixError(f"a voice mix is at most {MAX_MIX_CHARS} characters")
    raw = value.split("+")
    if len(raw) > MAX_MIX_PARTS:
        raise MixError(f"a voice mix blends at most {MAX_MIX_PARTS} voices, not {len(raw)}")
    parts: list[tuple[str, float]] = []
    for text in raw:
        match = _PART.match(text)
        if match is None:
            raise MixError(f"{text.strip()!r} is not a voice id with an optional weight, as in ada(0.7)+ben(0.3)")
        voice, weight_text = match.group(1), match.group(2)
        if weight_text is not None and not re.fullmatch(_NUMBER, weight_text):
            raise MixError(f"the weight of {voice!r} must be a plain number such as 0.7, not {weight_text!r}")
        weight = 1.0 if weight_text is None else float(weight_text)
        if not math.isfinite(weight) or weight <= 0:
            raise MixError(f"the weight of {voice!r} must be a number above 0, not {weight_text}")
        if voice in (name for name, _ in parts):
            raise MixError(f"{voice!r} appears twice in the mix")
        parts.append((voice, weight))
    total = sum(weight for _, weight in parts)
    return VoiceMix(tuple((voice, weight / total) for voice, weight in parts))


def canonical_voice(value: str) -> str:
    """A plain id unchanged; a mix in its canonical spelling (a one-part mix is just that voice)."""
    if not is_mix(value):
        return value
    mix = parse_mix(value)
    return mix.parts[0][0] if len(mix.parts) == 1 else mix.spec


def mix_embeddings(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted mean of unit speaker embeddings, L2-normalised again (the form the model was trained
    on, as a voice cloned from several clips is)."""
    stacked = np.stack([np.asarray(vector, dtype=np.float64).reshape(-1) for vector in vectors])
    mean = np.asarray(weights, dtype=np.float64) @ stacked
    norm = float(np.linalg.norm(mean))
    if norm < 1e-6:
        raise MixError("the voices' embeddings cancel out")
    return (mean / norm).astype(np.float32)
