"""Which language a text is written in, among the languages the engine speaks (lingua).

Restricting the candidates to what can be spoken keeps the guess useful (a sheet of English and
Spanish lines is never told "Catalan") and the detector small (only those languages' models are
loaded, once per process, on first use). Short lines are often ambiguous ("No.", "OK"): an input whose
best guess is not clearly ahead takes the language most of the job's confident inputs have, so a
Spanish sheet's "No." is read as Spanish.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from shared.text.languages import base_code

if TYPE_CHECKING:
    from lingua import LanguageDetector

CONFIDENT = 0.7
"""Share of the confidence the best language must have for the guess to stand on its own."""
SAMPLE_CHARS = 600
"""Characters read from each of (at most) four places of a long text: enough to tell, cheap for a book."""
_LOCK = threading.Lock()


@lru_cache(maxsize=8)
def _detector(candidates: tuple[str, ...]) -> LanguageDetector | None:
    """A detector for the candidates lingua knows; None when fewer than two remain (nothing to decide)."""
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = []
    for code in candidates:
        try:
            codes.append(IsoCode639_1.from_str(code))
        except ValueError:
            continue
    if len(codes) < 2:
        return None
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


def _sample(text: str) -> str:
    if len(text) <= 4 * SAMPLE_CHARS:
        return text
    step = (len(text) - SAMPLE_CHARS) // 3
    return " ".join(text[i * step : i * step + SAMPLE_CHARS] for i in range(4))


def detect_languages(texts: Sequence[str], candidates: Sequence[str]) -> list[str | None]:
    """The language (a base code of `candidates`) of each text, or None where nothing in it tells (digits
    only, another script). Ambiguous texts take the majority language of the confident ones."""
    bases = tuple(dict.fromkeys(base_code(code) for code in candidates))
    if len(bases) == 1:
        return [bases[0]] * len(texts)
    with _LOCK:
        detector = _detector(bases)
    if detector is None or not texts:
        return [None] * len(texts)
    rows = detector.compute_language_confidence_values_in_parallel([_sample(text) for text in texts])
    guesses: list[tuple[str | None, float]] = []
    for row in rows:
        best = row[0] if row else None
        if best is None or best.value <= 0.0:
            guesses.append((None, 0.0))
        else:
            guesses.append((best.language.iso_code_639_1.name.lower(), best.value))
    confident = Counter(code for code, value in guesses if code is not None and value >= CONFIDENT)
    majority = confident.most_common(1)[0][0] if confident else None
    return [code if code is None or value >= CONFIDENT or majority is None else majority for code, value in guesses]
