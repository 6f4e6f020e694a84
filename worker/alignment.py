"""Forced alignment of a chunk's audio to its spoken text: word and phone times (pocketsphinx).

PocketSphinx ships an English acoustic model and the CMU dictionary and aligns a known text to audio
(`Decoder.set_align_text`, then a second pass with `set_alignment` for phone-level times), on the CPU,
with no download. It runs in the assembly process (`worker.render_job`), never on the generation path.
A word the dictionary lacks gets a letter-by-letter pronunciation so the alignment still covers it.
Where the aligner fails (no pocketsphinx, audio too short, no path through the text) the chunk gets
today's estimate instead: word times in proportion to their letters over the chunk's voiced stretch,
and `method` says `estimated`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np

from shared.audio.resample import resample
from shared.audio.visemes import Timed

log = logging.getLogger(__name__)

ALIGN_RATE = 16000
FRAME_SECONDS = 0.01
"""PocketSphinx's frames are 10 ms."""

WORD = re.compile(r"[A-Za-z0-9]+(?:['\u2019][A-Za-z]+)*")

# Crude letter-to-phone rules for words outside the dictionary: only their length matters much.
_LETTER_PHONES = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH",
    "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R",
    "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "Y", "z": "Z",
}  # fmt: skip


class Method(StrEnum):
    """How a chunk's word times were found."""

    ALIGNED = "aligned"
    ESTIMATED = "estimated"


@dataclass(frozen=True)
class SpokenWord:
    """A word of a chunk's spoken text, times in seconds from the start of the chunk's audio."""

    text: str
    char_start: int
    char_end: int
    """``[char_start, char_end)`` in the chunk's spoken text."""
    start: float
    end: float
    phones: tuple[Timed, ...] = ()


@dataclass(frozen=True)
class ChunkAlignment:
    words: list[SpokenWord]
    method: Method
    silences: tuple[Timed, ...] = ()
    """Pauses the aligner found between words (phone-level lip-sync shows them as `sil`)."""


def stretched(alignment: ChunkAlignment, factor: float) -> ChunkAlignment:
    """`alignment` of the chunk's audio after a time-stretch by `factor` (a fitted timed line): every
    time scales with it, so lip-sync data follows the audio as delivered."""

    def timed(item: Timed) -> Timed:
        return replace(item, start=item.start * factor, end=item.end * factor)

    words = [
        replace(word, start=word.start * factor, end=word.end * factor, phones=tuple(map(timed, word.phones)))
        for word in alignment.words
    ]
    return replace(alignment, words=words, silences=tuple(map(timed, alignment.silences)))


def spoken_words(text: str) -> list[tuple[int, int]]:
    """Spans of the words in a spoken text (letters and digits, with inner apostrophes)."""
    return [m.span() for m in WORD.finditer(text)]


