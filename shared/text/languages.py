"""Registry of language-specific normalisation rules, keyed by language code ("en", "en-GB" -> "en").

A language module registers a ``LanguageRules``; built-in modules are imported on first use so that
importing the registry stays cheap and free of import cycles. Languages without rules still get the
generic clean-up and a sentence segmenter (pysbd's own rules where it has them, English otherwise).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from pysbd.languages import LANGUAGE_CODES

from shared.text.offsets import MappedText

_BUILTIN_MODULES = {"en": "shared.text.lang_en", "es": "shared.text.lang_es"}
_REGISTRY: dict[str, LanguageRules] = {}


def _unchanged(mapped: MappedText) -> MappedText:
    return mapped


@dataclass(frozen=True)
class LanguageRules:
    code: str
    expand: Callable[[MappedText], MappedText] = _unchanged
    """Rewrites what a TTS model reads badly (numbers, abbreviations...), keeping the offset map."""
    segmenter_language: str = "en"
    """pysbd language code used to split sentences."""


def base_code(language: str) -> str:
    return language.strip().replace("_", "-").split("-")[0].lower() or "en"


def canonical_tag(language: str) -> str:
    """A BCP-47 tag in its usual case: 'ES-mx' -> 'es-MX', 'zh-hant-tw' -> 'zh-Hant-TW', 'en_gb' -> 'en-GB'."""
    parts = language.strip().replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            out.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())  # script
        else:
            out.append(part.lower())
    return "-".join(out)


def register(rules: LanguageRules) -> None:
    _REGISTRY[base_code(rules.code)] = rules


def rules_for(language: str) -> LanguageRules:
    code = base_code(language)
    if code not in _REGISTRY and code in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[code])
    if code in _REGISTRY:
        return _REGISTRY[code]
    return LanguageRules(code, segmenter_language=code if code in LANGUAGE_CODES else "en")
