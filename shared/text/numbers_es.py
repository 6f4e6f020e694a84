"""Spanish number reading: dates, times, currency, percentages, measures, ordinals, decimals, cardinals.

Spanish conventions: a dot groups thousands and a comma marks decimals (``1.234,56``), the day comes
before the month (``25/12/2023``), a percent sign may stand apart (``15 %``), a currency symbol may
follow the amount (``20 €``) or precede it (``$20``), ordinals are written ``1.º``, ``2.ª``, ``3.er``.
Number words come from num2words (``lang="es"``); this module decides which reading a digit string
gets, in one regex pass so that a date is never re-read as three cardinals.
"""

from __future__ import annotations

import re
from typing import Any

from num2words import num2words

from shared.text.offsets import Edit, MappedText

MONTHS = (
    *("enero", "febrero", "marzo", "abril", "mayo", "junio"),
    *("julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"),
)
_MAX_DIGITS_AS_NUMBER = 15
# 1.234.567,89 (dots group thousands), 1234,5 or 1234; a dot before other than three digits is a
# decimal point as written in Mexico and Central America (2.5).
_NUM = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+,\d+|\d+\.\d+(?![\d.])|\d+"
_GROUPED = re.compile(r"\d{1,3}(?:\.\d{3})+")
_NOT_BEFORE = r"(?<![\w.,])"
_NOT_AFTER = r"(?![\w]|[.,]\d)"
# symbol -> ((unit, units), (subunit, subunits), feminine?)
_CURRENCIES: dict[str, tuple[tuple[str, str], tuple[str, str], bool]] = {
    "€": (("euro", "euros"), ("céntimo", "céntimos"), False),
    "$": (("dólar", "dólares"), ("centavo", "centavos"), False),
    "£": (("libra", "libras"), ("penique", "peniques"), True),
}
_CURRENCY_CODES = {"EUR": "€", "USD": "$", "GBP": "£"}
_SCALES = r"mil millones|millones|millón|mil|billones|billón"
# Unit symbols that only ever mean one thing after a number: (singular, plural).
_UNITS = {
    "km/h": ("kilómetro por hora", "kilómetros por hora"),
    "km": ("kilómetro", "kilómetros"),
    "cm": ("centímetro", "centímetros"),
    "mm": ("milímetro", "milímetros"),
    "kg": ("kilo", "kilos"),
    "mg": ("miligramo", "miligramos"),
    "°C": ("grado centígrado", "grados centígrados"),
    "ºC": ("grado centígrado", "grados centígrados"),
    "°": ("grado", "grados"),
}
_UNIT = "|".join(re.escape(unit) for unit in sorted(_UNITS, key=len, reverse=True))
# Words after which a number is not counting a noun, so "uno" keeps its full form ("uno de mayo").
_NOT_A_NOUN = {
    *("de", "del", "y", "e", "o", "u", "a", "al", "en", "con", "por", "para", "entre", "que", "más"),
    *("menos", "coma", "punto", "por", "como", "hasta", "desde", "sobre", "es", "son", "fue"),
}

