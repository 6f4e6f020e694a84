"""Settings: the documented reference is current, and inconsistent limits are refused at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.settings import Settings
from shared.settings_doc import render

REPO = Path(__file__).resolve().parents[2]


def test_docs_settings_md_is_generated_from_the_settings_class():
    assert (REPO / "docs" / "settings.md").read_text() == render(), (
        "run: python -m shared.settings_doc > docs/settings.md"
    )


def test_every_setting_is_documented():
    assert all(field.description for field in Settings.model_fields.values())


def test_environment_variables_are_read_with_the_prefix(monkeypatch):
    monkeypatch.setenv("NARRATE_MAX_TEXT_CHARS", "1234")
    monkeypatch.setenv("NARRATE_ENGINE", "kanitts2")
    settings = Settings()
    assert settings.max_text_chars == 1234 and settings.engine == "kanitts2"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"storage_url": "ftp://x"}, "storage_url must start with"),
        ({"engine": "espeak"}, "engine"),
    ],
)  # fmt: skip
def test_inconsistent_settings_are_refused(values, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**values)
