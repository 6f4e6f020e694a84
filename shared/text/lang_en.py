"""English rules: abbreviations and numbers spelled out the way a narrator reads them."""

from __future__ import annotations

import re

from shared.text.languages import LanguageRules, register
from shared.text.numbers_en import expand_numbers, year
from shared.text.offsets import MappedText
from shared.text.roman_en import expand_roman_numerals

# Titles are always followed by a name, so their dot never ends a sentence.
_TITLES = {
    "Mr": "Mister",
    "Mrs": "Missus",
    "Ms": "Miz",
    "Dr": "Doctor",
    "Prof": "Professor",
    "Rev": "Reverend",
    "Fr": "Father",
    "Capt": "Captain",
    "Gen": "General",
    "Col": "Colonel",
    "Lt": "Lieutenant",
    "Sgt": "Sergeant",
    "Gov": "Governor",
    "Sen": "Senator",
    "Rep": "Representative",
    "Hon": "Honourable",
    "Messrs": "Messieurs",
    "Mt": "Mount",
}
# These may close a sentence: their dot is kept when a new sentence or the paragraph end follows.
_TRAILING = {
    "etc": "et cetera",
    "Jr": "Junior",
    "Sr": "Senior",
    "Ave": "Avenue",
    "Blvd": "Boulevard",
    "Rd": "Road",
}
# These sit inside a sentence: always followed by more words.
_INLINE = {
    "e.g.": "for example",
    "i.e.": "that is",
    "cf.": "compare",
    "vs.": "versus",
    "approx.": "approximately",
}

_TITLE = re.compile(r"\b(" + "|".join(_TITLES) + r")\.?(?= [\"'(]?[A-Z])")
_SAINT_OR_STREET = re.compile(r"\bSt\.?(?= |$|\n)")
_ABBREVIATION = re.compile(r"\b(" + "|".join(_TRAILING) + r")\.")
_INLINE_ABBREVIATION = re.compile(r"(?<!\w)(" + "|".join(re.escape(k) for k in _INLINE) + r")(?= )")
_NUMBER_SIGN = re.compile(r"\b(No|Nos|no)\.(?= ?\d)")
_VOLUME = re.compile(r"\b(Vol|VOL|vol)(s?)\.(?= ?(?:\d|[IVXLCDM]+\b))")
_NUMBER_RANGE = re.compile(r"(?<=\d)[–](?=\d)")
# 10-20, pages 3-7: a hyphen between two short numbers (not a phone number 555-1234, a date 2024-03-14,
# a score-like 1-800 or a negative number after a word).
_HYPHEN_RANGE = re.compile(r"(?<![\w.,-])(\d{1,4})-(\d{1,4})(?![\w-]|[.,]\d)")
# "Elm Dr." is a drive, "Dr. Jones" a doctor: a street name before it decides, as for "St.".
_DRIVE = re.compile(r"\bDr\.?(?= |,|$|\n)")
_NAME_BEFORE = re.compile(r"(?:\b([A-Z][\w'-]*)|\d+(?:st|nd|rd|th)?) $")
# Capitalised words that start a phrase rather than name a street: "On St. Paul's day".
_NOT_STREET_NAMES = {
    "On",
    "In",
    "At",
    "To",
    "From",
    "By",
    "Near",
    "The",
    "And",
    "Of",
    "For",
    "With",
    "Old",
    "Visit",
}
_SENTENCE_FOLLOWS = re.compile(r"(?: +[\"'(]?[A-Z]| *\n| *$)")


def expand_english(mapped: MappedText) -> MappedText:
    mapped = mapped.sub(_NUMBER_RANGE, lambda m: " to ")
    mapped = mapped.sub(_HYPHEN_RANGE, _hyphen_range)
    text = mapped.text
    mapped = mapped.sub(_DRIVE, lambda m: _drive(m, text))
    mapped = mapped.sub(_NUMBER_SIGN, lambda m: "number" if m.group(1) != "Nos" else "numbers")
    mapped = mapped.sub(_VOLUME, lambda m: ("Volume" if m.group(1)[0] == "V" else "volume") + m.group(2))
    mapped = mapped.sub(_TITLE, lambda m: _TITLES[m.group(1)])
    text = mapped.text
    mapped = mapped.sub(_SAINT_OR_STREET, lambda m: _saint_or_street(m, text))
    text = mapped.text
    mapped = mapped.sub(_ABBREVIATION, lambda m: _TRAILING[m.group(1)] + _kept_dot(text, m.end()))
    mapped = mapped.sub(_INLINE_ABBREVIATION, lambda m: _INLINE[m.group(1)])
    mapped = expand_roman_numerals(mapped)
    return expand_numbers(mapped)


def _hyphen_range(m: re.Match[str]) -> str | None:
    left, right = m.group(1), m.group(2)
    if len(left) == 3 and len(right) == 4:
        return None  # a phone number: read by the number rules
    if len(left) == 4 and 1100 <= int(left) <= 2099 and len(right) in (2, 4):
        return f"{year(left)} to {year(right)}"  # 1980-1986, 1960-80: years
    return f"{left} to {right}"


def _drive(m: re.Match[str], text: str) -> str | None:
    """'Elm Dr.' after a street name that is not the first word of its sentence; else the title rule."""
    before = _NAME_BEFORE.search(text, max(0, m.start() - 40), m.start())
    if not before or before.group(1) in _NOT_STREET_NAMES:
        return None
    if before.group(1) is not None and _SENTENCE_OPENS_AT.search(text, max(0, before.start() - 3), before.start()):
        return None  # "Then Dr. Smith": the capital is the sentence's, not a street's
    dotted = m.group().endswith(".")
    return "Drive" + (_kept_dot(text, m.end()) if dotted else "")


_SENTENCE_OPENS_AT = re.compile(r"(?:^|[.!?][\"')]? +|\n *)$")


def _saint_or_street(m: re.Match[str], text: str) -> str:
    """'St. Paul' is a saint; 'Baker St.' and '42nd St' are streets."""
    before = _NAME_BEFORE.search(text, max(0, m.start() - 40), m.start())
    if before and before.group(1) not in _NOT_STREET_NAMES:
        dotted = m.group().endswith(".")
        return "Street" + (_kept_dot(text, m.end()) if dotted else "")
    return "Saint"


def _kept_dot(text: str, position: int) -> str:
    return "." if _SENTENCE_FOLLOWS.match(text, position) else ""


register(LanguageRules("en", expand=expand_english, segmenter_language="en"))
