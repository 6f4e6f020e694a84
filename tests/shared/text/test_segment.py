"""Sentence segmentation: where sentences end, and that no text is lost on the way."""

from __future__ import annotations

import pytest

from shared.text.normalize import normalize
from shared.text.segment import split_sentences


def sentences(paragraph: str, language: str = "en") -> list[str]:
    spans = split_sentences(paragraph, language)
    # Sentences cover the paragraph exactly, cut at single spaces.
    assert " ".join(paragraph[a:b] for a, b in spans) == paragraph
    return [paragraph[a:b] for a, b in spans]


@pytest.mark.parametrize(
    ("paragraph", "expected"),
    [
        ('"Hello," she said. "Goodbye."', ['"Hello," she said.', '"Goodbye."']),
        ('"Why?" she asked. He left.', ['"Why?" she asked.', "He left."]),
        ('"Oh! Single, my dear. What a fine thing!"', ['"Oh!', "Single, my dear.", 'What a fine thing!"']),
        ("Wait... what? No!! Yes?!", ["Wait... what?", "No!!", "Yes?!"]),
        ("He paused... Then he spoke.", ["He paused...", "Then he spoke."]),
        (
            "J. R. R. Tolkien wrote it. He was a professor.",
            ["J. R. R. Tolkien wrote it.", "He was a professor."],
        ),
        (
            "He left (he said so.) and then came back. Fine.",
            ["He left (he said so.) and then came back.", "Fine."],
        ),
        ("The U.S. economy grew. It was 3.5 percent.", ["The U.S. economy grew.", "It was 3.5 percent."]),
        ("It rose 3.5 million. Then fell.", ["It rose 3.5 million.", "Then fell."]),
        ("Mr. Smith arrived. Dr. Jones left.", ["Mr. Smith arrived.", "Dr. Jones left."]),
        ("No full stop here", ["No full stop here"]),
        ("Привет. Как дела?", ["Привет.", "Как дела?"]),
    ],
)
def test_sentences(paragraph: str, expected: list[str]) -> None:
    assert sentences(paragraph) == expected


def test_normalised_text_segments_on_sentences_not_abbreviations() -> None:
    paragraph = normalize("Mr. Smith paid $3.50 at 5 p.m. on St. Patrick's Day. Then he left.").text
    assert sentences(paragraph) == [
        "Mister Smith paid three dollars and fifty cents at five PM on Saint Patrick's Day.",
        "Then he left.",
    ]


def test_stray_punctuation_is_not_a_sentence() -> None:
    assert sentences("It ended. ... ! Then more.") == ["It ended. ... !", "Then more."]


def test_cjk_full_stops_after_normalisation() -> None:
    assert sentences(normalize("我爱你。你好。").text) == ["我爱你。", "你好。"]


def test_empty() -> None:
    assert split_sentences("") == []
