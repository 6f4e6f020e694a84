"""Text normalisation before synthesis, with a map from every spoken character back to the original.

Pipeline: generic character clean-up (``cleanup``), line and paragraph rules (``layout``), the job's
pronunciation lexicon (``lexicon``: written forms, before anything is expanded), the language's
expansions (``languages`` registry, e.g. ``lang_en``), then paragraphs with nothing
speakable (no letter or digit: "***", "—") are dropped. Expansion happens before sentence splitting,
so "3.5" is already "three point five" and "Mr." is "Mister" when the segmenter sees them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shared.text.cleanup import clean_characters
from shared.text.languages import rules_for
from shared.text.layout import PARAGRAPH_BREAK, apply_layout
from shared.text.lexicon import LexiconEntry, apply_lexicon
from shared.text.offsets import MappedText

_PARAGRAPH = re.compile(r"[^\n]+")
_EDGE_SPACES = re.compile(r"^ +| +$| +(?=\n)|(?<=\n) +| {2,}")


@dataclass(frozen=True, eq=False)
class NormalizedText:
    """``text`` is what gets spoken: paragraphs joined by ``"\\n\\n"``, single spaces inside them."""

    original: str
    mapped: MappedText
    paragraphs: tuple[tuple[int, int], ...]
    """``(start, end)`` of each paragraph in ``text``."""
    language: str

    @property
    def text(self) -> str:
        return self.mapped.text

    def to_original(self, i: int) -> int:
        """Position in the original text where normalised character ``i`` comes from."""
        return int(self.mapped.lo[i])

    def span_to_original(self, start: int, end: int) -> tuple[int, int]:
        """Smallest original span ``[a, b)`` holding the sources of ``text[start:end]``."""
        return self.mapped.span_to_original(start, end)

    def paragraph_texts(self) -> list[str]:
        return [self.text[a:b] for a, b in self.paragraphs]


def is_speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def normalize(text: str, language: str = "en", lexicon: Sequence[LexiconEntry] = ()) -> NormalizedText:
    rules = rules_for(language)
    mapped = clean_characters(MappedText.identity(text))
    mapped = apply_layout(mapped)
    mapped = apply_lexicon(mapped, lexicon)
    mapped = rules.expand(mapped)
    # Expansions may leave doubled or edge spaces ("Mr. " -> "Mister "); tidy them without moving
    # paragraph breaks.
    mapped = mapped.sub(_EDGE_SPACES, _tidy_spaces)
    mapped = _drop_silent_paragraphs(mapped)
    spans = tuple(m.span() for m in _PARAGRAPH.finditer(mapped.text))
    return NormalizedText(text, mapped, spans, rules.code)


def _tidy_spaces(m: re.Match[str]) -> str:
    text, start, end = m.string, m.start(), m.end()
    at_edge = start == 0 or end == len(text) or text[start - 1] == "\n" or text[end] == "\n"
    return "" if at_edge else " "


def _drop_silent_paragraphs(mapped: MappedText) -> MappedText:
    text = mapped.text
    spans = [m.span() for m in _PARAGRAPH.finditer(text)]
    keep = [is_speakable(text[a:b]) for a, b in spans]
    if all(keep):
        return mapped
    edits = []
    for (a, b), kept in zip(spans, keep, strict=True):
        if not kept:
            edits.append((a, b, ""))
    mapped = mapped.edit(edits)
    # Removing a paragraph leaves its separators behind: collapse them to one, and none at the edges.
    return mapped.sub(
        re.compile(r"^\n+|\n+$|\n{3,}"),
        lambda m: "" if m.start() == 0 or m.end() == len(m.string) else PARAGRAPH_BREAK,
    )
