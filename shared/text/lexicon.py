"""Pronunciation lexicons: a word or phrase replaced by a respelling the model reads right.

An entry matches its written form (``match``) as a whole word by default (not inside a longer word),
ignoring case unless ``case_sensitive``; whitespace inside a phrase matches any run of spaces. Where
entries overlap, the longest match wins, and between equally long ones the entry listed first. The
respelling is a replacement in the offset map: every character of it maps to the whole matched span,
so a chunk never ends inside a respelling and timing still points at the written word.

Lexicons run after the character clean-up and the line rules but BEFORE the language's expansions, so
an entry can name the written form ("Dr. Nguyen", "3M", "SQL") before numbers and abbreviations are
spelled out; the respelling then passes those rules like any text (write it in words). A written
word that starts with a capital gives its respelling a capital too ("Nguyen" -> "Win"), since the
abbreviation and sentence rules read capitals ("Ms. Win" is still "Miz Win").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.text.offsets import MappedText

MAX_MATCH_CHARS = 100
MAX_RESPELLING_CHARS = 200
MAX_LEXICON_ENTRIES = 1000
"""Most entries of one lexicon, and of a job's inline `lexicon`."""
MAX_JOB_LEXICONS = 8
"""Most lexicons one job may name."""


class LexiconEntry(BaseModel):
    """One word or phrase and how to say it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str = Field(
        ..., min_length=1, max_length=MAX_MATCH_CHARS, description="The written word or phrase, e.g. `Nguyen`."
    )
    respelling: str = Field(
        ..., min_length=1, max_length=MAX_RESPELLING_CHARS, description="What to say instead, e.g. `win`."
    )
    case_sensitive: bool = Field(default=False, description="Match only this exact capitalisation.")
    whole_word: bool = Field(
        default=True, description="Match only whole words (not `Ann` inside `Annual`); false matches anywhere."
    )

    @field_validator("match", "respelling")
    @classmethod
    def _one_line_of_words(cls, value: str) -> str:
        if not value.strip() or any(ch in value for ch in "\n\r\t") or any(ord(ch) < 32 for ch in value):
            raise ValueError("must be one line of text (no control characters or line breaks)")
        if "[" in value or "]" in value:
            raise ValueError("must not contain '[' or ']' (they mark inline pauses)")
        return value.strip()


def check_unique(entries: Sequence[LexiconEntry]) -> None:
    """ValueError naming the first entry whose written form (as it matches) is listed before."""
    seen: set[tuple[str, bool]] = set()
    for index, entry in enumerate(entries):
        words = " ".join(entry.match.split())
        key = (words if entry.case_sensitive else words.casefold(), entry.case_sensitive)
        if key in seen:
            raise ValueError(f"entry {index} ({entry.match!r}) is listed twice")
        seen.add(key)


def apply_lexicon(mapped: MappedText, entries: Sequence[LexiconEntry]) -> MappedText:
    """``mapped`` with every match of an entry replaced by its respelling (one pass: a respelling is
    never matched again)."""
    if not entries:
        return mapped
    text = mapped.text
    taken: list[tuple[int, int, str]] = []
    for start, end, index in _resolve(_candidates(text, _compiled(tuple(entries)))):
        taken.append((start, end, _respell(text[start:end], entries[index].respelling)))
    return mapped.edit(taken)


_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _Compiled:
    by_first_word: dict[str, list[tuple[int, re.Pattern[str]]]]
    """Whole-word entries by their leading word, lower case: tried only where a word starts."""
    anywhere: list[tuple[int, re.Pattern[str]]]
    """The others (inside words, or starting with a non-word character): searched for one by one."""

    @classmethod
    def of(cls, entries: tuple[LexiconEntry, ...]) -> _Compiled:
        by_first_word: dict[str, list[tuple[int, re.Pattern[str]]]] = {}
        anywhere: list[tuple[int, re.Pattern[str]]] = []
        for index, entry in enumerate(entries):
            body = r"\s+".join(re.escape(word) for word in entry.match.split())
            if entry.whole_word:
                body = r"(?<!\w)" + body + r"(?!\w)"
            pattern = re.compile(body, 0 if entry.case_sensitive else re.IGNORECASE)
            leading = _WORD.match(entry.match)
            if entry.whole_word and leading is not None:
                by_first_word.setdefault(leading.group().lower(), []).append((index, pattern))
            else:
                anywhere.append((index, pattern))
        return cls(by_first_word, anywhere)


@lru_cache(maxsize=16)
def _compiled(entries: tuple[LexiconEntry, ...]) -> _Compiled:
    """Compiled once per lexicon: a job's text is normalised piece by piece (between pauses, per input)."""
    return _Compiled.of(entries)


def _candidates(text: str, compiled: _Compiled) -> list[tuple[int, int, int]]:
    """Every place an entry matches: (start, end, entry index). A dictionary look-up per word of the
    text, not a scan per entry, so a book with a thousand entries costs about one pass."""
    found: list[tuple[int, int, int]] = []
    if compiled.by_first_word:
        for word in _WORD.finditer(text):
            for index, pattern in compiled.by_first_word.get(word.group().lower(), ()):
                match = pattern.match(text, word.start())
                if match:
                    found.append((match.start(), match.end(), index))
    for index, pattern in compiled.anywhere:
        found.extend((match.start(), match.end(), index) for match in pattern.finditer(text))
    return found


def _resolve(candidates: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Leftmost first; at one place the longest, then the entry listed first; no overlaps."""
    chosen: list[tuple[int, int, int]] = []
    cursor = 0
    for start, end, index in sorted(candidates, key=lambda c: (c[0], c[0] - c[1], c[2])):
        if start >= cursor:
            chosen.append((start, end, index))
            cursor = end
    return chosen


def _respell(written: str, respelling: str) -> str:
    """The respelling with the written word's leading capital: a name stays a name, a sentence start
    stays one (the abbreviation and sentence rules read capitals)."""
    if written[:1].isupper() and respelling[:1].islower():
        return respelling[0].upper() + respelling[1:]
    return respelling
