"""`worker.planning`: which chunk requests a job becomes (keys, streams, voices, sampling)."""

from __future__ import annotations

import numpy as np
import pytest

from shared.jobs import JobCreate
from shared.text.chunking import Boundary
from worker.engines.base import Sampling
from worker.planning import build_plan, chunk_key, pause_after
from worker.voice_embeddings import ClonedVoice

pytestmark = pytest.mark.fast

LONG = "\n\n".join(f"Paragraph {i}. " + "The narrator reads on and on. " * 6 for i in range(4))
CLONE = "voice_0123456789abcdef01234567"


def plan(spec: JobCreate, **options: object):
    defaults: dict[str, object] = {
        "budget_seconds": 4.0, "chars_per_second": 14.0, "streams": 2, "voice_default": "default",
    }  # fmt: skip
    return build_plan(spec, **{**defaults, **options})


def test_keys_name_the_input_and_the_chunk_and_chunks_stay_in_reading_order():
    spec = JobCreate(inputs=[{"text": LONG}, {"text": "Short."}])
    planned = plan(spec)
    first, second = planned.inputs
    assert [p.key for p in first] == [chunk_key(0, i) for i in range(len(first))] and len(first) > 4
    assert [p.key for p in second] == ["00001-00000"]
    assert [p.chunk.index for p in first] == list(range(len(first)))
    assert planned.all() == first + second


def test_a_long_input_is_cut_into_streams_at_paragraphs_and_every_input_has_streams_of_its_own():
    spec = JobCreate(inputs=[{"text": LONG}, {"text": LONG}])
    planned = plan(spec, streams=2)
    streams = [sorted({p.request.stream for p in chunks}) for chunks in planned.inputs]
    assert streams == [[0, 1], [2, 3]]
    for chunks in planned.inputs:
        for stream in {p.request.stream for p in chunks}:
            own = [p for p in chunks if p.request.stream == stream]
            assert [p.request.seq for p in own] == list(range(len(own)))
        for paragraph in {p.chunk.paragraph for p in chunks}:  # cut only between paragraphs
            assert len({p.request.stream for p in chunks if p.chunk.paragraph == paragraph}) == 1
    order = [(p.request.stream, p.request.seq) for p in planned.generation_order()]
    assert order == sorted(order)
    assert plan(spec, streams=1).inputs[0][-1].request.stream == 0


def test_the_job_sampling_reaches_every_request_and_its_estimate_the_frame_cap():
    spec = JobCreate(inputs=[{"text": LONG}], sampling={"temperature": 0.5, "top_k": 7, "seed": 3})
    requests = [p.request for p in plan(spec).all()]
    assert {r.sampling for r in requests} == {
        Sampling(temperature=0.5, top_p=0.95, top_k=7, repetition_penalty=1.1, seed=3)
    }
    assert all(r.expected_seconds == pytest.approx(len(r.text) / 14.0) for r in requests)
    assert all(r.last_sentence and r.text.endswith(r.last_sentence) for r in requests)


def test_voices_come_from_the_input_then_the_job_then_the_engine_and_clones_carry_their_embedding():
    embedding = np.ones(128, np.float32) / np.sqrt(128)
    spec = JobCreate(
        voice=CLONE,
        inputs=[{"text": "In the clone."}, {"text": "In a tag.", "voice": "en_us"}],
    )
    planned = plan(spec, cloned={CLONE: ClonedVoice(embedding, "en_gb")})
    cloned, tagged = planned.inputs[0][0].request, planned.inputs[1][0].request
    assert (cloned.voice, cloned.language) == (CLONE, "en_gb") and cloned.speaker_embedding is embedding
    assert (tagged.voice, tagged.language, tagged.speaker_embedding) == ("en_us", "en", None)
    plain = plan(JobCreate(inputs=[{"text": "Nobody chose."}])).inputs[0][0].request
    assert plain.voice == "default"


def test_pauses_follow_the_chunk_boundary():
    pauses = {"clause": 1, "sentence": 2, "paragraph": 3, "end": 4, "chapter": 5, "turn": 6}
    assert [pause_after(b, pauses) for b in Boundary] == [1, 2, 3, 4, 6]
    assert pause_after(Boundary.END, {"sentence": 2}) == 2  # a boundary without its own pause: a sentence's


def test_a_dialogue_has_one_stream_per_speaker_in_its_voice_and_turns_end_with_a_turn_pause():
    spec = JobCreate(
        voices={"Ana": "joe", "Bo": "en_us"},
        inputs=[
            {"text": "[Ana] First line.\n[Bo] Second line.\n[Ana] Third line."},
            {"segments": [{"speaker": "Bo", "text": "Alone."}]},
        ],
    )
    first, second = plan(spec).inputs
    assert [(p.speaker, p.request.voice, p.request.seq) for p in first] == [
        ("Ana", "joe", 0),
        ("Bo", "en_us", 0),
        ("Ana", "joe", 1),
    ]
    assert first[0].request.stream == first[2].request.stream != first[1].request.stream
    assert [p.chunk.boundary for p in first] == [Boundary.TURN, Boundary.TURN, Boundary.END]
    assert [p.chunk.index for p in first] == [0, 1, 2]
    text = spec.inputs[0].spoken_text
    assert [text[p.chunk.start : p.chunk.end] for p in first] == ["First line.", "Second line.", "Third line."]
    assert second[0].request.stream not in {p.request.stream for p in first}  # inputs never share context


def test_speaker_tags_are_text_without_voices_and_a_timed_line_is_one_stream():
    tagged = plan(JobCreate(inputs=[{"text": "[Ana] Hello there."}])).inputs[0]
    assert [p.speaker for p in tagged] == [None] and "Ana" in tagged[0].chunk.text  # read as text
    timed = plan(JobCreate(inputs=[{"text": LONG, "target_seconds": 30.0}]), streams=4).inputs[0]
    assert len({p.request.stream for p in timed}) == 1 and len(timed) > 1


def test_a_short_first_chunk_is_the_jobs_first_only():
    spec = JobCreate(inputs=[{"text": LONG}, {"text": LONG}])
    normal, short = plan(spec, budget_seconds=8.0), plan(spec, budget_seconds=8.0, first_chunk_chars=60)
    first = short.inputs[0][0]
    assert first.request.text == "Paragraph zero. The narrator reads on and on."  # the sentences that fit in 60
    assert len(normal.inputs[0][0].request.text) > 60 and first.chunk.boundary is Boundary.SENTENCE
    assert first.request.expected_seconds == pytest.approx(len(first.request.text) / 14.0)  # its frame cap follows
    later = [[p.request.text for p in plan.inputs[0] if p.chunk.paragraph > 0] for plan in (short, normal)]
    assert later[0] == later[1] and later[0]  # from the next paragraph on, packed as usual
    assert [p.request.text for p in short.inputs[1]] == [p.request.text for p in normal.inputs[1]]
