"""What every chunking must satisfy, whatever the text: shared by the example, property and corpus tests."""

from __future__ import annotations

import numpy as np

from shared.text.chunking import Boundary, Chunk, join_chunks
from shared.text.normalize import NormalizedText, normalize


def speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def legal_cuts(normalized: NormalizedText, start: int, end: int) -> list[int]:
    """Spaces in ``text[start:end]`` where the source before ends before the source after begins.

    A space inside an expansion ("$5" -> "five dollars") is no cut: both sides come from one source.
    """
    text = normalized.text
    cuts = []
    for k in range(start + 1, end - 1):
        if text[k] == " ":
            _, before_end = normalized.span_to_original(k - 1, k)
            after_start, _ = normalized.span_to_original(k + 1, k + 2)
            space_start, space_end = normalized.span_to_original(k, k + 1)
            if before_end <= space_start and space_end <= after_start:
                cuts.append(k)
    return cuts


def check_chunks(
    original: str,
    chunks: list[Chunk],
    *,
    budget_seconds: float = 25.0,
    chars_per_second: float = 14.0,
    language: str = "en",
) -> NormalizedText:
    normalized = normalize(original, language)
    text = normalized.text
    # Nothing lost, nothing repeated: the chunks joined by their separators are the normalised text.
    assert join_chunks(chunks) == text
    if not speakable(original):
        assert chunks == []
    if not chunks:
        assert not speakable(text)
        return normalized

    max_chars = budget_seconds * chars_per_second
    position = 0
    sentence_seen = -1
    previous_end = 0
    covered = np.zeros(len(original) + 1, dtype=np.int64)
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert chunk.text and chunk.text == chunk.text.strip()
        assert speakable(chunk.text)
        assert text[position : position + len(chunk.text)] == chunk.text
        # Boundaries say what follows.
        if i == len(chunks) - 1:
            assert chunk.boundary is Boundary.END
        else:
            nxt = chunks[i + 1]
            assert nxt.paragraph in (chunk.paragraph, chunk.paragraph + 1)
            assert (chunk.boundary is Boundary.PARAGRAPH) == (nxt.paragraph != chunk.paragraph)
            assert chunk.boundary is not Boundary.END
            if chunk.boundary is Boundary.CLAUSE:
                assert nxt.sentences[0] == chunk.sentences[-1]
            else:
                assert nxt.sentences[0] == chunk.sentences[-1] + 1
        # Sentences are numbered globally, in order, without gaps.
        assert list(chunk.sentences) == list(range(chunk.sentences[0], chunk.sentences[-1] + 1))
        assert chunk.sentences[0] in (sentence_seen, sentence_seen + 1)
        sentence_seen = chunk.sentences[-1]
        # Budget: only a chunk without any legal cut between speakable words may exceed it.
        assert chunk.est_seconds == len(chunk.text) / chars_per_second
        if len(chunk.text) > max_chars + 1e-9:
            a, b = position, position + len(chunk.text)
            for cut in legal_cuts(normalized, a, b):
                assert not (speakable(text[a:cut]) and speakable(text[cut + 1 : b])), chunk
        assert chunk.last_sentence and chunk.text.endswith(chunk.last_sentence)
        assert speakable(chunk.last_sentence)
        # Offsets: the original slice covers exactly the sources of the chunk's characters.
        assert 0 <= chunk.start < chunk.end <= len(original)
        assert chunk.start >= previous_end
        previous_end = chunk.end
        lo, hi = normalized.span_to_original(position, position + len(chunk.text))
        assert (lo, hi) == (chunk.start, chunk.end)
        assert normalized.to_original(position) == chunk.start
        covered[chunk.start] += 1
        covered[chunk.end] -= 1
        position += len(chunk.text) + len(_separator(chunk))
    assert position == len(text)
    # Every letter and digit of the original is inside some chunk's span.
    inside = np.cumsum(covered)[: len(original)] > 0
    lost = [ch for ch, kept in zip(original, inside, strict=True) if not kept and ch.isalnum()]
    assert not lost, f"letters or digits outside every chunk: {''.join(lost)[:80]!r}"
    return normalized


def _separator(chunk: Chunk) -> str:
    return {Boundary.PARAGRAPH: "\n\n", Boundary.END: ""}.get(chunk.boundary, " ")
