"""Voices and languages an engine offers without cloning, known to the API before any worker has started.

Workers publish their engine's real list (voices and languages) to the job store when they load; until
one has, the API validates against this catalogue of the configured engine. A voice's `language` is
the one language it speaks; empty means every language of the engine (KaniTTS2's own voice takes the
language tag of each input).
"""

from __future__ import annotations

BUILTIN_VOICES: dict[str, list[dict[str, str]]] = {
    "piper": [
        {"id": "joe", "description": "Piper en_US 'joe' (medium), CPU preview voice", "language": "en"},
        {"id": "joe-quick", "description": "Piper 'joe' at a brisker pace, CPU preview voice", "language": "en"},
        {"id": "es", "description": "eSpeak NG Spanish (Spain), CPU preview voice", "language": "es"},
    ],
    "kanitts2": [
        {"id": "default", "description": "The model's own voice, in the language of each input", "language": ""},
        {"id": "en_us", "description": "Language/accent tag en_us", "language": "en"},
    ],
}
CHECKPOINT_LANGUAGES: dict[str, list[str]] = {"kani-tts-2-en": ["en"], "kani-tts-2-pt": ["en", "es"]}
"""KaniTTS2 checkpoints (by name) and the languages their tags cover, until a worker has read the real tags."""


def builtin_voice_ids(engine: str, published: dict | None) -> set[str]:
    if published and published.get("name") == engine:
        return {voice["id"] for voice in published.get("voices", [])}
    return {voice["id"] for voice in BUILTIN_VOICES.get(engine, [])}


def engine_languages(engine: str, published: dict | None, *, model: str = "") -> list[str]:
    """The languages (base codes) the engine speaks, its default first: the workers' published list, else
    the catalogue's (for KaniTTS2, the configured checkpoint's)."""
    if published and published.get("name") == engine and published.get("languages"):
        return list(published["languages"])
    if engine == "kanitts2":
        return CHECKPOINT_LANGUAGES.get(model.rstrip("/").rsplit("/", 1)[-1], ["en"])
    return list(dict.fromkeys(voice["language"] for voice in BUILTIN_VOICES.get(engine, []) if voice["language"]))


def voice_languages(engine: str, published: dict | None) -> dict[str, str]:
    """Built-in voice id -> the one language it speaks, for the voices bound to one."""
    voices = published.get("voices", []) if published and published.get("name") == engine else None
    return {voice["id"]: voice["language"] for voice in voices or BUILTIN_VOICES.get(engine, []) if voice["language"]}
