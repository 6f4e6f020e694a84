"""A book job's files: the whole book as an M4B with titled chapter marks and its cover, plus one tagged
MP3 per chapter, each mastered to ACX with its report; read back with PyAV and mutagen."""

from __future__ import annotations

import io

import av
import mutagen
import numpy as np
import pytest
from mutagen.id3 import ID3
from mutagen.mp3 import BitrateMode
from mutagen.mp4 import MP4

from shared.audio.decode import decode_audio
from shared.jobs import JobCreate
from shared.settings import Settings
from shared.storage import LocalStorage
from tests.client.test_books import make_epub, png_cover
from tests.shared.audio.signals import speechlike
from worker.assembly import Mastering, build_file, outputs_for, upload_file
from worker.phases import Phases
from worker.planning import PlannedChunk, build_plan

pytestmark = pytest.mark.fast

SR = 22050


def load(planned: PlannedChunk) -> np.ndarray:
    return speechlike(2.0, SR, seed=planned.chunk.index, amp=0.5)


def book_job(tmp_path) -> JobCreate:
    from client import books
    from client.api import book_options

    book = books.read_book(make_epub(tmp_path / "book.epub"))
    inputs = books.book_inputs(book)
    for item in inputs:  # short chapters keep the test fast; the titles are the book's
        item["text"] = item["text"][:120]
    body = {
        "inputs": inputs,
        "format": "m4b",
        "mastering": "acx",
        "book": book_options(book, None, "A. Reader", None, "mp3"),
    }
    return JobCreate.model_validate(body)


def test_a_book_job_gives_an_m4b_with_titled_chapters_and_a_tagged_acx_mp3_per_chapter(tmp_path):
    spec = book_job(tmp_path)
    assert (spec.sample_rate, spec.bitrate_kbps) == (44100, 192)  # the ACX preset's delivery
    plan = build_plan(spec, budget_seconds=4.0, chars_per_second=14.0, streams=1, voice_default="fake")
    storage = LocalStorage(str(tmp_path / "store"))
    mastering = Mastering.from_settings(Settings())
    outputs = outputs_for("job_1", spec)
    assert [(o.name, o.per_input) for o in outputs] == [
        ("job_1", False), ("01-Chapter-1", True), ("02-Chapter-2", True), ("03-Chapter-3-The-Ball", True),
    ]  # fmt: skip
    results = {}
    for output in outputs:
        rendered = build_file(
            output, plan, load, sample_rate=SR, file_rate=44100, mastering=mastering,
            input_ids=spec.input_ids(), phases=Phases(),
        )  # fmt: skip
        results[output.name] = (
            rendered,
            upload_file(storage, "r/", output, rendered, spec.format, spec.file_tags(), Phases()),
        )
    whole, stored = results["job_1"]
    data = storage.get_bytes(stored.key)
    assert stored.filename == "job_1.m4b"
    with av.open(io.BytesIO(data)) as container:
        marks = container.chapters()
        assert container.streams.audio[0].rate == 44100
    titles = [mark["metadata"].get("title") for mark in marks]
    assert titles == ["Chapter 1", "Chapter 2", "Chapter 3: The Ball"]
    starts = [float(mark["start"] * mark["time_base"]) for mark in marks]
    assert starts == pytest.approx([start for start, _ in whole.chapters], abs=0.01)
    assert starts[1] > 2.0
    tags = MP4(io.BytesIO(data)).tags
    assert tags is not None
    assert tags["\xa9alb"] == ["Pride and Prejudice"] and tags["\xa9ART"] == ["Jane Austen"]
    assert tags["\xa9wrt"] == ["A. Reader"] and bytes(tags["covr"][0]) == png_cover()
    assert stored.mastering is not None and stored.mastering["preset"] == "acx"
    for number, (name, title) in enumerate(
        [
            ("01-Chapter-1", "Chapter 1"),
            ("02-Chapter-2", "Chapter 2"),
            ("03-Chapter-3-The-Ball", "Chapter 3: The Ball"),
        ],
        start=1,
    ):
        rendered, chapter = results[name]
        mp3 = storage.get_bytes(chapter.key)
        id3 = ID3(io.BytesIO(mp3))
        assert str(id3["TIT2"]) == title and str(id3["TALB"]) == "Pride and Prejudice"
        assert str(id3["TRCK"]) == f"{number}/3" and str(id3["TPE1"]) == "Jane Austen"
        assert id3.getall("APIC")[0].data == png_cover()
        info = mutagen.File(io.BytesIO(mp3)).info
        assert info.bitrate == pytest.approx(192000, rel=1e-3) and info.sample_rate == 44100
        assert info.bitrate_mode == BitrateMode.CBR
        decoded, rate = decode_audio(mp3)
        assert rate == 44100 and len(decoded) / rate == pytest.approx(rendered.duration_seconds, abs=0.06)
        report = chapter.mastering
        assert report is not None and report["passed"], report
        assert 0.5 <= report["head_silence_seconds"] <= 1.0 and 1.0 <= report["tail_silence_seconds"] <= 5.0
