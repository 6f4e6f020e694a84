"""The KaniTTS2 additions a checkpoint's config.json carries on top of the LFM2 backbone config.

Read once at load time so the prompt builder, the position ids and the sampler all agree with the
checkpoint instead of with constants copied from a model card.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

TEXT_VOCAB_SIZE = 64400
"""Size of the LFM2 text tokenizer; control tokens follow it (not stored in the checkpoint config)."""
CODEBOOK_SIZE = 4032
"""NanoCodec finite-scalar quantiser levels 9*8*8*7 per codebook."""


@dataclass(frozen=True)
class TokenIds:
    """Control and audio token ids of the KaniTTS2 vocabulary."""

    begin_of_text: int = 1
    """BOS the LFM2 tokenizer puts in front of every text; training sequences have it after start_of_human."""
    end_of_text: int = 2
    start_of_speech: int = TEXT_VOCAB_SIZE + 1
    end_of_speech: int = TEXT_VOCAB_SIZE + 2
    start_of_human: int = TEXT_VOCAB_SIZE + 3
    end_of_human: int = TEXT_VOCAB_SIZE + 4
    start_of_ai: int = TEXT_VOCAB_SIZE + 5
    end_of_ai: int = TEXT_VOCAB_SIZE + 6
    pad: int = TEXT_VOCAB_SIZE + 7
    audio_start: int = TEXT_VOCAB_SIZE + 10
    codebook_size: int = CODEBOOK_SIZE
    num_codebooks: int = 4

    def audio_token(self, codebook: int, code: int) -> int:
        return self.audio_start + self.codebook_size * codebook + code

    @property
    def audio_end(self) -> int:
        """One past the last audio token id."""
        return self.audio_start + self.codebook_size * self.num_codebooks


@dataclass(frozen=True)
class KaniTTS2Spec:
    """Everything KaniTTS2-specific the engine reads from the checkpoint config."""

    tokens: TokenIds
    tokens_per_frame: int
    audio_step: float
    use_learnable_rope: bool
    alpha_min: float
    alpha_max: float
    speaker_emb_dim: int
    language_tags: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Any) -> KaniTTS2Spec:
        """Build from a transformers config (or a plain dict of config.json) and check it is consistent."""
        get: Callable[..., Any] = (
            config.get if isinstance(config, Mapping) else (lambda key, default=None: getattr(config, key, default))
        )
        tokens_per_frame = int(get("tokens_per_frame", 4) or 4)
        if get("vocab_size") is None:
            raise ValueError("checkpoint config has no vocab_size")
        vocab_size = int(get("vocab_size"))
        audio_start = get("audio_tokens_start")
        if audio_start is None:
            audio_start = derived_audio_start(vocab_size, tokens_per_frame)
            log.info(
                "config.json has no audio_tokens_start: derived %d from the vocabulary layout (%d = %d + %d x %d)",
                audio_start,
                vocab_size,
                audio_start,
                tokens_per_frame,
                CODEBOOK_SIZE,
            )
        tokens = TokenIds(
            audio_start=int(audio_start),
            start_of_speech=int(audio_start) - 9,
            end_of_speech=int(audio_start) - 8,
            start_of_human=int(audio_start) - 7,
            end_of_human=int(audio_start) - 6,
            start_of_ai=int(audio_start) - 5,
            end_of_ai=int(audio_start) - 4,
            pad=int(audio_start) - 3,
            num_codebooks=tokens_per_frame,
        )
        if vocab_size < tokens.audio_end:
            raise ValueError(f"vocab_size {vocab_size} cannot hold {tokens_per_frame} codebooks from {audio_start}")
        settings = get("language_settings") or {}
        tags = tuple(str(tag).strip().lower() for tag in settings.get("language_tags_list", []) or [])
        return cls(
            tokens=tokens,
            tokens_per_frame=tokens_per_frame,
            audio_step=float(1.0 if get("audio_step") is None else get("audio_step")),
            use_learnable_rope=bool(get("use_learnable_rope", False)),
            alpha_min=float(get("alpha_min", 0.1)),
            alpha_max=float(get("alpha_max", 2.0)),
            speaker_emb_dim=int(get("speaker_emb_dim", 128) or 128),
            language_tags=tags,
        )


def derived_audio_start(vocab_size: int, num_codebooks: int, codebook_size: int = CODEBOOK_SIZE) -> int:
    """`audio_tokens_start` of a checkpoint whose config.json leaves it out (the published one may).

    The vocabulary ends with the audio tokens (`audio_start + num_codebooks * codebook_size`), and the
    control tokens sit at `audio_start - 9 .. audio_start - 3` = `TEXT_VOCAB_SIZE + 1 .. + 7`; a layout
    where both cannot hold is some other model, and guessing would make every prompt wrong.
    """
    audio_start = vocab_size - num_codebooks * codebook_size
    expected = TEXT_VOCAB_SIZE + 10
    if audio_start != expected:
        raise ValueError(
            f"checkpoint config has no audio_tokens_start and its vocabulary does not follow the KaniTTS2 "
            f"layout: vocab_size {vocab_size} - {num_codebooks} x {codebook_size} audio tokens = {audio_start}, "
            f"expected {expected} ({TEXT_VOCAB_SIZE} text tokens, then the control tokens)"
        )
    return audio_start
