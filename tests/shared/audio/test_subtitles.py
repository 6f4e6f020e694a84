import json

import pytest

from shared.audio.subtitles import Cue, to_srt, to_timing_json, to_vtt

CUES = [Cue(0.0, 1.5, "Hello there."), Cue(1.75, 3723.0456, 'It is <b> & "more"\n\nsecond line')]


def test_srt_format():
    assert to_srt(CUES) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
        '2\n00:00:01,750 --> 01:02:03,046\nIt is <b> & "more"\nsecond line\n'
    )


def test_vtt_format_escapes_markup():
    assert to_vtt(CUES) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n"
        '00:00:01.750 --> 01:02:03.046\nIt is &lt;b&gt; &amp; "more"\nsecond line\n'
    )


def test_hours_past_99_and_rounding_into_the_next_second():
    cue = Cue(360_000.0, 360_001.9996, "long book")
    assert "100:00:00,000 --> 100:00:02,000" in to_srt([cue])
    assert "100:00:00.000 --> 100:00:02.000" in to_vtt([cue])


def test_timing_json_with_inputs():
    document = json.loads(to_timing_json(CUES, inputs=[("intro", 0.0, 1.5), {"id": "b", "start": 1.75, "end": 9}]))
    assert document["cues"][1] == {"start": 1.75, "end": 3723.046, "text": CUES[1].text}
    assert document["inputs"] == [
        {"id": "intro", "start": 0.0, "end": 1.5},
        {"id": "b", "start": 1.75, "end": 9.0},
    ]
    assert "inputs" not in json.loads(to_timing_json(CUES))


@pytest.mark.parametrize(("start", "end"), [(2.0, 1.0), (-1.0, 1.0), (0.0, float("nan"))])
def test_invalid_cues(start, end):
    with pytest.raises(ValueError):
        Cue(start, end, "x")


def test_a_dialogue_cue_names_its_speaker_in_every_format():
    cues = [Cue(0.0, 1.0, "Hello.", "Ana"), Cue(1.5, 2.0, "Hi <you>.", "Bo & Co"), Cue(2.5, 3.0, "Narration.")]
    assert "Ana: Hello." in to_srt(cues) and "\nNarration.\n" in to_srt(cues)
    vtt = to_vtt(cues)
    assert "<v Ana>Hello." in vtt and "<v Bo &amp; Co>Hi &lt;you&gt;." in vtt
    rows = json.loads(to_timing_json(cues))["cues"]
    assert [row.get("speaker") for row in rows] == ["Ana", "Bo & Co", None]