class Aligner:
    """One pocketsphinx decoder per process, built on first use (its model loads in about a second)."""

    def __init__(self) -> None:
        self._decoder: Any = None
        self._unavailable = False

    def _get_decoder(self) -> Any:
        if self._decoder is None and not self._unavailable:
            try:
                from pocketsphinx import Decoder
            except ImportError:
                log.warning("pocketsphinx is not installed: word times are estimated")
                self._unavailable = True
                return None
            self._decoder = Decoder(samprate=ALIGN_RATE, bestpath=False, loglevel="FATAL")
        return self._decoder

    def align(
        self, audio: np.ndarray, sample_rate: int, text: str, *, phones: bool = True, language: str = "en"
    ) -> ChunkAlignment:
        """Word times of `text` in `audio` (and their phones, a second pass that about doubles the cost:
        lip-sync wants them, cues and read-along do not); the estimate where alignment fails and for a
        language other than English (the only model pocketsphinx ships)."""
        spans = spoken_words(text)
        if not spans:
            return ChunkAlignment([], Method.ESTIMATED)
        decoder = self._get_decoder() if re.split("[-_]", language)[0].lower() == "en" else None
        if decoder is not None:
            try:
                words = self._forced(decoder, audio, sample_rate, text, spans, phones)
                if words is not None:
                    return words
            except Exception as exc:  # the C decoder's failures come as RuntimeError or ValueError
                log.warning("alignment failed (%s): word times estimated", exc)
        return estimate(audio, sample_rate, text)

    def _forced(
        self, decoder: Any, audio: np.ndarray, sample_rate: int, text: str, spans: list[tuple[int, int]], phones: bool
    ) -> ChunkAlignment | None:
        tokens = [text[a:b].lower().replace("\u2019", "'") for a, b in spans]
        for token in dict.fromkeys(tokens):
            if decoder.lookup_word(token) is None:
                decoder.add_word(token, _letter_phones(token), True)
        pcm = resample(np.asarray(audio, np.float32), sample_rate, ALIGN_RATE) if sample_rate != ALIGN_RATE else audio
        raw = (np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        if len(raw) < 2 * ALIGN_RATE // 10:
            return None
        decoder.set_align_text(" ".join(tokens))
        decoder.start_utt()
        decoder.process_raw(raw, full_utt=True)
        decoder.end_utt()
        if phones:  # the phone pass, over the word pass's segmentation
            decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(raw, full_utt=True)
            decoder.end_utt()
            alignment = decoder.get_alignment()
            if alignment is None:
                return None
            entries = [(e.name, e.start, e.start + e.duration, _phones(e)) for e in alignment]
        else:
            segments = decoder.seg()  # None when the decoder found no path through the text at all
            if segments is None:
                return None
            entries = [(s.word, s.start_frame, s.end_frame + 1, ()) for s in segments]
        words: list[SpokenWord] = []
        silences: list[Timed] = []
        for name, first, last, timed in entries:
            start, end = first * FRAME_SECONDS, last * FRAME_SECONDS
            if name.startswith("<") or name.startswith("["):  # <sil>, <s>, </s>, [NOISE]
                if end > start:
                    silences.append(Timed("SIL", start, end))
                continue
            index = len(words)
            if index >= len(spans):
                return None
            a, b = spans[index]
            words.append(SpokenWord(text[a:b], a, b, start, end, timed))
        if len(words) != len(spans):
            return None
        return ChunkAlignment(_clamped(words, *_voiced(audio, sample_rate)), Method.ALIGNED, tuple(silences))


def _phones(entry: Any) -> tuple[Timed, ...]:
    return tuple(Timed(p.name, p.start * FRAME_SECONDS, (p.start + p.duration) * FRAME_SECONDS) for p in entry)


def _clamped(words: list[SpokenWord], first: float, last: float) -> list[SpokenWord]:
    """The aligner lets the first word take the chunk's leading silence (and the last its trailing one):
    they start and end where the sound does."""
    head = words[0]
    if head.start < first < head.end:
        phones = head.phones
        if phones:  # never past its first phone: a breathy onset (HH) may lie under the threshold
            first = min(first, phones[0].end - FRAME_SECONDS)
            phones = (Timed(phones[0].name, first, phones[0].end), *phones[1:])
        words[0] = replace(head, start=first, phones=phones)
    tail = words[-1]
    if tail.start < last < tail.end:
        phones = tail.phones
        if phones:
            last = max(last, phones[-1].start + FRAME_SECONDS)
            phones = (*phones[:-1], Timed(phones[-1].name, phones[-1].start, last))
        words[-1] = replace(tail, end=last, phones=phones)
    return words


def _letter_phones(token: str) -> str:
    phones = [_LETTER_PHONES[ch] for ch in token if ch in _LETTER_PHONES]
    return " ".join(phones) or "AH"


def estimate(audio: np.ndarray, sample_rate: int, text: str) -> ChunkAlignment:
    """Word times in proportion to their letters over the chunk's voiced stretch (no phones)."""
    spans = spoken_words(text)
    if not spans:
        return ChunkAlignment([], Method.ESTIMATED)
    first, last = _voiced(audio, sample_rate)
    weights = np.array([max(1, b - a) for a, b in spans], dtype=np.float64)
    edges = first + (last - first) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    words = [SpokenWord(text[a:b], a, b, float(edges[i]), float(edges[i + 1])) for i, (a, b) in enumerate(spans)]
    return ChunkAlignment(words, Method.ESTIMATED)


def _voiced(audio: np.ndarray, sample_rate: int, threshold_db: float = -40.0) -> tuple[float, float]:
    """First and last second of the audio above `threshold_db` of its peak (the whole chunk if none)."""
    duration = len(audio) / sample_rate if sample_rate else 0.0
    if len(audio) == 0:
        return 0.0, duration
    magnitude = np.abs(np.asarray(audio, np.float32))
    peak = float(magnitude.max())
    if peak <= 0:
        return 0.0, duration
    loud = np.flatnonzero(magnitude >= peak * 10 ** (threshold_db / 20))
    return float(loud[0]) / sample_rate, float(loud[-1] + 1) / sample_rate
