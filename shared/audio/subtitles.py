"""Subtitle and timing exports of a narration: SRT, WebVTT and a JSON timing sheet."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cue:
    start: float
    """Seconds from the start of the audio."""
    end: float
    text: str
    speaker: str | None = None
    """Who says it, in a dialogue (SRT `Name: `, WebVTT `<v Name>`, the timing JSON's `speaker`)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.start < 0:
            raise ValueError(f"cue times must be finite and >= 0, got {self.start}..{self.end}")
        if self.end < self.start:
            raise ValueError(f"cue ends before it starts: {self.start}..{self.end}")


def _timestamp(seconds: float, separator: str) -> str:
    """HH:MM:SS<sep>mmm with hours unbounded (a 100-hour book gets `100:00:00`)."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _lines(text: str) -> list[str]:
    """Cue text lines without blank ones: a blank line would end the cue early in both formats."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def to_srt(cues: Iterable[Cue]) -> str:
    blocks = []
    for number, cue in enumerate(cues, start=1):
        text = "\n".join(_lines(cue.text))
        if cue.speaker is not None:
            text = f"{cue.speaker}: {text}"
        blocks.append(f"{number}\n{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}\n{text}\n")
    return "\n".join(blocks)


def _vtt_escape(line: str) -> str:
    # WebVTT cue text treats & and < as markup; "-->" would read as a timing line.
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: Iterable[Cue]) -> str:
    blocks = ["WEBVTT\n"]
    for cue in cues:
        text = "\n".join(_vtt_escape(line) for line in _lines(cue.text))
        if cue.speaker is not None:
            text = f"<v {_vtt_escape(cue.speaker)}>{text}"
        blocks.append(f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n{text}\n")
    return "\n".join(blocks)


def to_timing_json(cues: Iterable[Cue], *, inputs: Sequence[Any] | None = None) -> str:
    """JSON `{"cues": [{start, end, text, speaker?}], "inputs": [{id, start, end}]}` (inputs only when
    given, `speaker` only on a dialogue's cues).

    `inputs` items are `(id, start_seconds, end_seconds)` tuples or mappings with those keys: where
    each job input sits in a concatenated file.
    """
    document: dict[str, Any] = {
        "cues": [
            {"start": round(c.start, 3), "end": round(c.end, 3), "text": c.text}
            | ({"speaker": c.speaker} if c.speaker is not None else {})
            for c in cues
        ]
    }
    if inputs is not None:
        rows = []
        for item in inputs:
            if isinstance(item, Mapping):
                ident, start, end = item["id"], item["start"], item["end"]
            else:
                ident, start, end = item
            rows.append({"id": ident, "start": round(float(start), 3), "end": round(float(end), 3)})
        document["inputs"] = rows
    return json.dumps(document, ensure_ascii=False, indent=2)
