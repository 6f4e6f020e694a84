"""Which language each input of a job is spoken in: the one it names, the job's, its voice's, or detected.

Order: the input's `language`, else the job's `language`, else the language of the voice it is spoken
in when that voice speaks only one (a Piper voice, a KaniTTS2 language tag), else the language detected
in its text among those the engine speaks (`shared.text.detect`), else the engine's first language.

The API checks the named languages at submission (`check_languages`: 422 before anything is stored);
the plan unit resolves every input (`resolve_languages`) with the engine it runs, and the job record
reports the result per input (`language`, `language_detected`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.jobs import JobCreate
from shared.text.detect import detect_languages
from shared.text.languages import base_code


@dataclass(frozen=True)
class InputLanguage:
    language: str
    """A BCP-47 tag (`es`, `es-MX`); a detected one is a bare language code."""
    detected: bool


class LanguageRefused(ValueError):
    """A named language the engine cannot speak, or one its voice does not speak; `field` names the place."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


def check_languages(spec: JobCreate, spoken: Sequence[str], voice_languages: Mapping[str, str]) -> None:
    """Raise `LanguageRefused` for the first named language the engine does not speak (`unsupported_language`)
    or that the input's voice does not speak (`voice_language_mismatch`).

    `spoken`: the engine's languages (base codes); `voice_languages`: voice id -> the one language of
    each voice bound to one (others, such as cloned voices, speak every language of the engine)."""
    bases = {base_code(code) for code in spoken}
    listed = ", ".join(spoken) or "none"
    if spec.language is not None and base_code(spec.language) not in bases:
        raise LanguageRefused(
            "unsupported_language",
            f"This service's engine cannot speak {spec.language!r}; it speaks {listed}.",
            "language",
        )
    for index, item in enumerate(spec.inputs):
        named = item.language or spec.language
        field = f"inputs.{index}.language" if item.language else "language"
        if named is None:
            continue
        if base_code(named) not in bases:
            raise LanguageRefused(
                "unsupported_language", f"This service's engine cannot speak {named!r}; it speaks {listed}.", field
            )
        voice = item.voice or spec.voice
        fixed = voice_languages.get(voice) if voice else None
        if fixed and base_code(fixed) != base_code(named):
            raise LanguageRefused(
                "voice_language_mismatch",
                f"The voice {voice!r} speaks {fixed!r}, not {named!r}; name another voice or leave the voice out "
                "to get the engine's voice for the language.",
                field,
            )


def resolve_languages(
    spec: JobCreate, spoken: Sequence[str], voice_languages: Mapping[str, str]
) -> list[InputLanguage]:
    """Each input's language, in input order (see the module's docstring); raises `LanguageRefused` as
    `check_languages` does."""
    check_languages(spec, spoken, voice_languages)
    resolved: list[InputLanguage | None] = []
    undecided: list[int] = []
    for index, item in enumerate(spec.inputs):
        named = item.language or spec.language
        voice = item.voice or spec.voice
        fixed = voice_languages.get(voice) if voice else None
        if named:
            resolved.append(InputLanguage(named, detected=False))
        elif fixed:
            resolved.append(InputLanguage(fixed, detected=False))
        else:
            resolved.append(None)
            undecided.append(index)
    if undecided:
        fallback = base_code(spoken[0]) if spoken else "en"
        several = len({base_code(code) for code in spoken}) > 1
        found = detect_languages([spec.inputs[i].spoken_text for i in undecided], spoken) if several else []
        for position, index in enumerate(undecided):
            guess = found[position] if several else None
            resolved[index] = InputLanguage(guess or fallback, detected=guess is not None)
    return [item for item in resolved if item is not None]