NUMBERS = re.compile(
    r"(?=[-\d$£€(+]|US\$|[A-Z]{3} ?\d|[\w.+-]+@|https?:|www\.)(?:"
    r"(?P<url>\b(?:https?://|www\.)\S+|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
    rf"|(?P<iso>{_NOT_BEFORE}(?P<iso_year>\d{{4}})-(?P<iso_month>0[1-9]|1[0-2])-(?P<iso_day>0[1-9]|[12]\d|3[01])"
    rf"{_NOT_AFTER})"
    rf"|(?P<sdate>{_NOT_BEFORE}(?P<sd_day>\d{{1,2}})(?P<sd_sep>[/.-])(?P<sd_month>\d{{1,2}})(?P=sd_sep)"
    rf"(?P<sd_year>\d{{4}}|\d{{2}}){_NOT_AFTER})"
    rf"|(?P<clock>{_NOT_BEFORE}(?P<c_hour>[01]?\d|2[0-3]):(?P<c_minute>[0-5]\d)(?::(?P<c_second>[0-5]\d))?"
    rf"(?: ?(?P<c_h>h)\b)?{_NOT_AFTER})"
    rf"|(?P<money_after>{_NOT_BEFORE}(?P<ma_sign>-)?(?P<ma_amount>{_NUM})(?: (?P<ma_scale>{_SCALES}) de)?"
    rf" ?(?P<ma_symbol>[€$£]|(?:EUR|USD|GBP)\b))"
    rf"|(?P<money_before>(?<![\w-])(?P<mb_sign>-)?(?P<mb_country>US)?(?P<mb_symbol>[€$£]|(?:EUR|USD|GBP)(?= ?\d))"
    rf" ?(?P<mb_amount>{_NUM})(?: (?P<mb_scale>{_SCALES})\b)?)"
    rf"|(?P<percent>{_NOT_BEFORE}(?P<p_sign>-)?(?P<pct>{_NUM}) ?%)"
    rf"|(?P<measure>{_NOT_BEFORE}(?P<m_sign>-)?(?P<m_value>{_NUM}) ?(?P<unit>{_UNIT})(?![\w/]))"
    rf"|(?P<ordinal>{_NOT_BEFORE}(?P<ord>\d{{1,4}})\.?(?P<ord_mark>º|ª|°(?!C)|er\b))"
    rf"|(?P<number>{_NOT_BEFORE}(?P<sign>-)?(?P<value>{_NUM}){_NOT_AFTER})"
    ")"
)
_LONG_DIGITS = re.compile(rf"(?<![\w.,])\d{{{_MAX_DIGITS_AS_NUMBER + 1},}}(?![\w]|[.,]\d)")
_NEXT_WORD = re.compile(r" ([a-záéíóúñü]+)")


def expand_numbers(mapped: MappedText) -> MappedText:
    mapped = mapped.sub_edits(_LONG_DIGITS, _digits_one_by_one)
    text = mapped.text
    return mapped.sub(NUMBERS, lambda m: _read(m, text))


def _read(m: re.Match[str], text: str) -> str | None:
    kind = m.lastgroup
    if kind == "url":
        return None
    if kind == "iso":
        return _date(int(m["iso_day"]), int(m["iso_month"]), m["iso_year"])
    if kind == "sdate":
        if m["sd_sep"] != "/" and len(m["sd_year"]) == 2:
            return None  # 1.5.24 or 3-4-25: more likely a version or a score than a date
        return _date(int(m["sd_day"]), int(m["sd_month"]), m["sd_year"])
    if kind == "clock":
        said = _clock(int(m["c_hour"]), int(m["c_minute"]))
        if m["c_second"]:
            seconds = int(m["c_second"])
            said += f" y {_apocope(_words(seconds))} segundo{'' if seconds == 1 else 's'}"
        return said
    if kind == "money_after":
        said = _money(m["ma_symbol"], m["ma_amount"], m["ma_scale"])
        return f"menos {said}" if m["ma_sign"] else said
    if kind == "money_before":
        said = _money(m["mb_symbol"], m["mb_amount"], m["mb_scale"], american=bool(m["mb_country"]))
        return f"menos {said}" if m["mb_sign"] else said
    if kind == "percent":
        said = f"{cardinal(m['pct'])} por ciento"
        return f"menos {said}" if m["p_sign"] else said
    if kind == "measure":
        one, many = _UNITS[m["unit"]]
        value = m["m_value"]
        said = f"{_apocope(cardinal(value))} {one if value == '1' else many}"
        return f"menos {said}" if m["m_sign"] else said
    if kind == "ordinal":
        return ordinal(int(m["ord"]), feminine=m["ord_mark"] == "ª", short=m["ord_mark"] == "er")
    said = cardinal(m["value"])
    following = _NEXT_WORD.match(text, m.end())
    if following and following.group(1) not in _NOT_A_NOUN:
        said = _apocope(said)  # "21 años" -> "veintiún años", "1 día" -> "un día"
    return f"menos {said}" if m["sign"] else said


def cardinal(digits: str) -> str:
    """'1.234,5' -> 'mil doscientos treinta y cuatro coma cinco'; '2.5' -> 'dos punto cinco'."""
    whole, fraction, point = _split(digits)
    if len(whole) > _MAX_DIGITS_AS_NUMBER or (len(whole) > 1 and whole.startswith("0")):
        said = _digit_by_digit(whole)
    else:
        said = _words(int(whole))
    if fraction:
        said += f" {point} {_fraction(fraction)}"
    return said


