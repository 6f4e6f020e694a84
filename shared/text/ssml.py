"""A subset of SSML 1.1 as an input form, turned into the plain text the pipeline reads.

Supported: ``speak`` (the root; ``xml:lang`` recorded), ``p`` (a paragraph), ``s`` (a sentence: it ends
with a full stop when it has no closing punctuation of its own), ``break`` (``time="1.5s"``/``"800ms"``
or ``strength``: the inline pause marker ``[pause ...]``), ``sub alias="..."`` (the alias is spoken),
``say-as interpret-as="characters|digits|date|telephone"`` (``date`` with ``format`` such as ``mdy``,
``dmy``, ``ymd``, ``md``, ``dm``, ``ym``, ``my``, ``y``), and ``lang xml:lang="..."`` (its span and
language are recorded). Any other element is an error, as is malformed XML; every error names the line
and column (1-based) where it is.

Parsing uses the standard library's expat with no DTD at all (a ``<!DOCTYPE`` is refused), so no entity
can be declared, expanded or fetched: only the five predefined entities and character references.
The plain text is a ``MappedText`` over the SSML string: every spoken character maps to the characters
of the SSML it comes from (an alias and a say-as reading to the whole element), so chunk offsets,
timing and subtitles point into the text the client sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from xml.parsers import expat

import numpy as np

from shared.text.numbers_en import MONTHS, spoken_number, year
from shared.text.offsets import MappedText

Fail = Callable[[str], "SsmlError"]
"""Builds the error for a message at the parser's current position."""


class TextFormat(StrEnum):
    """How an input's `text` is written: plain text (with inline `[pause ...]` markers) or SSML."""

    PLAIN = "plain"
    SSML = "ssml"


class SsmlError(ValueError):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line, self.column, self.message = line, column, message


@dataclass(frozen=True)
class LanguageSpan:
    start: int
    end: int
    """``[start, end)`` in the SSML text: the ``lang`` element (or the whole ``speak``)."""
    language: str


@dataclass(frozen=True, eq=False)
class SsmlDocument:
    mapped: MappedText
    """The plain text to normalise, mapped onto the SSML source."""
    language: str | None
    """``xml:lang`` of ``speak``, when given."""
    languages: tuple[LanguageSpan, ...] = field(default=())
    """Every ``lang`` element, in document order."""

    @property
    def text(self) -> str:
        return self.mapped.text


ELEMENTS = ("speak", "p", "s", "break", "sub", "say-as", "lang")
SAY_AS = ("characters", "digits", "date", "telephone")
BREAK_STRENGTH_MS = {"none": 0, "x-weak": 150, "weak": 300, "medium": 500, "strong": 1000, "x-strong": 2000}
MAX_BREAK_MS = 30_000
_TIME = re.compile(r"\s*(\d{1,5}(?:\.\d{1,3})?)\s*(ms|s)\s*\Z")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*\s*\Z")
_DATE_FORMATS = ("mdy", "dmy", "ymd", "md", "dm", "ym", "my", "y", "m", "d")


