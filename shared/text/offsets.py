"""Text with a character-level map back to the original, kept through every rewrite.

Each character of ``MappedText.text`` carries the half-open span ``[lo, hi)`` of the original text it
came from: a copied character maps to its own position, every character of a replacement maps to the
whole replaced span, and an inserted character maps to the empty span where it was inserted. Rewrites
compose, so after any number of passes the spans still point into the ORIGINAL text. The spans are
monotonic (edits never overlap), which is what lets chunk offsets be compared and sliced.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

Edit = tuple[int, int, str]
"""``(start, end, replacement)`` over the current text; edits are sorted and never overlap."""


@dataclass(frozen=True, eq=False)
class MappedText:
    text: str
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def identity(cls, text: str) -> MappedText:
        positions = np.arange(len(text), dtype=np.int64)
        return cls(text, positions, positions + 1)

    def __len__(self) -> int:
        return len(self.text)

    def span_to_original(self, start: int, end: int) -> tuple[int, int]:
        """Original span covering the characters ``text[start:end]`` (``start < end``)."""
        if not 0 <= start < end <= len(self.text):
            raise IndexError(f"span {start}:{end} outside text of length {len(self.text)}")
        return int(self.lo[start]), int(self.hi[end - 1])

    def edit(self, edits: Iterable[Edit]) -> MappedText:
        """Apply sorted, non-overlapping edits and compose the offset map."""
        edits = [e for e in edits if self.text[e[0] : e[1]] != e[2]]
        if not edits:
            return self
        pieces: list[str] = []
        # Per segment of the new text: old start, old end, new length, copied?
        seg_start: list[int] = []
        seg_end: list[int] = []
        seg_len: list[int] = []
        seg_copy: list[bool] = []
        cursor = 0
        for start, end, replacement in edits:
            if start < cursor or end < start:
                raise ValueError(f"edits overlap or are unsorted at {start}:{end}")
            if start > cursor:
                pieces.append(self.text[cursor:start])
                seg_start.append(cursor)
                seg_end.append(start)
                seg_len.append(start - cursor)
                seg_copy.append(True)
            if replacement:
                pieces.append(replacement)
                seg_start.append(start)
                seg_end.append(end)
                seg_len.append(len(replacement))
                seg_copy.append(False)
            cursor = end
        if cursor < len(self.text):
            pieces.append(self.text[cursor:])
            seg_start.append(cursor)
            seg_end.append(len(self.text))
            seg_len.append(len(self.text) - cursor)
            seg_copy.append(True)
        new_text = "".join(pieces)
        if not new_text:
            return MappedText("", np.zeros(0, np.int64), np.zeros(0, np.int64))

        lengths = np.asarray(seg_len, dtype=np.int64)
        seg_id = np.repeat(np.arange(len(lengths)), lengths)
        first = np.cumsum(lengths) - lengths
        within = np.arange(len(new_text), dtype=np.int64) - first[seg_id]
        copy = np.asarray(seg_copy)[seg_id]
        old_a = np.asarray(seg_start, dtype=np.int64)[seg_id]
        old_b = np.asarray(seg_end, dtype=np.int64)[seg_id]
        a = np.where(copy, old_a + within, old_a)
        b = np.where(copy, a + 1, old_b)
        return MappedText(new_text, *self._compose(a, b))

    def _compose(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map new characters' spans ``[a, b)`` over this text to spans over the original."""
        n = len(self.text)
        if n == 0:
            zeros = np.zeros(len(a), np.int64)
            return zeros, zeros.copy()
        inserted = b <= a
        a_clip = np.minimum(a, n - 1)
        lo = self.lo[a_clip]
        hi = self.hi[np.clip(b - 1, 0, n - 1)]
        # An insertion sits where the next old character starts (or after the last one).
        at_insert = np.where(a < n, self.lo[a_clip], self.hi[n - 1])
        lo = np.where(inserted, at_insert, lo)
        hi = np.where(inserted, at_insert, hi)
        return lo, hi

    def sub(self, pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str | None]) -> MappedText:
        """Rewrite every match of ``pattern``; ``replace`` returning None keeps the match as it is."""
        edits: list[Edit] = []
        for match in pattern.finditer(self.text):
            replacement = replace(match)
            if replacement is not None:
                edits.append((match.start(), match.end(), replacement))
        return self.edit(edits)

    def sub_edits(self, pattern: re.Pattern[str], edits_for: Callable[[re.Match[str]], list[Edit]]) -> MappedText:
        """Like ``sub`` but each match yields its own edits, so parts of a match keep separate origins."""
        edits: list[Edit] = []
        for match in pattern.finditer(self.text):
            edits.extend(edits_for(match))
        return self.edit(edits)

    def translate(self, table: dict[int, str]) -> MappedText:
        """One-to-one character substitution, cheap because the map does not change."""
        new_text = self.text.translate(table)
        if new_text == self.text:
            return self
        if len(new_text) != len(self.text):
            raise ValueError("translate() is for one-to-one substitutions only")
        return MappedText(new_text, self.lo, self.hi)
