"""Property tests: for any text, chunking loses nothing, repeats nothing, respects the budget and
maps back to the original (the rules are in ``invariants.check_chunks``)."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.text.chunking import chunk_text, split_streams
from tests.shared.text.invariants import check_chunks

TOKENS = [
    "the", "cat", "Sat", "on", "a", "mat", "Mr.", "Dr.", "St.", "Mrs.", "etc.", "e.g.", "J.", "R.",
    "Tolkien", "3.5", "$1,234.56", "12%", "1st", "21st", "14", "March", "2024", "10:30", "5", "p.m.",
    "1999", "1990s", "-7", "007", "12345678901234567890", "€3", "£1", "No.", "42nd", "10–20",
    ".", ",", ";", ":", "!", "?", "...", "…", "—", "--", "-", '"', "“", "”", "'", "’", "(", ")",
    "Hello,", '"Goodbye."', "(aside)", "Chapter", "1", "CHAPTER", "I", "# Title", "***",
    "😀", "👨‍👩‍👧", "Привет", "мир.", "你好。", "世界", "مرحبا", "café", "e\u0301",
    "\u200b", "\x00", "\x07", "\t", "\u00a0", "\u00ad", "\r\n", "\n", "\n\n", "\n \n", "\x0c",
    "supercalifragilisticexpialidocious",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "", "\n", "  "]

token_texts = st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from(SEPARATORS)), max_size=120).map(
    lambda pairs: "".join(token + sep for token, sep in pairs)
)
any_texts = st.text(max_size=300)
budgets = st.floats(min_value=0.1, max_value=30.0, allow_nan=False)
rates = st.floats(min_value=2.0, max_value=40.0, allow_nan=False)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(token_texts, budgets, rates)
def test_chunks_of_wordy_text_keep_every_character(text: str, budget: float, rate: float) -> None:
    chunks = chunk_text(text, budget_seconds=budget, chars_per_second=rate)
    check_chunks(text, chunks, budget_seconds=budget, chars_per_second=rate)


@SETTINGS
@given(any_texts, budgets)
def test_chunks_of_arbitrary_unicode_keep_every_character(text: str, budget: float) -> None:
    chunks = chunk_text(text, budget_seconds=budget)
    check_chunks(text, chunks, budget_seconds=budget)


@settings(max_examples=100, deadline=None)
@given(token_texts, st.sampled_from(["en", "de", "ru", "zh", "xx", "en-GB"]))
def test_other_languages_keep_every_character(text: str, language: str) -> None:
    chunks = chunk_text(text, budget_seconds=3.0, language=language)
    check_chunks(text, chunks, budget_seconds=3.0, language=language)


@settings(max_examples=300, deadline=None)
@given(token_texts, budgets, st.integers(min_value=1, max_value=12))
def test_streams_are_contiguous_cut_at_paragraphs(text: str, budget: float, streams: int) -> None:
    chunks = chunk_text(text, budget_seconds=budget)
    parts = split_streams(chunks, streams)
    assert [chunk for part in parts for chunk in part] == chunks
    assert all(parts) and len(parts) <= streams
    paragraphs = len({chunk.paragraph for chunk in chunks})
    assert len(parts) == min(streams, paragraphs)
    for before, after in itertools.pairwise(parts):
        assert before[-1].paragraph != after[0].paragraph
