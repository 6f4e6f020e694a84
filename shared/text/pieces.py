"""Cutting a sentence too long for one chunk: at clause punctuation first, then between words.

Cuts only fall on "breakable" spaces: spaces whose origin lies strictly between the origins of their
neighbours. A space produced inside an expansion ("$5" -> "five dollars") is not breakable, so an
expansion is never torn apart and chunk offsets in the original text never overlap.
"""

from __future__ import annotations

import re

from shared.text.offsets import MappedText

Span = tuple[int, int]

# A word that closes a clause: ends with , ; : — – … (possibly followed by closing quotes/brackets).
_CLAUSE_END = re.compile(r"(?:[,;:—–…)\]]|\.\.\.)['\"’”)\]]*$")
_SPACE = re.compile(" ")


def is_breakable(mapped: MappedText, position: int) -> bool:
    """True when a chunk may end before and start after the space at ``position``."""
    lo, hi = mapped.lo, mapped.hi
    if position <= 0 or position >= len(mapped.text) - 1:
        return False
    return bool(lo[position] >= hi[position - 1] and hi[position] <= lo[position + 1])


def word_groups(mapped: MappedText, start: int, end: int) -> list[Span]:
    """Words of ``text[start:end]``, a word without letters or digits ("—", "...") glued to its neighbour."""
    text = mapped.text
    cuts = [m.start() for m in _SPACE.finditer(text, start, end) if is_breakable(mapped, m.start())]
    groups: list[Span] = []
    word_start = start
    for cut in [*cuts, end]:
        word = (word_start, cut)
        speakable = _speakable(text[word_start:cut])
        if groups and (not speakable or not _speakable(text[groups[-1][0] : groups[-1][1]])):
            groups[-1] = (groups[-1][0], cut)
        else:
            groups.append(word)
        word_start = cut + 1
    return groups


def split_long(mapped: MappedText, start: int, end: int, max_chars: float) -> list[Span]:
    """Pieces of the sentence ``text[start:end]``: whole clauses where they fit, else single words."""
    text = mapped.text
    groups = word_groups(mapped, start, end)
    clauses: list[list[Span]] = [[]]
    for i, group in enumerate(groups):
        clauses[-1].append(group)
        before_bracket = i + 1 < len(groups) and text[groups[i + 1][0]] in "(["
        if _CLAUSE_END.search(text, group[0], group[1]) or before_bracket:
            clauses.append([])
    pieces: list[Span] = []
    for clause in clauses:
        if not clause:
            continue
        if clause[-1][1] - clause[0][0] <= max_chars:
            pieces.append((clause[0][0], clause[-1][1]))
        else:
            pieces.extend(clause)
    return pieces


def _speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)
