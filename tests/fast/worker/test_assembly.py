"""`worker.assembly`: chunks to files (pauses, chapters, cues, one resampling) and their upload."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

import mutagen
import numpy as np
import pytest

from shared.audio import encode as encode_module
from shared.audio.decode import decode_audio
from shared.audio.formats import AudioFormat, file_rate
from shared.jobs import JobCreate
from shared.settings import Settings
from shared.storage import LocalStorage
from tests.support.fake_engine import tone
from worker import assembly
from worker.assembly import Mastering, OutputFile, build_file, outputs_for, upload_file
from worker.phases import Phases
from worker.planning import PlannedChunk, build_plan

pytestmark = pytest.mark.fast

SR = 22050
MASTERING = Mastering.from_settings(Settings())
SPEC = JobCreate(
    inputs=[
        {"id": "one", "text": "First sentence here. Second sentence follows it.\n\nA new paragraph starts."},
        {"id": "two", "text": "The second input, one chapter of its own."},
    ],
    format="opus",
)
PLAN = build_plan(SPEC, budget_seconds=2.0, chars_per_second=14.0, streams=1, voice_default="fake")
SECONDS = 1.0  # every chunk's audio in these tests


def load(planned: PlannedChunk) -> np.ndarray:
    return tone(SECONDS, 200.0 + 20 * planned.chunk.index, SR)


def render(output: OutputFile, rate: int = SR) -> assembly.RenderedFile:
    return build_file(
        output, PLAN, load, sample_rate=SR, file_rate=rate, mastering=MASTERING, input_ids=SPEC.input_ids(),
        phases=Phases(),
    )  # fmt: skip


def test_mastering_takes_the_pauses_and_levels_from_settings():
    settings = Settings(
        pause_clause_ms=11, pause_sentence_ms=22, pause_paragraph_ms=33, pause_chapter_ms=44, pause_turn_ms=55
    )
    mastering = Mastering.from_settings(settings)
    assert mastering.pauses == {"clause": 11, "sentence": 22, "paragraph": 33, "end": 33, "chapter": 44, "turn": 55}
    assert (mastering.loudness_target_lufs, mastering.peak_dbfs) == (settings.loudness_target_lufs, settings.peak_dbfs)


def test_outputs_are_one_file_unless_separate_files_were_asked_for():
    assert outputs_for("job_1", SPEC) == [OutputFile("job_1", [0, 1])]
    separate = SPEC.model_copy(update={"concatenate": False})
    assert outputs_for("job_1", separate) == [
        OutputFile("one", [0], per_input=True),
        OutputFile("two", [1], per_input=True),
    ]
    single = JobCreate(inputs=[{"text": "Alone."}], concatenate=False)
    assert outputs_for("job_1", single) == [OutputFile("job_1", [0])]


def test_a_file_holds_every_chunk_with_its_pause_and_a_chapter_per_input():
    rendered = render(outputs_for("job_1", SPEC)[0])
    chunks = PLAN.all()
    assert len(chunks) >= 4 and len(rendered.cues) == len(chunks)
    gaps = []
    for inputs in PLAN.inputs:
        gaps += [MASTERING.pauses[planned.chunk.boundary.value] for planned in inputs[:-1]]
        gaps.append(MASTERING.pauses["chapter"])
    expected = len(chunks) * SECONDS + sum(gaps[:-1]) / 1000
    assert rendered.duration_seconds == pytest.approx(expected, abs=0.01)
    assert [cue.text for cue in rendered.cues] == [planned.chunk.text for planned in chunks]
    assert [title for _, title in rendered.chapters] == ["one", "two"]
    second = len(PLAN.inputs[0])
    # Cues start at the first sound of their sentence (the tones start at a zero crossing: within 1 ms).
    assert rendered.chapters[1][0] == pytest.approx(rendered.cues[second].start, abs=1e-3)
    assert [(span.id, span.start, span.end) for span in rendered.spans] == [
        (
            "one",
            pytest.approx(rendered.cues[0].start, abs=1e-3),
            pytest.approx(rendered.cues[second - 1].end, abs=1e-3),
        ),
        ("two", pytest.approx(rendered.cues[second].start, abs=1e-3), pytest.approx(rendered.cues[-1].end, abs=1e-3)),
    ]


def test_opus_audio_is_resampled_once_per_chapter_straight_to_the_rate_the_file_gets(monkeypatch, tmp_path):
    calls: list[tuple[int, int]] = []

    def counting(resample):
        def wrapper(audio: np.ndarray, source: int, target: int, *args: int) -> Any:
            if source != target:  # the same rate is handed back untouched
                calls.append((source, target))
            return resample(audio, source, target, *args)

        return wrapper

    monkeypatch.setattr(assembly, "resample_padded", counting(assembly.resample_padded))
    monkeypatch.setattr(encode_module, "resample", counting(encode_module.resample))
    rate = file_rate(AudioFormat.OPUS, SPEC.sample_rate or SR)
    rendered = render(outputs_for("job_1", SPEC)[0], rate)
    upload_file(
        LocalStorage(str(tmp_path)), "results/", OutputFile("job_1", [0, 1]), rendered, SPEC.format, {}, Phases()
    )
    # Chapters are mastered one by one at the file's rate: each is resampled once, and never again.
    assert calls == [(SR, 48000)] * len(SPEC.inputs) and rendered.sample_rate == 48000
    decoded, decoded_rate = decode_audio((tmp_path / "results" / "job_1.opus").read_bytes())
    assert decoded_rate == 48000 and len(decoded) / decoded_rate == pytest.approx(rendered.duration_seconds, abs=0.03)


def test_an_uploaded_file_is_described_by_its_result_with_subtitles_beside_it(tmp_path):
    storage = LocalStorage(str(tmp_path))
    rendered = render(outputs_for("job_1", SPEC)[0])
    phases = Phases()
    result = upload_file(
        storage, "results/dev/job_1/", OutputFile("job_1", [0, 1]), rendered, AudioFormat.FLAC, {"title": "T"}, phases
    )
    data = storage.get_bytes("results/dev/job_1/job_1.flac")
    assert (result.key, result.filename, result.format) == ("results/dev/job_1/job_1.flac", "job_1.flac", "flac")
    assert result.bytes == len(data) and result.duration_seconds == round(rendered.duration_seconds, 3)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert set(result.subtitles) == {"srt", "vtt", "timing", "words"}
    timing = json.loads(storage.get_bytes("results/dev/job_1/job_1.json"))
    assert [item["id"] for item in timing["inputs"]] == ["one", "two"]
    assert len(timing["cues"]) == len(rendered.cues)
    assert storage.get_bytes("results/dev/job_1/job_1.srt").decode().count("-->") == len(rendered.cues)
    assert mutagen.File(io.BytesIO(data))["title"] == ["T"]
    assert set(phases.seconds) == {"encoding", "upload"}


def test_the_manifest_lists_each_separate_file_with_its_checksum_voice_language_and_text_digest(tmp_path):
    storage = LocalStorage(str(tmp_path))
    separate = SPEC.model_copy(update={"concatenate": False})
    results = {}
    for output in outputs_for("job_1", separate):
        rendered = render(output)
        results[output.name] = upload_file(storage, "r/", output, rendered, AudioFormat.WAV, {}, Phases())
    spoken = [["fake", "en"], ["fake_es", "es-MX"]]  # as the plan unit resolved them
    keys = ("r/manifest.json", "r/manifest.csv")
    stored, stored_csv = assembly.upload_manifest(storage, keys, "job_1", separate, results, "fake", spoken=spoken)
    data = storage.get_bytes("r/manifest.json")
    assert (stored.key, stored.bytes, stored.sha256) == ("r/manifest.json", len(data), hashlib.sha256(data).hexdigest())
    table = storage.get_bytes("r/manifest.csv")
    assert (stored_csv.key, stored_csv.sha256) == ("r/manifest.csv", hashlib.sha256(table).hexdigest())
    rows = list(csv.DictReader(io.StringIO(table.decode())))
    assert [(row["id"], row["status"], row["reused"]) for row in rows] == [
        ("one", "succeeded", "false"),
        ("two", "succeeded", "false"),
    ]
    manifest = json.loads(data)
    assert manifest["job_id"] == "job_1"
    assert manifest["lines"] == {"succeeded": 2, "failed": 0, "reused": 0, "synthesised": 2}
    assert [entry["id"] for entry in manifest["files"]] == ["one", "two"]
    for entry, item, (voice, language) in zip(manifest["files"], separate.inputs, spoken, strict=True):
        assert set(entry) == {
            "id", "file", "key", "format", "duration_seconds", "bytes", "sha256", "voice", "language", "text_sha256",
            "status", "reused",
        }  # fmt: skip
        assert (entry["file"], entry["key"], entry["format"]) == (f"{entry['id']}.wav", f"r/{entry['id']}.wav", "wav")
        assert entry["sha256"] == hashlib.sha256(storage.get_bytes(entry["key"])).hexdigest()
        assert entry["bytes"] == len(storage.get_bytes(entry["key"])) and entry["status"] == "succeeded"
        assert (entry["voice"], entry["language"]) == (voice, language)
        assert entry["text_sha256"] == hashlib.sha256(item.text.encode()).hexdigest()


def test_job_pauses_and_inline_pauses_shape_the_file():
    spec = JobCreate(
        inputs=[{"id": "a", "text": "First part. [pause 2.5s] Second part."}, {"id": "b", "text": "Another one."}],
        pauses={"chapter_ms": 3000},
    )
    plan = build_plan(spec, budget_seconds=30.0, chars_per_second=14.0, streams=1, voice_default="fake")
    assert [c.chunk.pause_ms for c in plan.inputs[0]] == [2500, None]
    rendered = build_file(
        outputs_for("job_1", spec)[0], plan, load, sample_rate=SR, file_rate=SR, mastering=MASTERING,
        input_ids=spec.input_ids(), phases=Phases(),
    )  # fmt: skip
    assert rendered.duration_seconds == pytest.approx(3 * SECONDS + 2.5 + 3.0, abs=0.01)
    assert rendered.cues[1].start - rendered.cues[0].end == pytest.approx(2.5, abs=0.01)
    assert rendered.chapters[1][0] - rendered.cues[1].end == pytest.approx(3.0, abs=0.01)
