"""What a job would take before it is run: its audio duration per chapter and the time to make it.

A producer checks a 40-hour book before committing a GPU to it. Speech is the spoken characters (the
text after the language rules: "$5M" is 20 characters said) over the speech rate the workers have
learned for the engine (`shared.text.rate.SpeechRate`, the prior until a job has run); pauses are the
job's (sentences, paragraphs, chapters) and the preset's room tone. The time to finish is that audio
times the real-time factor the tenant's jobs measured over the last 30 days (engine seconds per audio
second), when they made enough audio to say; else it is left out rather than guessed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pydantic import BaseModel, Field

from shared.audio.presets import MasteringTargets
from shared.jobs import JobCreate
from shared.text.chunking import MAX_INLINE_PAUSE_MS, PAUSE_MARKER
from shared.text.normalize import normalize
from shared.text.ssml import TextFormat, parse_ssml

MIN_AUDIO_FOR_RTF = 60.0
"""Seconds of audio a tenant's recent jobs must have made before their real-time factor is used."""
_PARAGRAPH = re.compile(r"\n\s*\n")


class ChapterEstimate(BaseModel):
    id: str
    title: str
    characters: int
    audio_seconds: float


class Estimate(BaseModel):
    """The answer of `POST /v1/estimate`: nothing is queued or charged."""

    characters: int = Field(..., description="Characters of text, as the quota counts them.")
    spoken_characters: int = Field(..., description="Characters after the language rules (what is said).")
    chapters: list[ChapterEstimate]
    audio_seconds: float = Field(..., description="Estimated length of the result, pauses and room tone included.")
    chars_per_second: float = Field(..., description="The speech rate used (learned by the workers, else the prior).")
    rtf: float | None = Field(
        None, description="Engine seconds per audio second of this tenant's jobs in the last 30 days."
    )
    processing_seconds: float | None = Field(
        None, description="audio_seconds x rtf on one worker, once there is an rtf; queue time not included."
    )
    sample_characters: int = Field(..., description="About this many characters make the first minute.")


@dataclass(frozen=True)
class Pauses:
    sentence_ms: int
    paragraph_ms: int
    chapter_ms: int


def estimate_job(
    spec: JobCreate,
    *,
    chars_per_second: float,
    pauses: Pauses,
    targets: MasteringTargets,
    rtf: float | None,
    budget_seconds: float = 25.0,
) -> Estimate:
    chapters = []
    total = 0.0
    spoken_total = 0
    ids, titles = spec.input_ids(), spec.input_titles()
    for index, item in enumerate(spec.inputs):
        inline = 0.0
        text = parse_ssml(item.text).text if item.text and item.text_format is TextFormat.SSML else item.spoken_text
        for mark in PAUSE_MARKER.finditer(text):
            value = float(mark.group(1))
            inline += min(MAX_INLINE_PAUSE_MS, value if (mark.group(2) or "s").lower() == "ms" else value * 1000) / 1000
        spoken = len(
            normalize(
                PAUSE_MARKER.sub(" ", text), item.language or spec.language or "en", lexicon=spec.pronunciation()
            ).text
        )
        spoken_total += spoken
        paragraphs = [p for p in _PARAGRAPH.split(text.strip()) if p.strip()] or [text]
        # Pauses fall between chunks (a chunk's sentences are spoken in one go): a paragraph longer than
        # the chunk budget is cut into that many chunks, at sentence ends.
        cuts = sum(max(0, math.ceil(len(p) / (budget_seconds * chars_per_second)) - 1) for p in paragraphs)
        seconds = spoken / chars_per_second + inline
        seconds += cuts * pauses.sentence_ms / 1000 + (len(paragraphs) - 1) * pauses.paragraph_ms / 1000
        seconds += targets.head_room_tone_s + targets.tail_room_tone_s
        if item.speed is not None:
            seconds /= item.speed
        if item.target_seconds is not None:  # a timed line is fitted to its slot (as far as the bounds allow)
            seconds = item.target_seconds
        elif item.max_seconds is not None:
            seconds = min(seconds, item.max_seconds)
        chapters.append(
            ChapterEstimate(
                id=ids[index], title=titles[index], characters=len(item.spoken_text), audio_seconds=round(seconds, 1)
            )
        )
        total += seconds
    if spec.concatenate and len(spec.inputs) > 1:
        total += (len(spec.inputs) - 1) * pauses.chapter_ms / 1000
    return Estimate(
        characters=spec.total_chars(),
        spoken_characters=spoken_total,
        chapters=chapters,
        audio_seconds=round(total, 1),
        chars_per_second=round(chars_per_second, 3),
        rtf=round(rtf, 4) if rtf is not None else None,
        processing_seconds=round(total * rtf, 1) if rtf is not None else None,
        sample_characters=round(60.0 * chars_per_second),
    )
