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
    pattern = _pattern(tuple(entries))
    return mapped.sub(pattern, lambda m: _respell(m.group(), entries[int((m.lastgroup or "e0")[1:])].respelling))


def _respell(written: str, respelling: str) -> str:
    """The respelling with the written word's leading capital: a name stays a name, a sentence start
    stays one (the abbreviation and sentence rules read capitals)."""
    if written[:1].isupper() and respelling[:1].islower():
        return respelling[0].upper() + respelling[1:]
    return respelling


def _pattern(entries: tuple[LexiconEntry, ...]) -> re.Pattern[str]:
    # Alternatives are tried in order at each position: longest first gives the longest match; a stable
    # sort keeps the listed order between equally long ones.
    order = sorted(range(len(entries)), key=lambda i: -len(entries[i].match))
    alternatives = []
    for i in order:
        entry = entries[i]
        body = r"\s+".join(re.escape(word) for word in entry.match.split())
        if entry.whole_word:
            body = r"(?<!\w)" + body + r"(?!\w)"
        flags = "" if entry.case_sensitive else "(?i)"
        alternatives.append(f"(?P<e{i}>{'(?i:' + body + ')' if flags else body})")
    return re.compile("|".join(alternatives))
