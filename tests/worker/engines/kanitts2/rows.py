"""Generation rows for the decoder and batching tests: a real prompt, an optional speaker, context frames."""

from __future__ import annotations

from typing import Any

import numpy as np

from worker.engines.kanitts2.generate import RowRequest
from worker.engines.kanitts2.prompt import build_prompt


def prompt_row(
    model: Any, tokenizer: Any, text: str, *, seed: int, speaker: int | None = None, context: int = 0, **options: Any
) -> RowRequest:
    """`text` prompted as the engine does; `speaker` picks a fixed random unit embedding, `context` that many
    random pre-filled frames; `options` are `RowRequest` fields (default 6 frames at most)."""
    ids = model.spec.tokens
    frames = np.random.default_rng(seed).integers(0, ids.codebook_size, size=(context, 4)) if context else None
    embedding = None
    if speaker is not None:
        vector = np.random.default_rng(100 + speaker).standard_normal(128).astype(np.float32)
        embedding = vector / np.linalg.norm(vector)
    items = build_prompt(
        tokenizer, ids, text, language_tag="en_us", with_speaker=embedding is not None, context_frames=frames
    )
    return RowRequest(items=items, seed=seed, speaker=embedding, **{"max_frames": 6, **options})
