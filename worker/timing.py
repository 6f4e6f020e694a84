"""A file's word, sentence and phone times, from each chunk's alignment, in the ORIGINAL text's terms.

Each chunk's spoken words are found in the input's normalised text (`shared.text.normalize`), whose
offset map gives the characters of the input they were spoken from: "$12" spoken as "twelve dollars"
is one timed word `$12`. Sentences are the chunk's sentences (the planner's segmenter); a sentence
longer than a cue should be is cut between words, at a comma where there is one near the middle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.audio.visemes import Timed, visemes
from shared.text.normalize import NormalizedText, normalize
from shared.text.segment import split_sentences
from worker.alignment import ChunkAlignment, Method
from worker.planning import PlannedChunk

MAX_CUE_SECONDS = 7.0
MAX_CUE_CHARS = 84
"""Two subtitle lines of 42 characters, the common broadcast limit."""
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class TimedWord:
    word: str
    """The input's characters `[char_start, char_end)` this word was spoken from."""
    spoken: str
    start: float
    end: float
    """Seconds from the start of the file."""
    char_start: int
    char_end: int
    input: str
    method: Method


@dataclass(frozen=True)
class Sentence:
    """One subtitle cue: a sentence (or a piece of a long one) with its place in the input."""

    input_index: int
    char_start: int
    char_end: int
    start: float
    end: float
    text: str
    speaker: str | None = None
    """A dialogue turn's speaker (its cue names them)."""


@dataclass
class FileTiming:
    words: list[TimedWord] = field(default_factory=list)
    sentences: list[Sentence] = field(default_factory=list)
    phones: dict[int, list[Timed]] = field(default_factory=dict)
    """Per input index: phones (and `SIL`) with times from the start of the file."""
    chunks: dict[str, int] = field(default_factory=lambda: {m.value: 0 for m in Method})
    """How many chunks were aligned and how many estimated."""
    estimated: set[int] = field(default_factory=set)
    """Indices of the inputs with at least one estimated chunk."""


class _Origins:
    """Original offsets of a chunk's spoken characters, through the input's normalisation."""

    def __init__(self, original: str, language: str) -> None:
        self._original = original
        self._language = language
        self._whole: NormalizedText | None = None
        self._cursor = 0
        self._chunk: PlannedChunk | None = None
        self._found: tuple[NormalizedText, int, int] | None = None

    def locate(self, chunk: PlannedChunk) -> None:
        """Find `chunk`'s text in the input's normalised text (in order), for the `span` calls after."""
        self._chunk = chunk
        if self._whole is None:
            self._whole = normalize(self._original, self._language)
        text = chunk.chunk.text
        found = self._whole.text.find(text, self._cursor)
        if found >= 0:
            self._cursor = found + len(text)
            self._found = (self._whole, found, 0)
            return
        # Inline pause markers: the stretch between markers was normalised on its own.
        piece = normalize(self._original[chunk.chunk.start : chunk.chunk.end], self._language)
        found = piece.text.find(text)
        self._found = (piece, found, chunk.chunk.start) if found >= 0 else None

    def span(self, a: int, b: int) -> tuple[int, int]:
        """Original span of the located chunk's spoken characters `[a, b)` (`a < b`)."""
        assert self._chunk is not None
        if self._found is None:  # not found again (never expected): in proportion over the chunk's span
            chunk = self._chunk.chunk
            start, end, length = chunk.start, chunk.end, max(1, len(chunk.text))
            return start + (end - start) * a // length, start + (end - start) * b // length
        normalized, at, base = self._found
        lo, hi = normalized.span_to_original(at + a, at + b)
        return lo + base, hi + base


def input_timing(
    timing: FileTiming,
    *,
    input_index: int,
    input_id: str,
    original: str,
    chunks: Sequence[PlannedChunk],
    alignments: Sequence[ChunkAlignment],
    starts: Sequence[float],
    language: str = "en",
) -> None:
    """Add one input's words, sentences and phones to `timing`; `starts[i]` is where chunk i's audio
    begins in the file (seconds)."""
    origins = _Origins(original, language)
    phones = timing.phones.setdefault(input_index, [])
    for planned, alignment, offset in zip(chunks, alignments, starts, strict=True):
        origins.locate(planned)
        timing.chunks[alignment.method.value] += 1
        if alignment.method is Method.ESTIMATED:
            timing.estimated.add(input_index)
        words = _merged(alignment, origins, original, offset, input_id)
        timing.words += [word for word, _ in words]
        for a, b in split_sentences(planned.chunk.text, language) or [(0, len(planned.chunk.text))]:
            inside = [word for word, at in words if a <= at < b]
            if inside:
                lo, hi = origins.span(a, b)
                lo, hi = min(lo, inside[0].char_start), max(hi, inside[-1].char_end)
                cues = _cues(input_index, original, inside, lo, hi)
                timing.sentences += [replace(cue, speaker=planned.speaker) for cue in cues] if planned.speaker else cues
        moments = [*(p for w in alignment.words for p in w.phones), *alignment.silences]
        phones += [Timed(p.name, offset + p.start, offset + p.end) for p in moments]
    phones.sort(key=lambda p: p.start)


