"""Each input's language: named, the job's, its voice's, or detected among the engine's languages."""

from __future__ import annotations

import pytest

from shared.input_languages import InputLanguage, LanguageRefused, check_languages, resolve_languages
from shared.jobs import JobCreate

SPOKEN = ["en", "es"]
VOICES = {"joe": "en", "es": "es"}  # the preview engine's voices, each bound to one language


def _spec(inputs: list[dict], **job) -> JobCreate:
    return JobCreate.model_validate({"inputs": inputs, **job})


def test_a_mixed_sheet_gets_each_line_its_language() -> None:
    spec = _spec(
        [
            {"text": "Where is the library? It is next to the old town hall."},
            {"text": "¿Dónde está la biblioteca? Está junto al ayuntamiento."},
            {"text": "No."},  # ambiguous alone: the sheet's majority (Spanish) decides
            {"text": "¡Vamos, rápido, que se hace tarde!"},
            {"text": "1234"},  # nothing to tell from: the engine's first language
            {"text": "Merci beaucoup.", "language": "fr"},
        ]
    )
    with pytest.raises(LanguageRefused):  # fr is not spoken
        resolve_languages(spec, SPOKEN, VOICES)
    spec.inputs.pop()
    assert resolve_languages(spec, SPOKEN, VOICES) == [
        InputLanguage("en", True),
        InputLanguage("es", True),
        InputLanguage("es", True),
        InputLanguage("es", True),
        InputLanguage("en", False),
    ]


def test_named_languages_and_voices_win_over_detection() -> None:
    spec = _spec(
        [
            {"text": "Hello there, my good friend."},  # the job's language, whatever the text looks like
            {"text": "Good evening.", "language": "en-GB"},
            {"text": "¿Qué tal?", "voice": "joe", "language": "en"},
        ],
        language="es-MX",
    )
    assert resolve_languages(spec, SPOKEN, VOICES) == [
        InputLanguage("es-MX", False),
        InputLanguage("en-GB", False),
        InputLanguage("en", False),
    ]
    by_voice = _spec([{"text": "Good morning, everyone, and welcome.", "voice": "es"}])
    assert resolve_languages(by_voice, SPOKEN, VOICES) == [InputLanguage("es", False)]
    # An engine of one language decides nothing: its language, not "detected".
    assert resolve_languages(_spec([{"text": "Hola, amigo."}]), ["en"], {}) == [InputLanguage("en", False)]


@pytest.mark.parametrize(
    ("job", "inputs", "code", "field"),
    [
        ({"language": "ja"}, [{"text": "こんにちは。"}], "unsupported_language", "language"),
        ({}, [{"text": "Hi."}, {"text": "Ciao.", "language": "it"}], "unsupported_language", "inputs.1.language"),
        ({"voice": "joe"}, [{"text": "Hola.", "language": "es"}], "voice_language_mismatch", "inputs.0.language"),
    ],
)
def test_what_the_engine_cannot_speak_is_refused_by_name(job, inputs, code, field) -> None:
    with pytest.raises(LanguageRefused) as refused:
        check_languages(_spec(inputs, **job), SPOKEN, VOICES)
    assert (refused.value.code, refused.value.field) == (code, field)
    named = job.get("language") or inputs[-1]["language"]
    assert repr(named) in str(refused.value)
