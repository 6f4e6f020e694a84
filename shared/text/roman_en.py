"""Roman numerals read the way a narrator reads them, only where the context says they are numbers.

'Chapter IV' -> 'Chapter four', 'World War II' -> 'World War two', 'Henry VIII' -> 'Henry the eighth',
a heading 'XII.' -> 'Twelve.'. Elsewhere 'I', 'MIX' or 'CD' are words and stay as written. Parsing and
validation (no 'IIII', no 'VX') are the `roman` package's.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import roman

from shared.text.numbers_en import spoken_number
from shared.text.offsets import Edit, MappedText

_NUMERAL = r"(?P<num>[IVXLCDM]+)"
# A capitalised word that counts what follows: "Chapter IV", "ACT III", "World War II", "Vol. XII".
_COUNTERS = (
    "Chapter", "Book", "Part", "Volume", "Act", "Scene", "Section", "Canto", "Psalm", "Appendix",
    "Letter", "Stave", "Episode", "Article", "War", "Phase", "Stage", "Level", "Round", "Year", "Class",
)  # fmt: skip
_COUNTED = re.compile(
    r"(?<![\w.])(?:" + "|".join(re.escape(w) + "|" + re.escape(w.upper()) for w in _COUNTERS) + r") " + _NUMERAL
    + r"(?![\w'’])"
)  # fmt: skip
# Monarchs and popes: "Henry VIII" -> "Henry the eighth".
_RULERS = (
    "Alexander", "Alfonso", "Amenhotep", "Anne", "Antiochus", "Benedict", "Boniface", "Carlos", "Catherine",
    "Charles", "Christian", "Clement", "Constantine", "Darius", "David", "Edward", "Elizabeth", "Ferdinand",
    "Francis", "Frederick", "George", "Gregory", "Gustav", "Haakon", "Harald", "Henry", "Innocent", "Ivan",
    "James", "John", "Juan", "Leo", "Louis", "Malcolm", "Mary", "Napoleon", "Nicholas", "Olaf", "Otto", "Paul",
    "Peter", "Philip", "Pius", "Ptolemy", "Ramesses", "Richard", "Robert", "Rudolf", "Thutmose", "Urban",
    "Victor Emmanuel", "Wilhelm", "William",
)  # fmt: skip
_RULER = re.compile(r"\b(?:" + "|".join(_RULERS) + r") " + _NUMERAL + r"(?![\w'’])")
# "Elizabeth I" only where the pronoun cannot be meant: before punctuation, the line's end or "of".
_AFTER_RULER_I = re.compile(r"(?:[.,;:!?)\"'’”]| of\b| *(?:\n|$))")
# A paragraph that is a numeral ("XII", "IV.") or starts with one before a title ("IV. The Storm");
# "I. M. Pei" is an initial, not a heading. No D or M: a chapter number is below 400, "MIX" is a word.
_HEADING = re.compile(r"(?m)^(?P<num>[IVXLC]+)(?:\.?$|\. (?=[A-Z\"'“‘])(?![A-Z]\.))")


def expand_roman_numerals(mapped: MappedText) -> MappedText:
    mapped = mapped.sub_edits(_COUNTED, lambda m: _numeral(m, spoken_number))
    mapped = mapped.sub_edits(_RULER, _ruler)
    return mapped.sub_edits(_HEADING, lambda m: _numeral(m, lambda n: spoken_number(n).capitalize()))


def _value(numeral: str) -> int | None:
    try:
        return roman.fromRoman(numeral)
    except roman.InvalidRomanNumeralError:
        return None


def _numeral(m: re.Match[str], say: Callable[[int], str]) -> list[Edit]:
    value = _value(m["num"])
    return [] if value is None else [(m.start("num"), m.end("num"), say(value))]


def _ruler(m: re.Match[str]) -> list[Edit]:
    if m["num"] == "I" and not _AFTER_RULER_I.match(m.string, m.end()):
        return []
    return _numeral(m, lambda n: "the " + spoken_number(n, ordinal=True))