class _Builder:
    """Spoken text and, per character, its source span in the SSML text."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.lo: list[int] = []
        self.hi: list[int] = []

    def copy(self, text: str, start: int) -> None:
        """``text`` whose characters are the SSML characters from ``start`` on, one to one."""
        self.parts.append(text)
        self.lo.extend(range(start, start + len(text)))
        self.hi.extend(range(start + 1, start + len(text) + 1))

    def replace(self, text: str, start: int, end: int) -> None:
        """``text`` standing for the SSML span ``[start, end)`` as a whole."""
        self.parts.append(text)
        self.lo.extend([start] * len(text))
        self.hi.extend([end] * len(text))

    def insert(self, text: str, at: int) -> None:
        self.replace(text, at, at)

    def tail(self, n: int) -> str:
        return "".join(self.parts)[-n:]

    def mapped(self) -> MappedText:
        return MappedText("".join(self.parts), np.asarray(self.lo, np.int64), np.asarray(self.hi, np.int64))


@dataclass
class _Open:
    name: str
    start: int
    attrs: dict[str, str]
    where: tuple[int, int]
    """Line and column of the start tag, for errors found at its end."""
    text: list[tuple[str, int, int]] = field(default_factory=list)
    """Text inside a ``say-as`` or ``sub``: (data, source start, source end)."""


def parse_ssml(source: str) -> SsmlDocument:
    """The plain text of an SSML document, or ``SsmlError`` naming the line and column of the problem."""
    if not source.lstrip().startswith("<"):
        raise SsmlError(1, 1, "SSML must start with a <speak> element")
    raw = source.encode("utf-8")
    # Byte offsets (what expat reports) to character offsets of `source`.
    char_at = np.zeros(len(raw) + 1, np.int64)
    widths = np.frombuffer(raw, np.uint8)
    starts = (widths & 0xC0) != 0x80  # bytes that start a character
    char_at[:-1] = np.cumsum(starts) - 1
    char_at[-1] = len(source)

    parser = expat.ParserCreate("utf-8")
    parser.buffer_text = False
    parser.ordered_attributes = False
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    out = _Builder()
    stack: list[_Open] = []
    languages: list[LanguageSpan] = []
    doc_language: list[str] = []

    def position() -> tuple[int, int]:
        return parser.CurrentLineNumber, parser.CurrentColumnNumber + 1

    def fail(message: str) -> SsmlError:
        return SsmlError(*position(), message)

    def here() -> int:
        return int(char_at[parser.CurrentByteIndex])

    def element_end() -> int:
        """Character offset just past the end tag being reported (or the empty-element tag)."""
        index = parser.CurrentByteIndex
        close = raw.find(b">", index)
        return int(char_at[close + 1]) if close >= 0 else len(source)

    def doctype(*_: object) -> None:
        before = source[: max(0, source.rfind("<!DOCTYPE", 0, here() + 1))]
        line = before.count("\n") + 1
        raise SsmlError(line, len(before) - (before.rfind("\n") + 1) + 1, "a DOCTYPE is not allowed in SSML input")

    def start(name: str, attrs: dict[str, str]) -> None:
        if name not in ELEMENTS:
            raise fail(f"element <{name}> is not supported (use {', '.join(ELEMENTS)})")
        if not stack and name != "speak":
            raise fail(f"the root element must be <speak>, not <{name}>")
        if stack and name == "speak":
            raise fail("<speak> may only be the root element")
        if stack and stack[-1].name in ("sub", "say-as"):
            raise fail(f"<{stack[-1].name}> may hold only text, not <{name}>")
        at = here()
        if name == "speak":
            if "xml:lang" in attrs:
                doc_language.append(_language(attrs["xml:lang"], fail))
        elif name == "p":
            out.insert("\n\n", at)
        elif name == "s":
            out.insert(" ", at)
        elif name == "break":
            out.insert(_pause_marker(attrs, fail), at)
        elif name == "sub":
            if not attrs.get("alias", "").strip():
                raise fail('<sub> needs a non-empty alias="..." attribute')
        elif name == "say-as":
            kind = attrs.get("interpret-as", "")
            if kind not in SAY_AS:
                raise fail(f'<say-as> interpret-as="{kind}" is not supported (use {", ".join(SAY_AS)})')
            if kind == "date" and attrs.get("format", "ymd") not in _DATE_FORMATS:
                raise fail(f'<say-as> date format="{attrs["format"]}" is not one of {", ".join(_DATE_FORMATS)}')
        elif name == "lang":
            _language(attrs.get("xml:lang", ""), fail)
        stack.append(_Open(name, at, dict(attrs), position()))

    def end(name: str) -> None:
        element = stack.pop()
        at, stop = here(), element_end()  # where the end tag starts, and just past it
        if name == "p":
            out.insert("\n\n", at)
        elif name == "s":
            if not _SENTENCE_END.search(out.tail(8)):
                out.insert(".", at)
            out.insert(" ", at)
        elif name == "sub":
            out.replace(" " + element.attrs["alias"].strip() + " ", element.start, stop)
        elif name == "say-as":
            _say_as(element, stop, out, lambda message: SsmlError(*element.where, message))
        elif name == "lang":
            languages.append(LanguageSpan(element.start, stop, element.attrs["xml:lang"].strip()))

    def text(data: str) -> None:
        if not stack:
            return
        begin = here()
        if stack[-1].name in ("sub", "say-as"):
            stack[-1].text.append((data, begin, begin + len(data)))
            return
        # A character or entity reference ("&amp;") is reported on its own: its text stands for the
        # whole reference. Plain text maps one to one (expat turns "\r\n" into "\n": then as a whole).
        following = raw.find(b"<", parser.CurrentByteIndex)
        stop = int(char_at[following]) if following >= 0 else len(source)
        if source.startswith(data, begin):
            out.copy(data, begin)
        else:
            reference = raw.find(b";", parser.CurrentByteIndex) if raw[parser.CurrentByteIndex] == 0x26 else -1
            stop = int(char_at[reference + 1]) if reference >= 0 else min(stop, begin + max(len(data), 1))
            out.replace(data, begin, stop)

    parser.StartDoctypeDeclHandler = doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(raw, True)
    except SsmlError:
        raise
    except expat.ExpatError as exc:
        message = expat.ErrorString(exc.code) if exc.code is not None else str(exc)
        raise SsmlError(exc.lineno, exc.offset + 1, message) from exc
    return SsmlDocument(out.mapped(), doc_language[0] if doc_language else None, tuple(languages))


def _language(value: str, fail: Fail) -> str:
    tag = value.strip()
    if not re.fullmatch(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*", tag):
        raise fail(f'xml:lang="{value}" is not a BCP-47 language tag')
    return tag


def _pause_marker(attrs: dict[str, str], fail: Fail) -> str:
    if "time" in attrs:
        found = _TIME.match(attrs["time"])
        if not found:
            raise fail(f'<break> time="{attrs["time"]}" is not a duration such as "500ms" or "1.5s"')
        value = float(found.group(1))
        ms = round(value if found.group(2) == "ms" else value * 1000)
    else:
        strength = attrs.get("strength", "medium")
        if strength not in BREAK_STRENGTH_MS:
            raise fail(f'<break> strength="{strength}" is not one of {", ".join(BREAK_STRENGTH_MS)}')
        ms = BREAK_STRENGTH_MS[strength]
    if ms > MAX_BREAK_MS:
        raise fail(f"<break> of {ms} ms is longer than the most, {MAX_BREAK_MS} ms")
    return f" [pause {ms}ms] " if ms > 0 else " "


def _say_as(element: _Open, stop: int, out: _Builder, fail: Fail) -> None:
    """The reading of a ``say-as``: characters and digits one by one (each keeps its own source
    character), a telephone number digit by digit in its groups, a date in words."""
    kind = element.attrs["interpret-as"]
    content = "".join(data for data, _, _ in element.text)
    if not content.strip():
        raise fail("<say-as> is empty")
    if kind == "date":
        out.replace(" " + _date(content.strip(), element.attrs.get("format", "ymd"), fail) + " ", element.start, stop)
        return
    out.insert(" ", element.start)
    spoken = False  # a word is out since the last separator: the next one needs a space first
    for data, begin, _ in element.text:
        for offset, ch in enumerate(data):
            at = begin + offset
            if kind == "characters" and ch.isalnum():
                out.insert(" " if spoken else "", at)
                out.copy(ch, at)
                spoken = True
            elif kind in ("digits", "telephone") and ch.isdigit():
                out.insert(" " if spoken else "", at)
                out.replace(spoken_number(int(ch)), at, at + 1)
                spoken = True
            elif kind == "telephone" and ch == "+" and not spoken:
                out.replace("plus", at, at + 1)
                spoken = True
            elif kind == "telephone" and ch in "-. /()" and spoken and out.tail(1) != ",":
                out.replace(",", at, at + 1)
    out.insert(" ", stop)


def _date(content: str, form: str, fail: Fail) -> str:
    fields = [int(part) for part in re.split(r"[-/.\s]+", content) if part.isdigit()]
    if len(fields) != len(form) or not re.fullmatch(r"[\d\-/.\s]+", content):
        raise fail(f'<say-as> date "{content}" does not match format="{form}"')
    parts = dict(zip(form, fields, strict=True))
    month, day, year_value = parts.get("m"), parts.get("d"), parts.get("y")
    if (month is not None and not 1 <= month <= 12) or (day is not None and not 1 <= day <= 31):
        raise fail(f'<say-as> date "{content}" has no such month or day')
    said_year = year(str(year_value)) if year_value is not None else ""
    if month is None:
        return spoken_number(day, ordinal=True) if day is not None else said_year
    name = MONTHS[month - 1]
    if day is None:
        return f"{name} {said_year}".strip()
    if form.startswith("d"):
        return f"the {spoken_number(day, ordinal=True)} of {name} {said_year}".strip()
    return f"{name} {spoken_number(day, ordinal=True)} {said_year}".strip()
