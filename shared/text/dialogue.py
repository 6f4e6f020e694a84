"""Dialogue inputs: who speaks which part of an input.

An input is spoken by one voice unless it is a dialogue: a list of `{speaker, text}` segments, or (in
a job that maps speakers to voices) text whose lines begin with speaker tags (`[Alice] Hello.`). Tags
are read only when the job has `voices`, so a book whose lines start with `[Chapter 1]` stays a book.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SPEAKER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._'-]{0,63}$"
"""A speaker's name: what a tag or segment names and a key of the job's `voices`."""
_TAG = re.compile(r"^[ \t]*\[([A-Za-z0-9][A-Za-z0-9 ._'-]{0,63})\][ \t]*", re.MULTILINE)


@dataclass(frozen=True)
class Turn:
    """One speaker's consecutive text (`speaker` None: the input's own voice)."""

    speaker: str | None
    text: str
    start: int = 0
    """Where `text` begins in the input's text (chunk offsets are shifted by it)."""


def parse_speaker_tags(text: str) -> list[Turn]:
    """The turns of `text` split at line-start speaker tags; text before the first tag is the input's
    own voice's. Blank turns (a tag followed by nothing) are dropped."""
    turns: list[Turn] = []
    marks = list(_TAG.finditer(text))
    if not marks:
        return [Turn(None, text)]
    bounds = [(None, 0, marks[0].start())]
    bounds += [
        (mark.group(1).strip(), mark.end(), following.start() if following is not None else len(text))
        for mark, following in zip(marks, [*marks[1:], None], strict=True)
    ]
    for speaker, begin, end in bounds:
        body = text[begin:end]
        if body.strip():
            lead = len(body) - len(body.lstrip())
            turns.append(Turn(speaker, body.strip(), begin + lead))
    return turns