def _merged(
    alignment: ChunkAlignment, origins: _Origins, original: str, offset: float, input_id: str
) -> list[tuple[TimedWord, int]]:
    """Timed words in original terms (spoken words from one original word merged into one), each
    with the spoken offset of its first word (which places it in its sentence)."""
    out: list[tuple[TimedWord, int]] = []
    for word in alignment.words:
        lo, hi = origins.span(word.char_start, word.char_end)
        start, end = offset + word.start, offset + word.end
        if out and (out[-1][0].char_start, out[-1][0].char_end) == (lo, hi):
            last, at = out[-1]
            out[-1] = (replace(last, spoken=f"{last.spoken} {word.text}", end=end), at)
            continue
        text = original[lo:hi] or word.text
        out.append((TimedWord(text, word.text, start, end, lo, hi, input_id, alignment.method), word.char_start))
    return out


def _cues(input_index: int, original: str, words: list[TimedWord], lo: int, hi: int) -> list[Sentence]:
    """One sentence (original characters `[lo, hi)`) as cues: whole when short enough, else cut between
    words, recursively; each piece keeps the punctuation up to the next piece's first word."""
    while lo < hi and original[lo].isspace():
        lo += 1
    while hi > lo and original[hi - 1].isspace():
        hi -= 1
    text = _SPACES.sub(" ", original[lo:hi])
    seconds = words[-1].end - words[0].start
    if len(words) < 2 or (seconds <= MAX_CUE_SECONDS and len(text) <= MAX_CUE_CHARS):
        return [Sentence(input_index, lo, hi, words[0].start, words[-1].end, text)]
    cut = _best_cut(original, words)
    middle = max(lo, words[cut].char_start)
    return _cues(input_index, original, words[:cut], lo, middle) + _cues(input_index, original, words[cut:], middle, hi)


def _best_cut(original: str, words: list[TimedWord]) -> int:
    """Index of the word a piece starts at: near the middle, after punctuation where it can be."""
    middle = (words[0].start + words[-1].end) / 2

    def cost(i: int) -> float:
        between = original[words[i - 1].char_end : words[i].char_start]
        return abs(words[i].start - middle) - (2.0 if re.search(r"[,;:\u2014\u2013-]", between) else 0.0)

    return min(range(1, len(words)), key=cost)


def words_json(timing: FileTiming) -> str:
    """The word timestamps file: every word with its times and its characters in the original input,
    and how many chunks were aligned or estimated (a word's `timing` says which of the two it is)."""
    document = {
        "words": [
            {
                "word": w.word,
                "spoken": w.spoken,
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "char_start": w.char_start,
                "char_end": w.char_end,
                "input": w.input,
                "timing": w.method.value,
            }
            for w in timing.words
        ],
        "chunks": timing.chunks,
    }
    return json.dumps(document, ensure_ascii=False, indent=1)


def lipsync(timing: FileTiming, input_index: int) -> dict[str, Any]:
    """One line's lip-sync data for the manifest: its phonemes (ARPAbet, `SIL` for pauses) and their
    visemes (`shared.audio.visemes`), seconds from the start of the line's file. `timing` is
    `estimated` when a chunk of the line could not be aligned (then it has no phonemes)."""
    phones = timing.phones.get(input_index, [])
    estimated = input_index in timing.estimated or not phones
    return {
        "timing": (Method.ESTIMATED if estimated else Method.ALIGNED).value,
        "phonemes": [{"phone": p.name, "start": round(p.start, 3), "end": round(p.end, 3)} for p in phones],
        "visemes": [{"viseme": v.name, "start": round(v.start, 3), "end": round(v.end, 3)} for v in visemes(phones)],
    }
