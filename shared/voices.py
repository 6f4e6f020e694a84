"""Voices an engine offers without cloning, known to the API before any worker has started.

Workers publish their engine's real list to the job store when they load; until one has, the API
validates against this catalogue of the configured engine.
"""

from __future__ import annotations

BUILTIN_VOICES: dict[str, list[dict[str, str]]] = {
    "piper": [
        {"id": "joe", "description": "Piper en_US 'joe' (medium), CPU preview voice", "language": "en"},
        {"id": "joe-quick", "description": "Piper 'joe' at a brisker pace, CPU preview voice", "language": "en"},
    ],
    "kanitts2": [
        {"id": "default", "description": "The model's own default voice", "language": "en"},
        {"id": "en_us", "description": "Language/accent tag en_us", "language": "en"},
    ],
}


def builtin_voice_ids(engine: str, published: dict | None) -> set[str]:
    if published and published.get("name") == engine:
        return {voice["id"] for voice in published.get("voices", [])}
    return {voice["id"] for voice in BUILTIN_VOICES.get(engine, [])}
