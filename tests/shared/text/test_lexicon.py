"""Pronunciation lexicons in normalisation: what is spoken changes, and the offset map stays intact."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from shared.text.chunking import chunk_text, join_chunks
from shared.text.lexicon import LexiconEntry, check_unique
from shared.text.normalize import normalize


def entry(match: str, respelling: str, **rules: bool) -> LexiconEntry:
    return LexiconEntry(match=match, respelling=respelling, **rules)


def test_a_word_is_respelled_and_its_respelling_maps_to_the_written_word():
    text = "Ms. Nguyen arrived. Nguyen smiled."
    normalized = normalize(text, lexicon=[entry("Nguyen", "win")])
    assert normalized.text == "Miz Win arrived. Win smiled."
    first = normalized.text.index("Win")
    assert text[slice(*normalized.span_to_original(first, first + 3))] == "Nguyen"


def test_case_is_ignored_unless_the_entry_is_case_sensitive():
    loose = normalize("nguyen NGUYEN Nguyen", lexicon=[entry("Nguyen", "win")]).text
    assert loose == "win Win Win"
    strict = normalize("nguyen NGUYEN Nguyen", lexicon=[entry("Nguyen", "win", case_sensitive=True)]).text
    assert strict == "nguyen NGUYEN Win"


def test_whole_word_by_default_anywhere_when_asked():
    assert normalize("Ann read the Annual report.", lexicon=[entry("Ann", "Anne")]).text == (
        "Anne read the Annual report."
    )
    anywhere = normalize("Gigabytes and megabytes.", lexicon=[entry("bytes", "bites", whole_word=False)]).text
    assert anywhere == "Gigabites and megabites."


def test_a_phrase_matches_across_any_spacing_and_the_longest_entry_wins():
    lexicon = [entry("New York", "noo york"), entry("New York City", "the big apple")]
    text = "From New   York City to New\nYork."
    assert normalize(text, lexicon=lexicon).text == "From The big apple to Noo york."


def test_equally_long_entries_the_first_listed_wins():
    lexicon = [entry("Lee", "lay", case_sensitive=True), entry("lee", "lie")]
    assert normalize("Lee", lexicon=lexicon).text == "Lay"


def test_the_lexicon_runs_before_abbreviations_and_numbers_are_expanded():
    lexicon = [entry("Dr. No", "doctor know"), entry("3M", "three em")]
    text = "Dr. No bought 3M shares for $5."
    assert normalize(text, lexicon=lexicon).text == "Doctor know bought three em shares for five dollars."


def test_chunks_never_cut_inside_a_respelling_and_offsets_stay_monotonic():
    long = "word " * 30
    text = f"{long}Saoirse Ronan. " * 4
    lexicon = [entry("Saoirse Ronan", "seer sha row nan")]
    chunks = chunk_text(text, budget_seconds=3.0, lexicon=lexicon)
    assert join_chunks(chunks) == normalize(text, lexicon=lexicon).text
    assert all("seer sha row nan" in c.text or "seer" not in c.text for c in chunks)
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))


def test_entries_are_one_line_and_a_lexicon_lists_a_word_once():
    with pytest.raises(ValidationError):
        LexiconEntry(match="two\nlines", respelling="x")
    with pytest.raises(ValidationError):
        LexiconEntry(match="x", respelling="[pause 3s]")
    with pytest.raises(ValidationError):
        LexiconEntry(match="x" * 101, respelling="y")
    with pytest.raises(ValueError, match="listed twice"):
        check_unique([entry("Nguyen", "win"), entry("nguyen", "new yen")])
    check_unique([entry("Nguyen", "win", case_sensitive=True), entry("nguyen", "new yen")])


def test_entries_that_start_or_end_with_punctuation_match_too():
    lexicon = [entry(".NET", "dot net", case_sensitive=True), entry("C++", "see plus plus"), entry("U.S.", "you ess")]
    text = "She moved from C++ to .NET in the U.S. office."
    assert normalize(text, lexicon=lexicon).text == "She moved from See plus plus to dot net in the You ess office."
