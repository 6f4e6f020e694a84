"""Spanish rules: abbreviations and numbers spelled out the way a Spanish narrator reads them."""

from __future__ import annotations

import re

from shared.text.languages import LanguageRules, register
from shared.text.numbers_es import expand_numbers
from shared.text.offsets import MappedText

# Titles are always followed by a name, so their dot never ends a sentence.
_TITLES = {
    "Sr": "señor",
    "Sra": "señora",
    "Srta": "señorita",
    "Sres": "señores",
    "Dr": "doctor",
    "Dra": "doctora",
    "Dres": "doctores",
    "Dña": "doña",
    "Prof": "profesor",
    "Profa": "profesora",
    "Lic": "licenciado",
    "Lcda": "licenciada",
    "Ing": "ingeniero",
    "Sto": "santo",
    "Sta": "santa",
    "Fr": "fray",
    "Mons": "monseñor",
    "Excmo": "excelentísimo",
    "Excma": "excelentísima",
}
# "D. Quijote": a lone D. before a capitalised name is "don".
_DON = re.compile(r"\bD\.(?= [A-ZÁÉÍÓÚÑ][a-záéíóúñü])")
# Abbreviations that may close a sentence: their dot is kept when a new sentence or the paragraph ends.
_TRAILING = {
    "etc": "etcétera",
    "Ud": "usted",
    "Uds": "ustedes",
    "Vd": "usted",
    "Vds": "ustedes",
    "aprox": "aproximadamente",
    "pág": "página",
    "págs": "páginas",
    "tel": "teléfono",
    "Avda": "avenida",
    "Av": "avenida",
    "Pza": "plaza",
    "admón": "administración",
}
# Written with inner dots and spaces; matched as they stand.
_PHRASES = {
    "EE. UU.": "Estados Unidos",
    "EE.UU.": "Estados Unidos",
    "EE UU": "Estados Unidos",
    "a. C.": "antes de Cristo",
    "d. C.": "después de Cristo",
    "a. m.": "de la mañana",
    "p. m.": "de la tarde",
    "p. ej.": "por ejemplo",
    "n.º": "número",
    "nº": "número",
    "núm.": "número",
    "c/": "calle",
}

_TITLE = re.compile(r"\b(" + "|".join(_TITLES) + r")\.(?= [\"'(«]?[A-ZÁÉÍÓÚÑ])")
_ABBREVIATION = re.compile(r"(?<![\w.])(" + "|".join(_TRAILING) + r")\.")
_PHRASE = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(k) for k in sorted(_PHRASES, key=len, reverse=True)) + r")(?=[\s,;:)]|$|\d)"
)
_NUMBER_RANGE = re.compile(r"(?<=\d)[–](?=\d)")
_SENTENCE_FOLLOWS = re.compile(r"(?: +[\"'(«¿¡]?[A-ZÁÉÍÓÚÑ]| *\n| *$)")


def expand_spanish(mapped: MappedText) -> MappedText:
    mapped = mapped.sub(_NUMBER_RANGE, lambda m: " a ")
    text = mapped.text
    mapped = mapped.sub(_PHRASE, lambda m: _phrase(m, text))
    mapped = mapped.sub(_TITLE, lambda m: _TITLES[m.group(1)])
    mapped = mapped.sub(_DON, lambda m: "don")
    text = mapped.text
    mapped = mapped.sub(_ABBREVIATION, lambda m: _TRAILING[m.group(1)] + _kept_dot(text, m.end()))
    return expand_numbers(mapped)


def _phrase(m: re.Match[str], text: str) -> str:
    said = _PHRASES[m.group(1)]
    # "EE. UU." closing a sentence: its last dot is also the full stop.
    return said + (_kept_dot(text, m.end()) if m.group(1).endswith(".") else "")


def _kept_dot(text: str, position: int) -> str:
    return "." if _SENTENCE_FOLLOWS.match(text, position) else ""


register(LanguageRules("es", expand=expand_spanish, segmenter_language="es"))
