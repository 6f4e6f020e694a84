"""Text to chunks: whole sentences packed under a budget of estimated audio seconds.

Joining rule (tested as a property): the chunks' texts, each followed by ``SEPARATORS[boundary]``
(a space inside a paragraph, ``"\\n\\n"`` between paragraphs, nothing after the last chunk), give back
exactly ``normalize(text, language).text``: nothing lost, nothing repeated.

Inline pauses: a marker ``[pause 1.5s]`` (or ``[pause 800ms]``) ends the chunk before it, which then
carries ``pause_ms``, the silence the assembly puts after it instead of its boundary's pause. The
marker itself is not spoken; the joining rule holds for the text between markers.

SSML input (``text_format="ssml"``, ``shared.text.ssml``) is first turned into that plain form (a
``<break>`` becomes a pause marker); the chunks' ``start``/``end`` are then mapped back onto the SSML
text. A pronunciation lexicon is applied inside ``normalize``.

A short first chunk (``first_chunk_chars``, for work someone is waiting to hear): the first chunk
holds only the sentences that fit in that many characters, at least the first sentence, and a first
sentence longer than that is cut at its clauses (or words) so that its first piece fits; every later
chunk is packed to the budget as usual.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import NamedTuple

from shared.text.lexicon import LexiconEntry
from shared.text.normalize import NormalizedText, normalize
from shared.text.pieces import is_breakable, split_long
from shared.text.rate import DEFAULT_CHARS_PER_SECOND
from shared.text.segment import split_sentences
from shared.text.ssml import TextFormat, parse_ssml


class Boundary(StrEnum):
    """What follows a chunk; CLAUSE means the chunk was cut inside a sentence."""

    CLAUSE = "clause"
    SENTENCE = "sentence"
    PARAGRAPH = "paragraph"
    END = "end"
    TURN = "turn"
    """A speaker's turn of a dialogue ends (set by the planner, never by `chunk_text`)."""


SEPARATORS = {Boundary.CLAUSE: " ", Boundary.SENTENCE: " ", Boundary.PARAGRAPH: "\n\n", Boundary.END: ""}


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    """Normalised text to speak."""
    paragraph: int
    sentences: tuple[int, ...]
    """Global indices of the sentences this chunk holds (whole or in part)."""
    start: int
    end: int
    """``[start, end)`` in the ORIGINAL text: the source of this chunk's words."""
    boundary: Boundary
    est_seconds: float
    last_sentence: str
    """The final sentence of the chunk, or its final clause piece when cut inside a sentence."""
    pause_ms: int | None = None
    """Silence after this chunk from an inline `[pause ...]` marker, in place of its boundary's pause."""


PAUSE_MARKER = re.compile(r"\[\s*pause\s+(\d{1,5}(?:\.\d{1,3})?)\s*(ms|s)?\s*\]", re.IGNORECASE)
MAX_INLINE_PAUSE_MS = 30_000


class _Unit(NamedTuple):
    start: int
    end: int
    sentence: int
    sentence_start: int
    ends_sentence: bool


def join_chunks(chunks: Sequence[Chunk]) -> str:
    """The normalised text the chunks came from (see the joining rule above)."""
    return "".join(chunk.text + SEPARATORS[chunk.boundary] for chunk in chunks)


def chunk_text(
    text: str,
    *,
    budget_seconds: float = 25.0,
    chars_per_second: float = DEFAULT_CHARS_PER_SECOND,
    language: str = "en",
    lexicon: Sequence[LexiconEntry] = (),
    text_format: TextFormat = TextFormat.PLAIN,
    first_chunk_chars: int | None = None,
) -> list[Chunk]:
    """Chunks of at most ``budget_seconds`` of estimated speech; a single longer word stands alone. With
    ``first_chunk_chars``, the first chunk is kept that short (see the module's docstring)."""
    if text_format is TextFormat.SSML:
        document = parse_ssml(text)
        chunks = chunk_text(
            document.text, budget_seconds=budget_seconds, chars_per_second=chars_per_second,
            language=language, lexicon=lexicon, first_chunk_chars=first_chunk_chars,
        )  # fmt: skip
        lo, hi = document.mapped.lo, document.mapped.hi
        return [replace(chunk, start=int(lo[chunk.start]), end=int(hi[chunk.end - 1])) for chunk in chunks]
    if PAUSE_MARKER.search(text):
        return _chunk_around_pauses(text, budget_seconds, chars_per_second, language, lexicon, first_chunk_chars)
    return _chunk_plain(text, budget_seconds, chars_per_second, language, lexicon, first_chunk_chars)


