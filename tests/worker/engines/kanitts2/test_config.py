"""KaniTTS2 token layout read from config.json, derived where the published config leaves it out."""

from __future__ import annotations

import logging

import pytest

from worker.engines.kanitts2.config import KaniTTS2Spec

RELEASED_VOCAB = 80538
"""64400 text tokens, the control tokens, then 4 codebooks x 4032 audio tokens from 64410."""


def _config(**overrides: object) -> dict:
    config: dict = {"vocab_size": RELEASED_VOCAB, "tokens_per_frame": 4, "audio_tokens_start": 64410}
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def test_missing_audio_tokens_start_is_derived_from_the_vocabulary(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="worker.engines.kanitts2.config"):
        derived = KaniTTS2Spec.from_config(_config(audio_tokens_start=None))
    assert derived == KaniTTS2Spec.from_config(_config())
    tokens = derived.tokens
    assert tokens.audio_start == 64410 and tokens.audio_end == RELEASED_VOCAB
    assert (tokens.start_of_speech, tokens.end_of_speech, tokens.pad) == (64401, 64402, 64407)
    (record,) = [r for r in caplog.records if "derived" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "64410" in record.getMessage() and "80538" in record.getMessage()


def test_an_explicit_audio_tokens_start_is_used_without_a_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="worker.engines.kanitts2.config"):
        spec = KaniTTS2Spec.from_config(_config())
    assert spec.tokens.audio_start == 64410
    assert not [r for r in caplog.records if "derived" in r.getMessage()]


@pytest.mark.parametrize(
    ("overrides", "numbers"),
    [
        ({"vocab_size": RELEASED_VOCAB + 1}, ["80539", "64411", "64410"]),
        ({"vocab_size": RELEASED_VOCAB - 4032}, ["76506", "60378", "64410"]),
        ({"tokens_per_frame": 3}, ["80538", "3 x 4032", "68442", "64410"]),
    ],
    ids=["one-token-too-many", "a-codebook-short", "three-codebooks"],
)
def test_a_layout_that_does_not_add_up_is_refused(overrides: dict, numbers: list[str]) -> None:
    with pytest.raises(ValueError, match="audio_tokens_start") as error:
        KaniTTS2Spec.from_config(_config(audio_tokens_start=None, **overrides))
    for number in numbers:
        assert number in str(error.value)
