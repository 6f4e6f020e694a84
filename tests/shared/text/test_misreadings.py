"""English forms a narrator reads differently from a digit-by-digit reader (issue 13's list)."""

from __future__ import annotations

import pytest

from shared.text.chunking import chunk_text
from shared.text.normalize import normalize
from tests.shared.text.invariants import check_chunks


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("It cost $5M in total.", "It cost five million dollars in total."),
        ("A $2.5bn deal and a £3k fee.", "A two point five billion dollars deal and a three thousand pounds fee."),
        ("He lost -$5 today.", "He lost minus five dollars today."),
        ("It was US$20.", "It was twenty US dollars."),
        ("Only C$5 left.", "Only five Canadian dollars left."),
        ("Call 555-1234 now.", "Call five five five, one two three four now."),
        ("Call (212) 555-1234.", "Call two one two, five five five, one two three four."),
        ("Dial +1 800-555-1234.", "Dial plus one, eight zero zero, five five five, one two three four."),
        ("On 12/25/2023 we met.", "On December twenty-fifth, twenty twenty-three we met."),
        ("On 25/12/2023 we met.", "On December twenty-fifth, twenty twenty-three we met."),
        ("On 25.12.2023 we met.", "On the twenty-fifth of December twenty twenty-three we met."),
        ("He lives on Elm Dr. He is nice.", "He lives on Elm Drive. He is nice."),
        ("Then Dr. Smith came.", "Then Doctor Smith came."),
        ("I saw Dr. Jones.", "I saw Doctor Jones."),
        ("Read pages 10-20 tonight.", "Read pages ten to twenty tonight."),
        ("The war of 1939-1945 ended.", "The war of nineteen thirty-nine to nineteen forty-five ended."),
        ("1984 was a cold year.", "nineteen eighty-four was a cold year."),
        ("It rained. 1984, too, was wet.", "It rained. nineteen eighty-four, too, was wet."),
        ("1500 people came.", "one thousand five hundred people came."),
        ("Version 1.2.3 is out.", "Version one point two point three is out."),
        ("On 2024-03-14 it rained.", "On March fourteenth, twenty twenty-four it rained."),
    ],
)
def test_misreadings_are_read_as_a_narrator_would(written, spoken):
    assert normalize(written).text == spoken


def test_a_street_abbreviation_keeps_its_sentence_end():
    text = "He lives on Elm Dr. He is nice. She lives on Baker St. She is too."
    chunks = chunk_text(text, budget_seconds=2.0, chars_per_second=14.0)
    check_chunks(text, chunks)
    spoken = " ".join(chunk.text for chunk in chunks)
    assert "Elm Drive. He" in spoken and "Baker Street. She" in spoken
    assert sum(len(chunk.sentences) for chunk in chunks) == 4
