"""`narrate submit` and `narrate estimate` with books, against the real Flask app (no worker): the chapters
arrive as titled inputs with the book's tags and cover, chosen chapters only; `--sample` sends only about
the first minute; the estimate lists every chapter."""

from __future__ import annotations

import json
from pathlib import Path

from tests.client.test_books import make_epub, png_cover
from tests.client.test_cli_real_api import api_url, narrate  # noqa: F401 - the fixture
from tests.conftest import ServiceEnv


def test_an_epub_is_submitted_as_titled_chapters_with_its_cover(api_url: str, tmp_path: Path, service_env: ServiceEnv):  # noqa: F811
    book = make_epub(tmp_path / "book.epub")
    result = narrate(
        api_url, "submit", str(book), "--format", "m4b", "--mastering", "acx", "--chapter-files", "mp3",
        "--narrator", "A. Reader", "--skip-chapter", "2", "--substitute", r"Mr\.=>Mister", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert [item["id"] for item in job["inputs"]] == ["ch001", "ch002"]
    spec = service_env.services().jobs.spec(job["id"])
    assert spec is not None and spec.input_titles() == ["Chapter 1", "Chapter 3: The Ball"]
    assert "Mister Bennet" in spec.inputs[0].text and spec.sample_rate == 44100
    assert spec.book is not None and spec.book.cover is not None and spec.book.cover.image() == png_cover()
    assert (spec.book.title, spec.book.author, spec.book.narrator) == (
        "Pride and Prejudice",
        "Jane Austen",
        "A. Reader",
    )
    assert "book: 2 chapter(s): Chapter 1, Chapter 3: The Ball" in result.stderr


def test_a_text_with_chapter_headings_is_a_book_and_a_sample_is_its_first_minute(
    api_url: str,  # noqa: F811
    tmp_path: Path,
    service_env: ServiceEnv,
):
    text = tmp_path / "novel.txt"
    body = " ".join(f"Sentence number {n} of the first chapter goes on." for n in range(200))
    text.write_text(f"CHAPTER I\n\n{body}\n\nCHAPTER II\n\nThe second chapter.\n", encoding="utf-8")
    estimate = narrate(api_url, "estimate", str(text), "--json")
    assert estimate.exit_code == 0, estimate.output
    answer = json.loads(estimate.stdout)
    assert [c["title"] for c in answer["chapters"]] == ["CHAPTER I", "CHAPTER II"]
    assert answer["chapters"][0]["audio_seconds"] > answer["chapters"][1]["audio_seconds"]
    plain = narrate(api_url, "estimate", str(text))
    assert "CHAPTER II" in plain.stdout and "of audio" in plain.stdout
    sample = narrate(api_url, "submit", str(text), "--sample", "--json")
    assert sample.exit_code == 0, sample.output
    job = json.loads(sample.stdout)
    assert [item["id"] for item in job["inputs"]] == ["ch001-sample"]
    spec = service_env.services().jobs.spec(job["id"])
    assert spec is not None
    sampled = spec.inputs[0].text
    assert sampled.startswith("CHAPTER I") and sampled.endswith(".")
    assert answer["sample_characters"] <= len(sampled) < answer["sample_characters"] + 80
