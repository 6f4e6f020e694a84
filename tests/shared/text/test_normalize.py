"""Normalisation: what the TTS model is given to read, and where each character came from."""

from __future__ import annotations

import pytest

from shared.text.languages import LanguageRules, register, rules_for
from shared.text.normalize import normalize
from shared.text.offsets import MappedText


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Mr. Smith met Dr. Jones.", "Mister Smith met Doctor Jones."),
        ("Mrs. Long and Mr Darcy", "Missus Long and Mister Darcy"),
        ("On St. Patrick's Day.", "On Saint Patrick's Day."),
        ("She lives on Baker St. Then she moved.", "She lives on Baker Street. Then she moved."),
        (
            "Apples, pears, etc. are fruit, e.g. these.",
            "Apples, pears, et cetera are fruit, for example these.",
        ),
        ("Profits rose 3.5 million.", "Profits rose three point five million."),
        (
            "It cost $1,234.56.",
            "It cost one thousand two hundred and thirty-four dollars and fifty-six cents.",
        ),
        ("A $1 coin, £5 and €0.99.", "A one dollar coin, five pounds and ninety-nine cents."),
        ("Worth $3.5 billion.", "Worth three point five billion dollars."),
        ("Up 12% today.", "Up twelve percent today."),
        ("The 1st and 21st.", "The first and twenty-first."),
        ("It was on 14 March 2024.", "It was on the fourteenth of March twenty twenty-four."),
        ("It was March 14, 2024.", "It was March fourteenth, twenty twenty-four."),
        ("Since 1999, in the 1990s.", "Since nineteen ninety-nine, in the nineteen nineties."),
        ("Meet at 10:30.", "Meet at ten thirty."),
        ("At 9:05 and 14:00.", "At nine oh five and fourteen hundred."),
        ("Meet at 5 p.m. tomorrow.", "Meet at five PM tomorrow."),
        ("Meet at 5 p.m. Bring food.", "Meet at five PM. Bring food."),
        (
            "Pages 10–20, room No. 5, -7 degrees.",
            "Pages ten to twenty, room number five, minus seven degrees.",
        ),
        (
            "Serial 12345678901234567.",
            "Serial one two three four five six seven eight nine zero one two three four five six seven.",
        ),
        (
            "1,000 people and 1999 people.",
            "one thousand people and one thousand nine hundred and ninety-nine people.",
        ),
    ],
)
def test_english_expansions(text: str, spoken: str) -> None:
    assert normalize(text).text == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Chapter IV\n\nIt rained.", "Chapter four\n\nIt rained."),
        ("CHAPTER XII.", "CHAPTER twelve."),
        ("Act I, Scene II.", "Act one, Scene two."),
        ("See Vol. III and vol. 2.", "See Volume three and volume two."),
        ("After World War II.", "After World War two."),
        ("Henry VIII and Louis XIV.", "Henry the eighth and Louis the fourteenth."),
        ("Elizabeth I of England, Charles I.", "Elizabeth the first of England, Charles the first."),
        ("XII.\n\nThe end.", "Twelve.\n\nThe end."),
        ("IV. The Storm\n\nRain.", "Four. The Storm\n\nRain."),
        # Where a numeral would be a guess, it stays a word.
        ("Then John I think left.", "Then John I think left."),
        ("I went home. I was tired.", "I went home. I was tired."),
        ("I. M. Pei drew it.", "I. M. Pei drew it."),
        ("MIX\n\nThe CD and the DVD.", "MIX\n\nThe CD and the DVD."),
        ("The act I regret.", "The act I regret."),
        ("Chapter IIII", "Chapter IIII"),  # not a numeral
    ],
)
def test_roman_numerals_only_where_they_are_numbers(text: str, spoken: str) -> None:
    assert normalize(text).text == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Add 3/4 cup.", "Add three quarters cup."),
        ("Add 1/2 cup and 2/3 of that.", "Add one half cup and two thirds of that."),
        ("It took 2 1/2 hours.", "It took two and a half hours."),
        ("A 5/8 inch bolt, 99/100 agree.", "A five eighths inch bolt, ninety-nine hundredths agree."),
        ("Open 24/7.", "Open twenty-four/seven."),  # not a fraction: read as before
        ("It was 5 km away, 1 km more.", "It was five kilometres away, one kilometre more."),
        ("At -5°C, or 23°F.", "At minus five degrees Celsius, or twenty-three degrees Fahrenheit."),
        (
            "60 mph, 100 km/h, 6 ft, 2.5 kg.",
            "sixty miles per hour, one hundred kilometres per hour, six feet, two point five kilograms.",
        ),
        ("He weighed 180 lbs. Then less.", "He weighed one hundred and eighty pounds. Then less."),
        ("At 5 in the morning, 5 m away.", "At five in the morning, five m away."),  # 'in', 'm': not units
    ],
)
def test_fractions_and_measures(text: str, spoken: str) -> None:
    assert normalize(text).text == spoken


