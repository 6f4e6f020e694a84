"""Nasty inputs: no crash, no lost text, whatever users paste in."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.text.chunking import Boundary, chunk_text, split_streams
from tests.shared.text.invariants import check_chunks

DATA = Path(__file__).parent / "data"
CHAPTER = (DATA / "pride-and-prejudice-ch1.txt").read_text(encoding="utf-8")

_LONG_CLAUSES = ", ".join(f"and then the {n}th wave rolled in over the grey stones" for n in range(200))

CORPUS = {
    "only punctuation": "?!... ,,, ;;; --- ... !!! ??? ''' \"\"\" ()",
    "only numbers": "1 2 3 4.5 6,000,000 7th 8% $9 10:30 1999 0.000001 99999999999999999999 -3",
    "numbers glued together": "1.2.3.4 1,2,3 12:34:56 $1,2 5%% 3.5.7 2024-03-14 +44 (0)20 7946 0958",
    "no full stop, 10,000 characters": ("the quick brown fox jumps over the lazy dog " * 240)[:10_000],
    "no full stop, clauses only": _LONG_CLAUSES,
    "no space, 10,000 characters": "x" * 10_000,
    "emoji": "I love it 😀😀 — really 👍🏽! 👨‍👩‍👧 is a family. 🇬🇧 flag. 😀",
    "only emoji": "😀 👍🏽 👨‍👩‍👧",
    "mixed scripts": (
        "Hello, world. Привет, мир! Как дела? 你好，世界。今天天气很好。 مرحبا بالعالم. "
        "こんにちは。 안녕하세요. Γειά σου κόσμε. שלום עולם. नमस्ते दुनिया।"
    ),
    "long CJK without spaces": "我爱你" * 800 + "。" + "你好" * 10,
    "right to left marks and bidi": "\u202bمرحبا\u202c \u200fworld\u200e. \u2066isolated\u2069.",
    "control characters": "a\x00b\x01c\x02\x1b[31mred\x1b[0m\x7f\x08 d\u200b\ufeff.",
    "lone surrogate": "broken \ud800 text. Fine.",
    "combining marks": "e\u0301e\u0301 Zalgo: Z\u0351\u0352a\u0353\u0354l\u0355g\u0356o\u0357. \u0301alone",
    "crlf and form feeds": "Line one\r\nline two\r\n\r\nPara two\fPage two\x0bvertical\x85next.",
    "only whitespace": " \t\n\r\n\u00a0\u2028\u2029\u3000 ",
    "empty": "",
    "markdown": "# Title\n\n## Sub\n\n- item one\n- item two\n\n**bold** and _it_ and `code` [link](http://x.y/z?q=1&r=2).",
    "urls and emails": "Visit https://example.com/a.b/c?d=1.5&e=2. Mail me at a.b@c.d.com. Done.",
    "abbreviation soup": "Mr. Dr. St. Mrs. Ms. Prof. etc. e.g. i.e. vs. No. Jr. Sr. Mt. U.S.A. p.m. Ph.D.",
    "ellipsis storm": ". . . ... …… ....... Wait..... what?!?! Yes... no... maybe…",
    "nested quotes and brackets": '"He said \'she said "no (really [truly {yes}])"\' loudly." (Fine.) [End.]',
    "headings everywhere": "CHAPTER I\nTHE BEGINNING\nIt was.\n\nChapter 2\n\n\nII.\nIt was again.\n1.\nEnd.",
    "dashes": "a—b — c -- d --- e – f - g ‒ h ― i − j",
    "tabs and spaces": "\t\tIndented\t\ttext   with    gaps .   And  more  .",
}


@pytest.mark.parametrize("name", list(CORPUS))
@pytest.mark.parametrize("budget", [25.0, 2.0, 0.3])
def test_nasty_input_loses_nothing(name: str, budget: float) -> None:
    text = CORPUS[name]
    chunks = chunk_text(text, budget_seconds=budget)
    check_chunks(text, chunks, budget_seconds=budget)
    split_streams(chunks, 4)


@pytest.mark.parametrize("name", ["only punctuation", "only emoji", "only whitespace", "empty"])
def test_nothing_speakable_gives_no_chunks(name: str) -> None:
    assert chunk_text(CORPUS[name]) == []


def test_long_text_without_a_full_stop_is_split_within_budget() -> None:
    text = CORPUS["no full stop, 10,000 characters"]
    chunks = chunk_text(text)
    assert len(chunks) > 1
    assert all(c.est_seconds <= 25.0 for c in chunks)
    assert all(c.boundary is Boundary.CLAUSE for c in chunks[:-1])

    clauses = chunk_text(CORPUS["no full stop, clauses only"])
    assert all(c.text.endswith(",") for c in clauses[:-1])  # cut at commas, not between words


def test_a_single_giant_word_is_one_chunk() -> None:
    [chunk] = chunk_text(CORPUS["no space, 10,000 characters"])
    assert chunk.text == "x" * 10_000
    assert (chunk.start, chunk.end) == (0, 10_000)


def test_mixed_scripts_keep_their_sentences() -> None:
    chunks = chunk_text(CORPUS["mixed scripts"], budget_seconds=1.5)
    spoken = " ".join(c.text for c in chunks)
    for word in ["Привет", "мир", "你好，世界。", "مرحبا", "こんにちは。", "안녕하세요.", "κόσμε.", "नमस्ते"]:
        assert word in spoken


def test_half_a_million_character_book() -> None:
    copies = 500_000 // len(CHAPTER) + 1
    book = "\n\n".join([CHAPTER] * copies)[:500_000]
    chunks = chunk_text(book)
    normalized = check_chunks(book, chunks)
    assert len(normalized.paragraphs) > 5_000
    assert all(c.est_seconds <= 25.0 for c in chunks)
    parts = split_streams(chunks, 8)
    assert len(parts) == 8
    loads = [sum(c.est_seconds for c in part) for part in parts]
    assert max(loads) - min(loads) < 60.0  # within one long paragraph of each other