def _split(digits: str) -> tuple[str, str, str]:
    """(whole digits, decimal digits, the word read between them)."""
    if "," in digits:
        whole, _, fraction = digits.partition(",")
        return whole.replace(".", ""), fraction, "coma"
    if _GROUPED.fullmatch(digits):
        return digits.replace(".", ""), "", ""
    whole, _, fraction = digits.partition(".")
    return whole, fraction, "punto"


def ordinal(value: int, *, feminine: bool = False, short: bool = False) -> str:
    """'primero', 'segunda', 'tercer' (``short``: the form before a noun, written 3.er)."""
    said = _words(value, to="ordinal")
    if short:
        return re.sub(r"(prim|terc)ero\b", r"\1er", said)
    if feminine:
        return re.sub(r"o\b", "a", said)
    return said


def _fraction(digits: str) -> str:
    """Decimals as Spaniards read them: '14' -> 'catorce', '05' -> 'cero cinco'; long ones digit by digit."""
    if len(digits) > 3:
        return _digit_by_digit(digits)
    zeros = len(digits) - len(digits.lstrip("0"))
    rest = digits[zeros:]
    return " ".join(["cero"] * zeros + ([_words(int(rest))] if rest else []))


def _date(day: int, month: int, year: str) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    if len(year) == 2:
        year = ("20" if int(year) < 50 else "19") + year
    return f"{_words(day)} de {MONTHS[month - 1]} de {_words(int(year))}"


def _clock(hour: int, minute: int) -> str:
    """'14:30' -> 'catorce y treinta', '14:00' -> 'catorce horas', '1:05' -> 'una y cinco'."""
    said = _feminine(_words(hour))
    if minute == 0:
        return f"{said} {'hora' if hour == 1 else 'horas'}"
    return f"{said} y {_words(minute)}"


def _money(symbol: str, amount: str, scale: str | None, *, american: bool = False) -> str:
    major, minor, feminine = _CURRENCIES[_CURRENCY_CODES.get(symbol, symbol)]
    if american:
        major = (major[0] + " estadounidense", major[1] + " estadounidenses")
    count = (lambda words: _feminine(words)) if feminine else _apocope
    if scale:  # 2,5 millones de euros
        return f"{cardinal(amount)} {scale} de {major[1]}"
    whole_digits, cents_digits, _ = _split(amount)
    if len(whole_digits) > _MAX_DIGITS_AS_NUMBER or len(cents_digits) > 2:
        return f"{cardinal(amount)} {major[1]}"
    whole = int(whole_digits)
    cents = int(cents_digits.ljust(2, "0")) if cents_digits else 0
    parts = []
    if whole or not cents:
        unit = major[0] if whole == 1 else major[1]
        # "un millón de euros": a round million takes "de" before the noun.
        of = " de" if whole >= 1_000_000 and whole % 1_000_000 == 0 else ""
        parts.append(f"{count(_words(whole))}{of} {unit}")
    if cents:
        parts.append(f"{_apocope(_words(cents))} {minor[0] if cents == 1 else minor[1]}")
    return " con ".join(parts)


def _apocope(words: str) -> str:
    """'uno' before a noun is 'un' ('veintiuno' -> 'veintiún')."""
    if words.endswith("veintiuno"):
        return words[: -len("veintiuno")] + "veintiún"
    if words == "uno" or words.endswith(" uno"):
        return words[:-1]
    return words


def _feminine(words: str) -> str:
    """'uno' -> 'una', 'doscientos' -> 'doscientas': hours and feminine currencies (libras)."""
    words = re.sub(r"(?<![a-z])(veinti)?uno$", lambda m: (m.group(1) or "") + "una", words)
    return re.sub(r"ientos\b", "ientas", words)


def _digits_one_by_one(m: re.Match[str]) -> list[Edit]:
    """A serial number is read digit by digit; each word keeps its own digit as origin."""
    edits: list[Edit] = []
    for i in range(m.start(), m.end()):
        if i > m.start():
            edits.append((i, i, " "))
        edits.append((i, i + 1, _words(int(m.string[i]))))
    return edits


def _words(value: int, **kwargs: Any) -> str:
    return num2words(value, lang="es", **kwargs)


def _digit_by_digit(digits: str) -> str:
    return " ".join(_words(int(d)) for d in digits)
