"""Timed lines and dialogue through the real API, Redis store and storage, each job run in this process
on the Piper engine (as tests/worker/test_job_results.py does): durations are measured on the decoded
files, speakers read back from the timing JSON the job delivers."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import numpy as np
import pytest
import soundfile as sf

from shared.audio.trim import sound_bounds
from tests.conftest import AUTH, ServiceEnv, wait_status
from tests.support.units import run_until_idle
from tests.worker.test_synthesis_jobs import _read, _submit
from worker.engines.base import Engine
from worker.runtime import Runtime

LINES = {
    "a": "Halt! Nobody passes this gate after the evening bell.",
    "b": "The merchant counted the coins twice and frowned at the last one.",
    "c": "We ride north at dawn, and we do not stop until the river.",
    "d": "Keep your voice down, the walls of this tavern have ears.",
}
PADDING_MS = 100


@pytest.fixture(scope="module")
def piper() -> Engine:
    from worker.engines.piper_engine import PiperEngine

    return PiperEngine.load()


@pytest.fixture
def run_queued(piper: Engine) -> Callable[[ServiceEnv], None]:
    def run(env: ServiceEnv) -> None:
        run_until_idle(Runtime(env.services(), piper))

    return run


def _finished(api_client, service_env, run_queued, body: dict) -> dict:
    job_id = _submit(api_client, body)
    run_queued(service_env)
    job = wait_status(api_client, job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    return job


def _decoded(api_client, result: dict) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(_read(api_client, result["url"])), dtype="float32")
    return audio, rate


def test_timed_lines_fit_their_slot_within_two_percent_and_an_impossible_one_is_over_limit(
    api_client, service_env, run_queued, piper, monkeypatch
):
    common = {"concatenate": False, "format": "wav", "padding_ms": PADDING_MS}
    natural_job = _finished(
        api_client, service_env, run_queued, {**common, "inputs": [{"id": k, "text": t} for k, t in LINES.items()]}
    )
    natural = {}
    for item in natural_job["inputs"]:
        audio, rate = _decoded(api_client, item["result"])
        natural[item["id"]] = len(audio) / rate
        assert item["fit"] is None  # an untimed line has no fit
    drawn: list[str] = []
    generate = piper.generate

    def counting(requests, carry_in=None, review=None):  # a spy: every draw still goes to Piper
        drawn.extend(request.key for request in requests)
        return generate(requests, carry_in, review)

    monkeypatch.setattr(piper, "generate", counting)
    timed = [
        {"id": "shorter", "text": LINES["a"], "target_seconds": round(natural["a"] * 0.9, 3)},
        {"id": "longer", "text": LINES["b"], "target_seconds": round(natural["b"] * 1.15, 3)},
        {"id": "roomy", "text": LINES["c"], "max_seconds": round(natural["c"] * 1.3, 3)},
        {"id": "tight", "text": LINES["c"], "max_seconds": round(natural["c"] * 0.88, 3)},
        {"id": "impossible", "text": LINES["d"], "target_seconds": round(natural["d"] * 0.4, 3)},
    ]
    job = _finished(api_client, service_env, run_queued, {**common, "inputs": timed})
    by_id = {item["id"]: item for item in job["inputs"]}
    for line in timed:
        item = by_id[line["id"]]
        audio, rate = _decoded(api_client, item["result"])
        measured = len(audio) / rate
        fit = item["fit"]
        slot = line.get("target_seconds", line.get("max_seconds"))
        assert fit["target_seconds"] == slot
        assert fit["duration_seconds"] == pytest.approx(measured, abs=0.002), line["id"]
        head = sound_bounds(audio, rate)
        assert head is not None and abs(head[0] / rate - PADDING_MS / 1000) < 0.03, line["id"]  # trimmed to padding
        if line["id"] == "roomy":
            assert fit["status"] == "within" and fit["ratio"] == 1.0
            assert measured <= slot
        elif line["id"] == "impossible":
            assert fit["status"] == "over_limit"
            assert fit["ratio"] == pytest.approx(0.8)  # stretched as far as the bounds allow, never cut
            assert measured > slot * 1.5
        else:
            assert fit["status"] == "fitted", line["id"]
            assert abs(measured - slot) / slot <= 0.02, (line["id"], measured, slot)
    # Only the impossible line was redrawn, as often as the settings allow (Piper draws alike).
    impossible_key = f"{[line['id'] for line in timed].index('impossible'):05d}-00000"
    assert drawn.count(impossible_key) == 1 + service_env.settings().fit_redraws
    assert all(drawn.count(key) == 1 for key in drawn if key != impossible_key)
    manifest = json.loads(_read(api_client, job["manifest"]["url"]))
    assert {entry["id"]: entry["fit"]["status"] for entry in manifest["files"]} == {
        "shorter": "fitted",
        "longer": "fitted",
        "roomy": "within",
        "tight": "fitted",
        "impossible": "over_limit",
    }


SAME = "We leave at first light, before the guards change."


def test_a_dialogue_speaks_each_turn_in_its_speakers_voice_in_order(api_client, service_env, run_queued):
    body = {
        "concatenate": False,
        "format": "wav",
        "voices": {"Ana": "joe", "Bo": "joe-quick"},
        "pauses": {"turn_ms": 700},
        "inputs": [
            {
                "id": "scene",
                "segments": [
                    {"speaker": "Ana", "text": SAME},
                    {"speaker": "Bo", "text": SAME},
                    {"speaker": "Ana", "text": "Then pack your things."},
                ],
            },
            {"id": "tagged", "text": f"[Bo] {SAME}\n[Ana] {SAME}"},
        ],
    }
    job = _finished(api_client, service_env, run_queued, body)
    by_id = {item["id"]: item for item in job["inputs"]}
    for input_id, speakers in (("scene", ["Ana", "Bo", "Ana"]), ("tagged", ["Bo", "Ana"])):
        result = by_id[input_id]["result"]
        timing = json.loads(_read(api_client, result["subtitles"]["timing"]))
        cues = timing["cues"]
        assert [cue["speaker"] for cue in cues] == speakers
        seconds = {cue["speaker"]: cue["end"] - cue["start"] for cue in cues if cue["text"].startswith("We leave")}
        # The same sentence in joe-quick is about 0.7 times as long: each turn really is in its speaker's voice.
        assert seconds["Bo"] < 0.85 * seconds["Ana"], seconds
        # The turn pause, and the short silences the aligned cues leave at the chunks' edges around it.
        assert 0.67 <= cues[1]["start"] - cues[0]["end"] <= 0.7 + 0.25
        srt = _read(api_client, result["subtitles"]["srt"]).decode()
        assert f"{speakers[0]}: We leave" in srt
        audio, rate = _decoded(api_client, result)
        assert len(audio) / rate >= cues[-1]["end"]
    # Each speaker's chunks form one stream (context chains to that speaker's previous chunk).
    plan = service_env.services().units.plan(job["id"])
    scene = plan["inputs"][0]
    streams = {(item["speaker"], item["request"]["stream"], item["request"]["seq"]) for item in scene}
    ana = sorted(seq for speaker, _, seq in streams if speaker == "Ana")
    assert len({stream for speaker, stream, _ in streams if speaker == "Ana"}) == 1 and ana == [0, 1]
    assert {stream for speaker, stream, _ in streams if speaker == "Bo"}.isdisjoint(
        {stream for speaker, stream, _ in streams if speaker == "Ana"}
    )


CY = {"speaker": "Cy", "text": "Yo."}
BAD = [
    # (description, body, status, code, field)
    (
        "speaker without a voice",
        {"voices": {"Ana": "joe"}, "inputs": [{"segments": [{"speaker": "Ana", "text": "Hi."}, CY]}]},
        400,
        "unknown_speaker",
        "inputs.0",
    ),
    ("tagged speaker without a voice", {"voices": {"Ana": "joe"}, "inputs": [{"text": "[Ana] Hi.\n[Cy] Yo."}]}, 400,
     "unknown_speaker", "inputs.0"),
    ("segments without voices", {"inputs": [{"segments": [CY]}]}, 400,
     "unknown_speaker", "inputs.0"),
    ("unknown voice for a speaker", {"voices": {"Ana": "nobody"}, "inputs": [{"text": "[Ana] Hi."}]}, 422,
     "unknown_voice", "voices.Ana"),
    ("text and segments", {"inputs": [{"text": "Hi.", "segments": [{"speaker": "A", "text": "Yo."}]}]}, 422,
     "invalid_request", "inputs.0.text"),
    ("target and maximum", {"inputs": [{"text": "Hi.", "target_seconds": 2, "max_seconds": 3}]}, 422,
     "invalid_request", "inputs.0"),
    ("zero target", {"inputs": [{"text": "Hi.", "target_seconds": 0}]}, 422, "invalid_request",
     "inputs.0.target_seconds"),
    ("speed too high", {"inputs": [{"text": "Hi.", "speed": 3}]}, 422, "invalid_request", "inputs.0.speed"),
    ("bad speaker name", {"voices": {"[x]": "joe"}, "inputs": [{"text": "Hi."}]}, 422, "invalid_request", "voices"),
    ("negative padding", {"padding_ms": -1, "inputs": [{"text": "Hi."}]}, 422, "invalid_request", "padding_ms"),
]  # fmt: skip


@pytest.mark.parametrize(("description", "body", "status", "code", "field"), BAD, ids=[case[0] for case in BAD])
def test_bad_timed_and_dialogue_jobs_are_refused_naming_the_problem(api_client, description, body, status, code, field):
    response = api_client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    assert (error.get("field") or "").startswith(field), error
    if code == "unknown_speaker":
        assert "'Cy'" in error["message"]


def test_speaker_tags_are_plain_text_in_a_job_without_voices(api_client):
    response = api_client.post("/v1/jobs", json={"inputs": [{"text": "[Chapter 1] It began in May."}]}, headers=AUTH)
    assert response.status_code == 202, response.get_json()


def test_an_estimate_counts_a_timed_line_at_its_slot_and_a_dialogue_at_its_text(api_client):
    body = {
        "voices": {"Ana": "joe"},
        "inputs": [
            {"text": LINES["a"], "target_seconds": 9.5},
            {"text": LINES["b"] * 3, "max_seconds": 2.0},
            {"segments": [{"speaker": "Ana", "text": LINES["c"]}]},
        ],
    }
    response = api_client.post("/v1/estimate", json=body, headers=AUTH)
    assert response.status_code == 200, response.get_json()
    chapters = response.get_json()["chapters"]
    assert [c["audio_seconds"] for c in chapters[:2]] == [9.5, 2.0]
    assert chapters[2]["characters"] == len(f"[Ana] {LINES['c']}") and chapters[2]["audio_seconds"] > 2