def _chunk_around_pauses(
    text: str,
    budget_seconds: float,
    chars_per_second: float,
    language: str,
    lexicon: Sequence[LexiconEntry],
    first_chunk_chars: int | None,
) -> list[Chunk]:
    """Each stretch between markers chunked on its own, offsets into the whole text, the chunk before a
    marker ending a sentence (a paragraph when a blank line follows) with the marker's pause."""
    chunks: list[Chunk] = []
    paragraphs = sentences = 0
    begin = 0
    marks = [*PAUSE_MARKER.finditer(text), None]
    for mark in marks:
        end = mark.start() if mark is not None else len(text)
        piece = text[begin:end]
        first = first_chunk_chars if not chunks else None
        found = _chunk_plain(piece, budget_seconds, chars_per_second, language, lexicon, first) if piece.strip() else []
        if found and not found[-1].text.strip():
            found = []
        for chunk in found:
            chunks.append(
                replace(
                    chunk,
                    index=len(chunks),
                    paragraph=chunk.paragraph + paragraphs,
                    sentences=tuple(i + sentences for i in chunk.sentences),
                    start=chunk.start + begin,
                    end=chunk.end + begin,
                )
            )
        if found:
            paragraphs = chunks[-1].paragraph + 1
            sentences = max(chunks[-1].sentences) + 1
        if mark is not None and chunks:
            value, unit = float(mark.group(1)), (mark.group(2) or "s").lower()
            pause = min(MAX_INLINE_PAUSE_MS, round(value if unit == "ms" else value * 1000))
            follows = text[mark.end() : mark.end() + 4]
            boundary = Boundary.PARAGRAPH if re.match(r"[ \t]*\n[ \t]*\n", follows + "\n") else Boundary.SENTENCE
            previous = chunks[-1]
            if not found:  # markers in a row: their pauses add up
                pause += previous.pause_ms or 0
            chunks[-1] = replace(previous, boundary=boundary, pause_ms=pause)
            if not found or boundary is Boundary.SENTENCE:
                paragraphs = chunks[-1].paragraph + (1 if boundary is Boundary.PARAGRAPH else 0)
        begin = mark.end() if mark is not None else len(text)
    if chunks:
        chunks[-1] = replace(chunks[-1], boundary=Boundary.END)
    return chunks


def _chunk_plain(
    text: str,
    budget_seconds: float,
    chars_per_second: float,
    language: str,
    lexicon: Sequence[LexiconEntry],
    first_chunk_chars: int | None = None,
) -> list[Chunk]:
    if not (budget_seconds > 0 and math.isfinite(budget_seconds)):
        raise ValueError(f"budget_seconds must be a positive number, not {budget_seconds!r}")
    if not (chars_per_second > 0 and math.isfinite(chars_per_second)):
        raise ValueError(f"chars_per_second must be a positive number, not {chars_per_second!r}")
    normalized = normalize(text, language, lexicon)
    max_chars = budget_seconds * chars_per_second
    chunks: list[Chunk] = []
    sentence_count = 0
    first_chars = min(max_chars, first_chunk_chars) if first_chunk_chars else None
    for paragraph, (p_start, p_end) in enumerate(normalized.paragraphs):
        units: list[_Unit] = []
        for start, end in _sentences(normalized, p_start, p_end, language):
            index = sentence_count
            sentence_count += 1
            limit = first_chars if first_chars is not None and index == 0 else max_chars
            pieces = [(start, end)] if end - start <= limit else split_long(normalized.mapped, start, end, limit)
            for k, (a, b) in enumerate(pieces):
                units.append(_Unit(a, b, index, start, k == len(pieces) - 1))
        first = first_chars if not chunks else None
        _pack(normalized, units, paragraph, max_chars, chars_per_second, chunks, first)
    if chunks:
        chunks[-1] = replace(chunks[-1], boundary=Boundary.END)
    return chunks