def test_numerals_and_fractions_map_back_to_their_source() -> None:
    original = "Henry VIII ate 2 1/2 pies in Chapter IV."
    normalized = normalize(original)
    for said, written in [("the eighth", "VIII"), ("two and a half", "2 1/2"), ("four", "IV")]:
        start = normalized.text.index(said)
        a, b = normalized.span_to_original(start, start + len(said))
        assert original[a:b] == written


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        # A single line break inside a paragraph is a space; a blank line ends the paragraph.
        ("It was a dark\nand stormy night.\n\nThe end.", "It was a dark and stormy night.\n\nThe end."),
        ("One\r\ntwo\rthree", "One two three"),
        ("A\n \n\n\t\nB", "A\n\nB"),
        # Headings on their own line are paragraphs.
        ("Chapter 1\nIt was a dark night.", "Chapter one\n\nIt was a dark night."),
        ("CHAPTER IV\nIt was a dark night.", "CHAPTER four\n\nIt was a dark night."),
        ("# The Beginning\nIt was a dark night.", "The Beginning\n\nIt was a dark night."),
        ("Part One\nIt was.", "Part One\n\nIt was."),
        ("CHAPTER I\nTHE BEGINNING\nIt was.", "CHAPTER one\n\nTHE BEGINNING\n\nIt was."),
        # List items are paragraphs of their own; a spaced hyphen inside a line is a dash.
        ("Buy:\n- eggs\n- milk\n* tea", "Buy:\n\neggs\n\nmilk\n\ntea"),
        ("Steps:\n1. Mix\n2. Bake", "Steps:\n\none. Mix\n\ntwo. Bake"),
        ("salt - pepper", "salt — pepper"),
        # A wrapped paragraph whose first line is short is not a heading when the next one is lower case.
        ("It was\nlate.", "It was late."),
        ("A well-\nknown fact.", "A well-known fact."),
        # Whitespace, invisible and control characters.
        ("  a\u00a0b\tc   d  ", "a b c d"),
        ("Ctrl\x00\x07chars\u200b here\ufeff", "Ctrlchars here"),
        ("soft\u00adhyphen", "softhyphen"),
        ("para\u2029graph", "para\n\ngraph"),
        # Quotes, dashes, ellipses.
        ("“Quote” and ‘single’ don’t", "\"Quote\" and 'single' don't"),
        ("Wait -- no—yes – ok", "Wait — no — yes — ok"),
        ("Well… . . . so", "Well... ... so"),
        # Paragraphs with nothing to speak are dropped.
        ("One.\n\n* * *\n\nTwo.", "One.\n\nTwo."),
        ("我爱你。你好。", "我爱你。 你好。"),
    ],
)
def test_layout_and_characters(text: str, spoken: str) -> None:
    assert normalize(text).text == spoken


def test_unicode_nfc() -> None:
    normalized = normalize("cafe\u0301 ok")
    assert normalized.text == "caf\u00e9 ok"
    assert normalized.span_to_original(0, 4) == (0, 5)


def test_paragraph_spans() -> None:
    normalized = normalize("Chapter 1\nFirst line\nsecond line.\n\n\n***\n\nLast.")
    assert normalized.paragraph_texts() == ["Chapter one", "First line second line.", "Last."]
    assert [normalized.text[a:b] for a, b in normalized.paragraphs] == normalized.paragraph_texts()


def test_every_character_maps_back_to_its_source() -> None:
    original = "  Mr. Smith paid $5\non 14 March 2024.\n\n“Yes,” he said -- at 5 p.m."
    normalized = normalize(original)
    text = normalized.text

    def source(word: str) -> str:
        start = text.index(word)
        a, b = normalized.span_to_original(start, start + len(word))
        return original[a:b]

    assert source("Mister") == "Mr."
    assert source("Smith") == "Smith"
    assert source("five dollars") == "$5"
    assert source("the fourteenth of March twenty twenty-four") == "14 March 2024"
    assert source('"Yes,"') == "“Yes,”"
    assert source("—") == "--"
    assert source("five PM") == "5 p.m."
    assert normalized.to_original(0) == 2
    assert [normalized.to_original(i) for i in range(len(text))] == sorted(
        normalized.to_original(i) for i in range(len(text))
    )


def test_offset_map_composes_over_passes() -> None:
    import re

    first = MappedText.identity("ab cd").sub(re.compile("b"), lambda m: "BBB")
    second = first.sub(re.compile("BB"), lambda m: "x")
    assert second.text == "axB cd"
    assert second.span_to_original(1, 2) == (1, 2)
    assert second.span_to_original(3, 4) == (2, 3)
    inserted = MappedText.identity("ab").edit([(1, 1, "-")])
    assert inserted.text == "a-b"
    assert inserted.span_to_original(1, 2) == (1, 1)


def test_language_registry_is_pluggable() -> None:
    assert rules_for("en-GB").code == "en"
    assert rules_for("EN_us").code == "en"
    # Languages without rules still get the generic clean-up and pysbd's segmenter where it has one.
    assert rules_for("de").segmenter_language == "de"
    assert rules_for("tlh").segmenter_language == "en"
    assert normalize("Mr.  Müller kam um 5 p.m.", "de").text == "Mr. Müller kam um 5 p.m."

    register(LanguageRules("zz", expand=lambda mapped: mapped.edit([(0, 1, "Z")]), segmenter_language="en"))
    assert normalize("abc", "zz").text == "Zbc"


@pytest.mark.parametrize("text", ["", " ", "\n\n\t", "...", "!?", "* * *", "😀😀", "\x00\x01"])
def test_nothing_to_speak(text: str) -> None:
    normalized = normalize(text)
    assert normalized.paragraphs == ()
    assert normalized.text == ""
