"""English number reading: dates, times, currency, percentages, measures, fractions, ordinals, years,
decimals, cardinals.

Number words come from num2words; this module only decides which reading a digit string gets.
Everything is one regex pass so a date is never re-read as two cardinals.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from num2words import num2words

from shared.text.offsets import Edit, MappedText

MONTHS = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)
_MONTH = "(?:" + "|".join(MONTHS) + r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
_FULL_MONTH = {m[:3]: m for m in MONTHS}
_ORD = r"(?:st|nd|rd|th)"
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_NOT_BEFORE = r"(?<![\w.,])"
_NOT_AFTER = r"(?![\w]|[.,]\d)"
_SCALES = r"thousand|million|billion|trillion"
# symbol -> ((unit, units), (subunit, subunits))
_CURRENCIES = {
    "$": (("dollar", "dollars"), ("cent", "cents")),
    "£": (("pound", "pounds"), ("penny", "pence")),
    "€": (("euro", "euros"), ("cent", "cents")),
}
# Country prefixes of a dollar sign (US$20, C$5): the country is said before "dollars".
_DOLLAR_COUNTRIES = {
    "US": "US",
    "C": "Canadian",
    "CA": "Canadian",
    "A": "Australian",
    "AU": "Australian",
    "NZ": "New Zealand",
    "HK": "Hong Kong",
    "S": "Singapore",
}
# Scale letters glued to an amount ($5M, $2.5bn, £3k).
_SCALE_SUFFIXES = {
    "k": "thousand",
    "K": "thousand",
    "m": "million",
    "M": "million",
    "mn": "million",
    "b": "billion",
    "B": "billion",
    "bn": "billion",
    "t": "trillion",
    "T": "trillion",
    "tn": "trillion",
}
_COUNTRY = "|".join(sorted(_DOLLAR_COUNTRIES, key=len, reverse=True))
_SCALE_SUFFIX = "|".join(sorted(_SCALE_SUFFIXES, key=len, reverse=True))
# Unit symbols that only ever mean one thing after a number (not "m", "in" or "g"): (singular, plural).
_UNITS = {
    "km/h": ("kilometre per hour", "kilometres per hour"),
    "kph": ("kilometre per hour", "kilometres per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometre", "kilometres"),
    "cm": ("centimetre", "centimetres"),
    "mm": ("millimetre", "millimetres"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "lbs": ("pound", "pounds"),
    "lb": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ft": ("foot", "feet"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
}
_UNIT = "|".join(re.escape(unit) for unit in _UNITS)
_MAX_DIGITS_AS_NUMBER = 15
_YEAR_CUES = re.compile(r"(?i)(?:\b(?:in|since|by|until|till|from|of|during|circa|year|c\.)|" + _MONTH + r",?) $")
_PARAGRAPH_END = re.compile(r" *(?:\n|$)")
_SENTENCE_START = re.compile(r" +[\"'(]?[A-Z]")
_SENTENCE_OPENING = re.compile(r"(?:^|[.!?][\"')]?\s+|\n\s*)$")
_YEAR_VERBS = re.compile(
    r"(?:,| (?:was|is|saw|brought|marked|began|ended|became|came|had|has|will|would|proved|changed|started|"
    r"remains|remained|seemed|felt|looked|turned|went)\b)"
)
"""What follows a year that opens a sentence ("1984 was cold."), as opposed to a count ("1984 people")."""

NUMBERS = re.compile(
    # Cheap guard first: every alternative below starts with one of these (months: J F M A S O N D).
    r"(?=[-\d$£€'JFMASONDhwUCAHN(+]|[\w.+-]+@)(?:"
    r"(?P<url>\b(?:https?://|www\.)\S+|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
    rf"|(?P<iso>{_NOT_BEFORE}(?P<iso_year>\d{{4}})-(?P<iso_month>0[1-9]|1[0-2])-(?P<iso_day>0[1-9]|[12]\d|3[01])"
    rf"{_NOT_AFTER})"
    rf"|(?P<dmy>{_NOT_BEFORE}(?P<dmy_day>\d{{1,2}}){_ORD}? (?:of )?(?P<dmy_month>{_MONTH})"
    rf"(?:,? (?P<dmy_year>\d{{4}}))?\b)"
    rf"|(?P<mdy>\b(?P<mdy_month>{_MONTH}) (?P<mdy_day>\d{{1,2}}){_ORD}?"
    rf"(?:,? (?P<mdy_year>\d{{4}}))?{_NOT_AFTER})"
    rf"|(?P<sdate>{_NOT_BEFORE}(?P<sd_a>\d{{1,2}})(?P<sd_sep>/)(?P<sd_b>\d{{1,2}})/(?P<sd_year>\d{{4}}|\d{{2}})"
    rf"{_NOT_AFTER})"
    rf"|(?P<ddate>{_NOT_BEFORE}(?P<dd_day>\d{{1,2}})\.(?P<dd_month>\d{{1,2}})\.(?P<dd_year>\d{{4}}){_NOT_AFTER})"
    rf"|(?P<phone>(?<![\w+-])(?:(?P<ph_plus>\+)?(?P<ph_one>1)[-. ]?)?(?:(?P<ph_area>\(\d{{3}}\)[- ]?|\d{{3}}[-.])?)"
    rf"(?P<ph_ex>\d{{3}})-(?P<ph_line>\d{{4}})(?:-(?P<ph_ext>\d{{1,4}}))?(?![\w-]))"
    rf"|(?P<time>{_NOT_BEFORE}(?P<hour>\d{{1,2}})(?::(?P<minute>\d{{2}}))?"
    rf" ?(?P<meridiem>[aApP])\.?[mM]\.?(?!\w))"
    rf"|(?P<clock>{_NOT_BEFORE}(?P<c_hour>[01]?\d|2[0-3]):(?P<c_minute>[0-5]\d)(?::(?P<c_second>[0-5]\d))?"
    rf"{_NOT_AFTER})"
    rf"|(?P<money>(?<![\w-])(?P<money_sign>-)?(?P<country>{_COUNTRY})?"
    rf"(?P<symbol>(?<![\w])[$£€]|(?<=[A-Z])\$) ?(?P<amount>{_NUM})"
    rf"(?:(?P<suffix>{_SCALE_SUFFIX})\b| (?P<scale>{_SCALES})\b)?)"
    rf"|(?P<percent>{_NOT_BEFORE}(?P<pct>{_NUM}) ?%)"
    rf"|(?P<measure>{_NOT_BEFORE}(?P<m_sign>-)?(?P<m_value>{_NUM}) ?(?P<unit>{_UNIT})(?![\w/]))"
    rf"|(?P<ordinal>{_NOT_BEFORE}(?P<ord>\d+){_ORD}\b)"
    rf"|(?P<decade>(?<![\w.,])(?:(?P<dec>1\d|20)|')?(?P<dec_end>\d0)'?s\b)"
    rf"|(?P<version>{_NOT_BEFORE}\d+(?:\.\d+){{2,}}{_NOT_AFTER})"
    rf"|(?P<fraction>(?<![\w.,/])(?:(?P<fr_whole>\d+) )?(?P<fr_num>\d{{1,3}})/(?P<fr_den>\d{{1,3}})(?![\w/]|[.,]\d))"
    rf"|(?P<number>{_NOT_BEFORE}(?P<sign>-)?(?P<value>{_NUM}){_NOT_AFTER})"
    ")"
)


_LONG_DIGITS = re.compile(rf"(?<![\w.,])\d{{{_MAX_DIGITS_AS_NUMBER + 1},}}(?![\w]|[.,]\d)")


def expand_numbers(mapped: MappedText) -> MappedText:
    mapped = mapped.sub_edits(_LONG_DIGITS, _digits_one_by_one)
    text = mapped.text
    return mapped.sub(NUMBERS, lambda m: _read(m, text))


def _read(m: re.Match[str], text: str) -> str | None:
    kind = m.lastgroup
    if kind == "url":
        return None  # addresses are left as written
    if kind == "iso":
        said = f"{MONTHS[int(m['iso_month']) - 1]} {_ordinal(m['iso_day'])}"
        return f"{said}, {year(m['iso_year'])}"
    if kind == "dmy":
        day = _ordinal(m["dmy_day"])
        if day is None:
            return None
        said = f"the {day} of {_month(m['dmy_month'])}"
        return f"{said} {year(m['dmy_year'])}" if m["dmy_year"] else said
    if kind == "mdy":
        day = _ordinal(m["mdy_day"])
        if day is None:
            return None
        said = f"{_month(m['mdy_month'])} {day}"
        return f"{said}, {year(m['mdy_year'])}" if m["mdy_year"] else said
    if kind == "sdate":  # month first (the US order), unless the first number cannot be a month
        first, second = int(m["sd_a"]), int(m["sd_b"])
        month, day = (first, second) if first <= 12 else (second, first)
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        said = f"{MONTHS[month - 1]} {_ordinal(str(day))}"
        return f"{said}, {year(m['sd_year'])}"
    if kind == "ddate":  # 25.12.2023: day first, as everywhere dots separate a date
        day, month = int(m["dd_day"]), int(m["dd_month"])
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        return f"the {_ordinal(str(day))} of {MONTHS[month - 1]} {year(m['dd_year'])}"
    if kind == "phone":
        groups = [m["ph_one"], (m["ph_area"] or "").strip("()-. "), m["ph_ex"], m["ph_line"], m["ph_ext"]]
        said = ", ".join(_digit_by_digit(group) for group in groups if group)
        return f"plus {said}" if m["ph_plus"] else said
    if kind == "time":
        return _time(m, text)
    if kind == "clock":
        said = _clock(int(m["c_hour"]), int(m["c_minute"]))
        if m["c_second"]:
            seconds = int(m["c_second"])
            said += f" and {_words(seconds)} second{'' if seconds == 1 else 's'}"
        return said
    if kind == "money":
        scale = m["scale"] or (_SCALE_SUFFIXES[m["suffix"]] if m["suffix"] else None)
        said = _money(m["symbol"], m["amount"], scale, _DOLLAR_COUNTRIES.get(m["country"] or ""))
        return f"minus {said}" if m["money_sign"] else said
    if kind == "percent":
        return f"{cardinal(m['pct'])} percent"
    if kind == "measure":
        one, many = _UNITS[m["unit"]]
        said = f"{cardinal(m['m_value'])} {one if m['m_value'] == '1' else many}"
        return f"minus {said}" if m["m_sign"] else said
    if kind == "ordinal":
        return _ordinal(m["ord"])
    if kind == "decade":
        said = year(m["dec"] + m["dec_end"]) if m["dec"] else _words(int(m["dec_end"]))
        return said[:-1] + "ies" if said.endswith("y") else said + "s"
    if kind == "version":
        return " point ".join(cardinal(part) for part in m.group().split("."))
    if kind == "fraction":
        return _fraction(m["fr_whole"], int(m["fr_num"]), int(m["fr_den"]))
    value = m["value"]
    if _looks_like_year(value, text, m.start()):
        return year(value)
    said = cardinal(value)
    return f"minus {said}" if m["sign"] else said


_FRACTION_NAMES = {2: ("half", "halves"), 4: ("quarter", "quarters")}


def _fraction(whole: str | None, numerator: int, denominator: int) -> str:
    """'3/4' -> 'three quarters', '1 1/2' -> 'one and a half'; '24/7' or '1/1' are not fractions."""
    if not 0 < numerator < denominator:
        said = f"{_words(numerator)}/{_words(denominator)}"
        return f"{cardinal(whole)} {said}" if whole else said
    ordinal = _words(denominator, to="ordinal").removeprefix("one ")  # 'hundredth', not 'one hundredth'
    one, many = _FRACTION_NAMES.get(denominator) or (ordinal, ordinal + "s")
    part = f"{_words(numerator)} {many}" if numerator > 1 else f"{'a' if whole else 'one'} {one}"
    return f"{cardinal(whole)} and {part}" if whole else part


def _digits_one_by_one(m: re.Match[str]) -> list[Edit]:
    """A serial number is read digit by digit; each word keeps its own digit as origin."""
    edits: list[Edit] = []
    for i in range(m.start(), m.end()):
        if i > m.start():
            edits.append((i, i, " "))
        edits.append((i, i + 1, _words(int(m.string[i]))))
    return edits


def cardinal(digits: str) -> str:
    """Read '1,234.50' as 'one thousand two hundred and thirty-four point five zero'."""
    whole, _, fraction = digits.replace(",", "").partition(".")
    if len(whole) > _MAX_DIGITS_AS_NUMBER or (len(whole) > 1 and whole.startswith("0")):
        said = _digit_by_digit(whole)
    else:
        said = _words(int(whole))
    if fraction:
        said += " point " + _digit_by_digit(fraction)
    return said


def spoken_number(value: int, *, ordinal: bool = False) -> str:
    """'four' or 'fourth', for readers of numbers written other than in digits."""
    return _words(value, to="ordinal") if ordinal else _words(value)


def year(digits: str) -> str:
    return _words(int(digits), to="year")


def _ordinal(digits: str) -> str | None:
    if len(digits) > _MAX_DIGITS_AS_NUMBER:
        return None
    return _words(int(digits), to="ordinal")


def _words(value: int, **kwargs: Any) -> str:
    return num2words(value, lang="en", **kwargs).replace(",", "")


def _digit_by_digit(digits: str) -> str:
    return " ".join(_words(int(d)) for d in digits)


def _month(name: str) -> str:
    name = name.rstrip(".")
    return _FULL_MONTH.get(name[:3], name) if len(name) <= 4 else name


def _looks_like_year(value: str, text: str, start: int) -> bool:
    if len(value) != 4 or not value.isdigit() or not 1100 <= int(value) <= 2099:
        return False
    if _SENTENCE_OPENING.search(text, max(0, start - 4), start) and _YEAR_VERBS.match(text, start + 4):
        return True
    return bool(_YEAR_CUES.search(text, max(0, start - 12), start))


def _clock(hour: int, minute: int) -> str:
    said = _words(hour)
    if minute == 0:
        return said + " hundred" if hour > 12 or hour == 0 else said + " o'clock"
    return f"{said} oh {_words(minute)}" if minute < 10 else f"{said} {_words(minute)}"


def _time(m: re.Match[str], text: str) -> str | None:
    hour = int(m["hour"])
    minute = int(m["minute"]) if m["minute"] else 0
    if hour > 23 or minute > 59:
        return None
    meridiem = m["meridiem"]
    if not meridiem:
        return _clock(hour, minute)
    said = _words(hour)
    if minute:
        said += f" oh {_words(minute)}" if minute < 10 else f" {_words(minute)}"
    said += " AM" if meridiem in "aA" else " PM"
    # "5 p.m." closing a sentence: its dot is also the full stop.
    if m.group().endswith(".") and _ends_sentence(text, m.end()):
        said += "."
    return said


def _ends_sentence(text: str, position: int) -> bool:
    return bool(_PARAGRAPH_END.match(text, position) or _SENTENCE_START.match(text, position))


def _money(symbol: str, amount: str, scale: str | None, country: str | None = None) -> str:
    major, minor = _CURRENCIES[symbol]
    if country and symbol == "$":
        major = (f"{country} {major[0]}", f"{country} {major[1]}")
    if scale:
        return f"{cardinal(amount)} {scale} {major[1]}"
    try:
        value = Decimal(amount.replace(",", ""))
    except InvalidOperation:
        return f"{cardinal(amount)} {major[1]}"
    whole = int(value)
    cents = int((value - whole) * 100)
    if len(str(whole)) > _MAX_DIGITS_AS_NUMBER or value != value.quantize(Decimal("0.01")):
        return f"{cardinal(amount)} {major[1]}"
    parts = []
    if whole or not cents:
        parts.append(f"{_words(whole)} {major[0] if whole == 1 else major[1]}")
    if cents:
        parts.append(f"{_words(cents)} {minor[0] if cents == 1 else minor[1]}")
    return " and ".join(parts)