def _sentences(normalized: NormalizedText, p_start: int, p_end: int, language: str) -> list[tuple[int, int]]:
    """Global sentence spans of a paragraph, rejoined where a cut would tear an expansion apart."""
    spans: list[tuple[int, int]] = []
    for a, b in split_sentences(normalized.text[p_start:p_end], language):
        a, b = a + p_start, b + p_start
        if spans and not is_breakable(normalized.mapped, a - 1):
            spans[-1] = (spans[-1][0], b)
        else:
            spans.append((a, b))
    return spans


def _pack(
    normalized: NormalizedText,
    units: list[_Unit],
    paragraph: int,
    max_chars: float,
    chars_per_second: float,
    chunks: list[Chunk],
    first_chars: float | None = None,
) -> None:
    """Greedy: each chunk takes as many following units as fit under ``max_chars`` (the first one, with
    ``first_chars``, under that)."""
    text = normalized.text
    i = 0
    while i < len(units):
        limit = first_chars if first_chars is not None and i == 0 else max_chars
        j = i + 1
        while j < len(units) and units[j].end - units[i].start <= limit:
            j += 1
        first, last = units[i], units[j - 1]
        if j == len(units):
            boundary = Boundary.PARAGRAPH
        else:
            boundary = Boundary.SENTENCE if last.ends_sentence else Boundary.CLAUSE
        chunk_string = text[first.start : last.end]
        start, end = normalized.span_to_original(first.start, last.end)
        chunks.append(
            Chunk(
                index=len(chunks),
                text=chunk_string,
                paragraph=paragraph,
                sentences=tuple(dict.fromkeys(unit.sentence for unit in units[i:j])),
                start=start,
                end=end,
                boundary=boundary,
                est_seconds=len(chunk_string) / chars_per_second,
                last_sentence=text[max(first.start, last.sentence_start) : last.end],
            )
        )
        i = j


def split_streams(chunks: Sequence[Chunk], streams: int) -> list[list[Chunk]]:
    """At most ``streams`` contiguous runs of chunks, cut only between paragraphs, balanced by seconds.

    Minimises the longest stream (the job's latency); uses as many streams as there are paragraphs to
    spread over, up to ``streams``. Order is preserved: concatenating the streams gives ``chunks``.
    """
    if streams < 1:
        raise ValueError(f"streams must be at least 1, not {streams}")
    groups: list[list[Chunk]] = []
    for chunk in chunks:
        if groups and groups[-1][-1].paragraph == chunk.paragraph:
            groups[-1].append(chunk)
        else:
            groups.append([chunk])
    if not groups:
        return []
    weights = [sum(chunk.est_seconds for chunk in group) for group in groups]
    parts = min(streams, len(groups))
    limit = _smallest_feasible_limit(weights, parts)
    result: list[list[Chunk]] = [[]]
    load = 0.0
    for i, (group, weight) in enumerate(zip(groups, weights, strict=True)):
        still_needed = parts - len(result)
        if result[-1] and (load + weight > limit or len(groups) - i <= still_needed):
            result.append([])
            load = 0.0
        result[-1].extend(group)
        load += weight
    return result


def _smallest_feasible_limit(weights: list[float], parts: int) -> float:
    """Smallest longest-part length for splitting ``weights`` into ``parts`` contiguous runs."""

    def parts_needed(limit: float) -> int:
        count, load = 1, 0.0
        for weight in weights:
            if load and load + weight > limit:
                count, load = count + 1, 0.0
            load += weight
        return count

    low, high = max(weights), sum(weights)
    for _ in range(100):
        if high - low <= 1e-9 * max(high, 1.0):
            break
        middle = (low + high) / 2
        if parts_needed(middle) <= parts:
            high = middle
        else:
            low = middle
    return high
