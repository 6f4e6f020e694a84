"""Chunking examples: budgets, boundaries, offsets and streams on texts a user would send."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from shared.text.chunking import Boundary, Chunk, chunk_text, join_chunks, split_streams
from shared.text.normalize import normalize
from shared.text.segment import split_sentences
from tests.shared.text.invariants import check_chunks

DATA = Path(__file__).parent / "data"
CHAPTER = (DATA / "pride-and-prejudice-ch1.txt").read_text(encoding="utf-8")


def test_short_text_is_one_chunk() -> None:
    text = "Mr. Bennet made no answer."
    [chunk] = chunk_text(text)
    assert chunk == Chunk(
        index=0,
        text="Mister Bennet made no answer.",
        paragraph=0,
        sentences=(0,),
        start=0,
        end=len(text),
        boundary=Boundary.END,
        est_seconds=len("Mister Bennet made no answer.") / 14.0,
        last_sentence="Mister Bennet made no answer.",
    )


def test_whole_sentences_are_packed_under_the_budget() -> None:
    text = "One two three four. Five six seven eight. Nine ten eleven twelve. Thirteen."
    chunks = chunk_text(text, budget_seconds=3.0, chars_per_second=14.0)  # 42 characters
    assert [c.text for c in chunks] == [
        "One two three four. Five six seven eight.",
        "Nine ten eleven twelve. Thirteen.",
    ]
    assert [c.boundary for c in chunks] == [Boundary.SENTENCE, Boundary.END]
    assert [c.sentences for c in chunks] == [(0, 1), (2, 3)]
    assert [c.last_sentence for c in chunks] == ["Five six seven eight.", "Thirteen."]
    assert text[chunks[1].start : chunks[1].end] == "Nine ten eleven twelve. Thirteen."
    check_chunks(text, chunks, budget_seconds=3.0)


def test_long_sentence_is_cut_at_clauses_then_words() -> None:
    text = (
        "Because the rain had fallen all night, the river rose over its banks; "
        "the bridge, which was old and narrow and very badly repaired, gave way at dawn."
    )
    chunks = chunk_text(text, budget_seconds=4.0)  # 56 characters
    assert [c.text for c in chunks] == [
        "Because the rain had fallen all night,",
        "the river rose over its banks; the bridge,",
        "which was old and narrow and very badly repaired,",
        "gave way at dawn.",
    ]
    assert [c.boundary for c in chunks] == [Boundary.CLAUSE] * 3 + [Boundary.END]
    assert all(c.sentences == (0,) for c in chunks)
    assert chunks[1].last_sentence == "the river rose over its banks; the bridge,"

    words = "word " * 40 + "end."
    chunks = chunk_text(words, budget_seconds=2.0)  # 28 characters, no clause punctuation
    assert all(len(c.text) <= 28 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == words.split()
    check_chunks(words, chunks, budget_seconds=2.0)


def test_a_word_longer_than_the_budget_stands_alone() -> None:
    text = "Say supercalifragilisticexpialidocious now."
    chunks = chunk_text(text, budget_seconds=1.0)  # 14 characters
    assert [c.text for c in chunks] == ["Say", "supercalifragilisticexpialidocious", "now."]
    check_chunks(text, chunks, budget_seconds=1.0)


def test_an_expansion_is_never_torn_apart() -> None:
    text = "He paid $1,234.56 today."
    chunks = chunk_text(text, budget_seconds=1.0)
    assert "one thousand two hundred and thirty-four dollars and fifty-six cents" in [c.text for c in chunks]
    spoken = next(c for c in chunks if c.text.startswith("one thousand"))
    assert text[spoken.start : spoken.end] == "$1,234.56"
    check_chunks(text, chunks, budget_seconds=1.0)


def test_chunks_never_cross_paragraphs() -> None:
    text = "Chapter 1\nShort one.\n\nAnother short one.\nStill the same paragraph."
    chunks = chunk_text(text)
    assert [(c.text, c.paragraph, c.boundary) for c in chunks] == [
        ("Chapter one", 0, Boundary.PARAGRAPH),
        ("Short one.", 1, Boundary.PARAGRAPH),
        ("Another short one. Still the same paragraph.", 2, Boundary.END),
    ]
    assert join_chunks(chunks) == "Chapter one\n\nShort one.\n\nAnother short one. Still the same paragraph."


def test_dialogue_decimals_and_initials_do_not_cut_sentences() -> None:
    text = (
        '"Hello," she said. "Goodbye." It rose 3.5 million at 5 p.m. today. '
        "J. R. R. Tolkien (the author) wrote it... Then he slept."
    )
    paragraph = normalize(text).text
    assert [paragraph[a:b] for a, b in split_sentences(paragraph)] == [
        '"Hello," she said.',
        '"Goodbye."',
        "It rose three point five million at five PM today.",
        "J. R. R. Tolkien (the author) wrote it...",
        "Then he slept.",
    ]
    [chunk] = chunk_text(text)
    assert chunk.sentences == (0, 1, 2, 3, 4)
    assert chunk.last_sentence == "Then he slept."
    chunks = chunk_text(text, budget_seconds=3.8)  # 53 characters
    assert [c.boundary for c in chunks] == [Boundary.SENTENCE] * 3 + [Boundary.END]
    assert [c.last_sentence for c in chunks] == [
        '"Goodbye."',
        "It rose three point five million at five PM today.",
        "J. R. R. Tolkien (the author) wrote it...",
        "Then he slept.",
    ]


def test_sentence_indices_are_global_across_paragraphs() -> None:
    chunks = chunk_text("A one. A two.\n\nB one. B two.", budget_seconds=0.5)
    assert [(c.text, c.paragraph, c.sentences) for c in chunks] == [
        ("A one.", 0, (0,)),
        ("A two.", 0, (1,)),
        ("B one.", 1, (2,)),
        ("B two.", 1, (3,)),
    ]


def test_pride_and_prejudice_chapter() -> None:
    chunks = chunk_text(CHAPTER, budget_seconds=10.0)
    check_chunks(CHAPTER, chunks, budget_seconds=10.0)
    assert chunks[0].text == "Chapter one"
    assert all(c.est_seconds <= 10.0 for c in chunks)
    assert all("Mr." not in c.text and "Mrs." not in c.text for c in chunks)
    assert max(c.paragraph for c in chunks) == CHAPTER.strip().count("\n\n")


@pytest.mark.parametrize("budget", [0.0, -1.0, float("nan"), float("inf")])
def test_rejects_a_meaningless_budget(budget: float) -> None:
    with pytest.raises(ValueError):
        chunk_text("Hello.", budget_seconds=budget)
    with pytest.raises(ValueError):
        chunk_text("Hello.", chars_per_second=budget)


def test_checker_notices_lost_repeated_or_misplaced_text() -> None:
    text = "First sentence here. Second one here.\n\nThird paragraph."
    chunks = chunk_text(text, budget_seconds=1.5)
    check_chunks(text, chunks, budget_seconds=1.5)
    broken = [
        chunks[1:],
        [*chunks, chunks[-1]],
        [dataclasses.replace(chunks[0], start=chunks[0].start + 1), *chunks[1:]],
        [dataclasses.replace(chunks[0], boundary=Boundary.PARAGRAPH), *chunks[1:]],
    ]
    for chunks_ in broken:
        with pytest.raises(AssertionError):
            check_chunks(text, chunks_, budget_seconds=1.5)


def _chunks_with_paragraph_seconds(seconds: list[float]) -> list[Chunk]:
    return [Chunk(i, "x", i, (i,), i, i + 1, Boundary.PARAGRAPH, s, "x") for i, s in enumerate(seconds)]


def test_streams_balance_the_longest_stream() -> None:
    chunks = _chunks_with_paragraph_seconds([5, 5, 5, 5, 10, 10])
    parts = split_streams(chunks, 3)
    assert [[c.est_seconds for c in part] for part in parts] == [[5, 5, 5], [5, 10], [10]]

    parts = split_streams(_chunks_with_paragraph_seconds([10, 1, 1]), 3)
    assert [len(part) for part in parts] == [1, 1, 1]  # one stream per paragraph when there is room


def test_streams_only_cut_between_paragraphs() -> None:
    text = "\n\n".join(f"Paragraph {n} has a few words. And a second sentence." for n in range(7))
    chunks = chunk_text(text, budget_seconds=2.0)
    parts = split_streams(chunks, 3)
    assert len(parts) == 3
    assert [c for part in parts for c in part] == chunks
    for part in parts:
        assert part[-1].boundary in (Boundary.PARAGRAPH, Boundary.END)
    loads = [sum(c.est_seconds for c in part) for part in parts]
    assert max(loads) - min(loads) <= max(sum(c.est_seconds for c in chunks if c.paragraph == p) for p in range(7))


def test_streams_edge_cases() -> None:
    chunks = chunk_text("One.\n\nTwo.")
    assert split_streams([], 4) == []
    assert split_streams(chunks, 1) == [chunks]
    assert split_streams(chunks, 10) == [[chunks[0]], [chunks[1]]]
    with pytest.raises(ValueError):
        split_streams(chunks, 0)


def test_an_inline_pause_ends_its_chunk_carries_its_length_and_is_not_spoken():
    text = "He waited. [pause 2s] Then he spoke. And more.\n\nNew para [pause 500ms] [PAUSE 1.5 s]\n\nEnd here."
    chunks = chunk_text(text, budget_seconds=30.0, chars_per_second=14.0)
    assert [(c.text, c.boundary, c.pause_ms) for c in chunks] == [
        ("He waited.", Boundary.SENTENCE, 2000),
        ("Then he spoke. And more.", Boundary.PARAGRAPH, None),
        ("New para", Boundary.PARAGRAPH, 2000),
        ("End here.", Boundary.END, None),
    ]
    assert all("pause" not in c.text.lower() for c in chunks)
    assert [text[c.start : c.end] for c in chunks] == [
        "He waited.",
        "Then he spoke. And more.",
        "New para",
        "End here.",
    ]
    assert [c.paragraph for c in chunks] == [0, 0, 1, 2]
    assert [c.index for c in chunks] == [0, 1, 2, 3]


def test_a_short_first_chunk_holds_the_first_sentence_and_the_rest_are_packed_as_usual():
    text = "The storm passed before dawn. Morning light filled the valley, and birds sang in the old oak. " * 8
    full = chunk_text(text, budget_seconds=10.0, chars_per_second=14.0)
    short = chunk_text(text, budget_seconds=10.0, chars_per_second=14.0, first_chunk_chars=60)
    assert len(full[0].text) > 100 and short[0].text == "The storm passed before dawn."
    assert short[0].boundary is Boundary.SENTENCE
    assert all(len(chunk.text) > 90 for chunk in short[1:-1])  # two sentences again, as the 140-character budget packs
    assert join_chunks(short) == join_chunks(full)  # nothing lost or repeated
    check_chunks(text, short, budget_seconds=10.0, chars_per_second=14.0)


def test_a_long_first_sentence_is_cut_at_a_clause_to_start_short():
    text = "Morning light filled the wide green valley, and the birds sang in the old oak for hours, until noon."
    chunks = chunk_text(text + " Then it rained. [pause 1s] It stopped.", first_chunk_chars=60)
    assert chunks[0].text == "Morning light filled the wide green valley,"
    assert chunks[0].boundary is Boundary.CLAUSE and len(chunks[0].text) <= 60
    assert chunks[1].text.startswith("and the birds") and chunks[1].text.endswith("Then it rained.")
    assert chunks[2].text == "It stopped."  # after a pause marker: a normal chunk
