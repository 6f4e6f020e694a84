"""Sentence segmentation of one normalised paragraph with pysbd.

pysbd knows abbreviations, initials, ellipses, quotes and parentheses, but it may trim or alter
whitespace, so its sentences are located in the paragraph again here and only spans are returned:
the sentences of a paragraph are exactly its text, cut at single spaces. A span without anything
speakable (a stray '"' or "...") is joined to its neighbour so that every sentence can be spoken.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import cast

import pysbd

from shared.text.languages import rules_for

Span = tuple[int, int]

# Sentence punctuation (possibly closed by quotes or brackets) followed by more text: without one of
# these inside a paragraph there is nothing for pysbd to decide.
_CANDIDATE = re.compile(r"[.!?。！？]['\"’”)\]]* \S")
_NEXT_WORD = re.compile(r"[\"'(\[]*(\w)")


@lru_cache(maxsize=16)
def _segmenter(language: str) -> pysbd.Segmenter:
    return pysbd.Segmenter(language=language, clean=False, char_span=False)


def split_sentences(paragraph: str, language: str = "en") -> list[Span]:
    """``(start, end)`` of each sentence in ``paragraph`` (single-spaced, no edge whitespace)."""
    if not paragraph.strip():
        return []
    if not _CANDIDATE.search(paragraph):
        return [(0, len(paragraph))]
    # pysbd never cuts inside double quotes, so a long speech would be one "sentence"; it sees the
    # quotes as spaces (same length, same offsets) and closing quotes are given back to the sentence.
    masked = paragraph.replace('"', " ")
    # With char_span=False pysbd returns plain strings (its annotation also allows its span objects).
    pieces = cast(list[str], _segmenter(rules_for(language).segmenter_language).segment(masked))
    return _merge_silent(paragraph, _spans(paragraph, _ends(masked, pieces)))


def _ends(text: str, pieces: list[str]) -> list[int]:
    """Where each of pysbd's sentences ends in ``text``; pysbd may have trimmed its whitespace."""
    ends: list[int] = []
    cursor = 0
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        found = text.find(piece, cursor)
        if found >= 0 and not text[cursor:found].strip():
            cursor = found + len(piece)
        else:
            end = _aligned_end(text, cursor, piece)
            if end is None:
                break  # pysbd changed the text: keep the cuts made so far, the rest is one sentence
            cursor = end
        ends.append(cursor)
    return ends


def _spans(paragraph: str, ends: list[int]) -> list[Span]:
    """Sentences cut at ``ends``, extended over closing quotes; a cut must fall on a space.

    A cut before a lower-case word is dropped: '"Why?" she asked.' is one sentence.
    """
    spans: list[Span] = []
    start = 0
    for end in ends:
        while end < len(paragraph) and paragraph[end] == '"':
            end += 1
        if start < end < len(paragraph) and paragraph[end] == " " and not _continues(paragraph, end + 1):
            spans.append((start, end))
            start = end + 1
    if start < len(paragraph):
        spans.append((start, len(paragraph)))
    return spans


def _continues(paragraph: str, position: int) -> bool:
    match = _NEXT_WORD.match(paragraph, position)
    return bool(match and match.group(1).islower())


def _aligned_end(text: str, cursor: int, piece: str) -> int | None:
    """End of ``piece`` in ``text`` when only whitespace differs; None when pysbd altered the text."""
    position = cursor
    for ch in piece:
        if ch.isspace():
            continue
        while position < len(text) and text[position] == " ":
            position += 1
        if position >= len(text) or text[position] != ch:
            return None
        position += 1
    return position


def _merge_silent(paragraph: str, spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in spans:
        silent = not _speakable(paragraph[start:end])
        if merged and (silent or not _speakable(paragraph[merged[-1][0] : merged[-1][1]])):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)
