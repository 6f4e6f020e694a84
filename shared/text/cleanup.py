"""Language-independent character clean-up: line endings, NFC, invisible characters, quotes, dashes.

After ``clean_characters`` the only whitespace left is ``" "`` and ``"\\n"`` (``"\\n\\n"`` where the
source had an explicit paragraph separator), quotes are straight, dashes used as punctuation are a
spaced em dash and ellipses are three dots. Line and paragraph rules come next, in ``layout``.
"""

from __future__ import annotations

import re
import unicodedata

from shared.text.offsets import Edit, MappedText

# Kept although they are format characters: they change how Persian, Indic scripts and emoji read.
_KEEP_FORMAT = {"\u200c", "\u200d"}
_DROP_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}
_PARAGRAPH_BREAK_CHARS = {"\f", "\u2029", "\x1c", "\x1d", "\x1e"}

_LINE_ENDINGS = re.compile("\r\n|[\r\v\x85\u2028]|[\f\u2029\x1c\x1d\x1e]")

# One-to-one substitutions: typographic quotes, hyphens and every kind of space.
_CHAR_TABLE = {
    **dict.fromkeys(map(ord, "‘’‚‛′‹›`"), "'"),
    **dict.fromkeys(map(ord, "“”„‟″«»"), '"'),
    **dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2212"), "-"),
    **dict.fromkeys(map(ord, "\u2015"), "—"),
    ord("\t"): " ",
    **{cp: " " for cp in (0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)},
}

# A dash used as punctuation: an em dash, a double hyphen, or an en dash / hyphen with space around it.
_DASH = re.compile(r"([ \t]*)(—+|-{2,}|(?<=[ \t])[–-](?=\s))([ \t]*)")
# A CJK full stop is not followed by a space; one is added so that sentences are cut at spaces only.
_CJK_STOP = re.compile(r"(?<=[。！？])(?=[^\s。！？」』）”\"'])")
_ELLIPSIS = re.compile(r"…|\.(?: \.){2,}")
_NON_WHITESPACE = re.compile(r"\S+")


def clean_characters(mapped: MappedText) -> MappedText:
    mapped = mapped.sub(_LINE_ENDINGS, _line_ending)
    mapped = _nfc(mapped)
    mapped = _drop_invisible(mapped)
    mapped = mapped.translate(_CHAR_TABLE)
    mapped = mapped.sub(_ELLIPSIS, lambda m: "...")
    mapped = mapped.sub(_CJK_STOP, lambda m: " ")
    return mapped.sub_edits(_DASH, _spaced_dash)


def _spaced_dash(m: re.Match[str]) -> list[Edit]:
    """' — ' with each space mapped on its own, so that a chunk can end or start at the dash."""
    return [(m.start(1), m.end(1), " "), (m.start(2), m.end(2), "—"), (m.start(3), m.end(3), " ")]


def _line_ending(match: re.Match[str]) -> str:
    return "\n\n" if match.group() in _PARAGRAPH_BREAK_CHARS else "\n"


def _nfc(mapped: MappedText) -> MappedText:
    """NFC word by word: nothing composes across whitespace, so the result equals NFC of the whole."""
    if unicodedata.is_normalized("NFC", mapped.text):
        return mapped

    def compose(match: re.Match[str]) -> str | None:
        word = match.group()
        return None if unicodedata.is_normalized("NFC", word) else unicodedata.normalize("NFC", word)

    return mapped.sub(_NON_WHITESPACE, compose)


def _drop_invisible(mapped: MappedText) -> MappedText:
    """Drop control, format (soft hyphen, zero-width space), surrogate, private and unassigned chars."""
    doomed = {
        ch
        for ch in set(mapped.text)
        if ch != "\n" and ch not in _KEEP_FORMAT and ch != "\t" and unicodedata.category(ch) in _DROP_CATEGORIES
    }
    if not doomed:
        return mapped
    pattern = re.compile("[" + "".join(re.escape(ch) for ch in sorted(doomed)) + "]+")
    return mapped.sub(pattern, lambda m: "")
