"""Line-break and paragraph rules.

A single line break inside a paragraph is a space (hard-wrapped text), except after a heading line
("Chapter 1", "# Title", an all-caps line...), which becomes a paragraph of its own, and before a list
item ("- item", "2. item"), each item being a paragraph. A blank line ends
a paragraph. The result has paragraphs separated by exactly ``"\\n\\n"``, single spaces inside them,
and no leading or trailing whitespace.
"""

from __future__ import annotations

import re

from shared.text.offsets import MappedText

PARAGRAPH_BREAK = "\n\n"

_WHITESPACE_TO_FIX = re.compile(r"^\s+|\s+$|[ ]*\n\s*| {2,}")
_NUMBER_WORDS = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|first|second|third|last"
_HEADING_KEYWORD = re.compile(
    rf"(?i)(chapter|part|book|section|volume|act|scene|letter|canto|stave)\s+([ivxlcdm]+|\d+|{_NUMBER_WORDS})\b"
    r"|(prologue|epilogue|appendix|preface|introduction|foreword|afterword|contents)\b"
)
_SECTION_NUMBER = re.compile(r"(?i)([ivxlcdm]+|\d+(\.\d+)*)\.?")
_MARKDOWN_HEADING = re.compile(r"(?m)^#{1,6} +(?=\S)")
_BULLET = re.compile(r"[-*•+] +\S|\d{1,3}[.)] +\S")
_BULLET_MARK = re.compile(r"(?m)^[-*•+] +(?=\S)")
_TERMINAL_PUNCTUATION = ".,;:!?\"')]—-"
_MAX_HEADING_WORDS = 10
_MAX_HEADING_CHARS = 80


def apply_layout(mapped: MappedText) -> MappedText:
    text = mapped.text
    after_heading: set[int] = set()  # line starts that follow a heading: "CHAPTER I\nTHE BEGINNING"

    def fix(match: re.Match[str]) -> str | None:
        start, end = match.span()
        if start == 0 or end == len(text):
            return ""
        run = match.group()
        breaks = run.count("\n")
        if breaks >= 2:
            return PARAGRAPH_BREAK
        if breaks == 0:
            return " "
        line_start = text.rfind("\n", 0, start) + 1
        line = text[line_start:start]
        next_end = text.find("\n", end)
        next_line = text[end : len(text) if next_end < 0 else next_end]
        first_of_block = line_start in after_heading or _starts_block(text, line_start)
        if first_of_block and is_heading(line, next_line):
            after_heading.add(end)
            return PARAGRAPH_BREAK
        if _BULLET.match(next_line):
            return PARAGRAPH_BREAK  # each item of a list is read as its own paragraph
        if line.endswith("-") and line[-2:-1].isalpha() and next_line[:1].islower():
            return ""  # a word hyphenated across the line break: "well-\nknown" -> "well-known"
        return " "

    mapped = mapped.sub(_WHITESPACE_TO_FIX, fix)
    mapped = mapped.sub(_BULLET_MARK, lambda m: "")
    return mapped.sub(_MARKDOWN_HEADING, lambda m: "")


def _starts_block(text: str, line_start: int) -> bool:
    """True when the line is the first of its block (text start or after a blank line)."""
    i = line_start - 2
    while i >= 0 and text[i] == " ":
        i -= 1
    return i < 0 or text[i] == "\n"


def is_heading(line: str, next_line: str) -> bool:
    """A short line that introduces what follows rather than starting a wrapped paragraph."""
    line = line.strip()
    words = line.split()
    if not words or len(words) > _MAX_HEADING_WORDS or len(line) > _MAX_HEADING_CHARS:
        return False
    if line.startswith("#"):
        return True
    if _HEADING_KEYWORD.match(line) and len(words) <= 6:
        return True
    if _SECTION_NUMBER.fullmatch(line):
        return True
    cased = [ch for ch in line if ch.isupper() or ch.islower()]
    if len(cased) >= 2 and all(ch.isupper() for ch in cased):
        return True
    next_line = next_line.strip()
    return (
        line[-1] not in _TERMINAL_PUNCTUATION
        and line[0].isupper()
        and next_line[:1].isupper()
        and len(line) < 0.6 * len(next_line)
    )
