"""Worker fixtures shared by the tests that run a real worker on the tiny KaniTTS2 stack."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_kanitts2_env(tmp_path_factory) -> dict[str, str]:
    """Worker settings for the tiny KaniTTS2 LM, NanoCodec and speaker embedder, built once per session
    from configs and loaded by the production loaders."""
    from tests.fixtures.kanitts2_tiny import build_tiny_kanitts2
    from tests.fixtures.nanocodec_tiny import build_tiny_nanocodec
    from tests.fixtures.wavlm_tiny import build_tiny_speaker_embedder

    root = tmp_path_factory.mktemp("tiny-kanitts2")
    return {
        "NARRATE_ENGINE": "kanitts2",
        "NARRATE_KANITTS2_MODEL": str(build_tiny_kanitts2(root / "lm")),
        "NARRATE_KANITTS2_CODEC": str(build_tiny_nanocodec(root / "codec.nemo")),
        "NARRATE_KANITTS2_SPEAKER_EMBEDDER": str(build_tiny_speaker_embedder(root / "wavlm")),
        "NARRATE_KANITTS2_DEVICE": "cpu",
        "NARRATE_BATCH_SIZE": "4",
        "NARRATE_CHUNK_BUDGET_SECONDS": "3",
        "OMP_NUM_THREADS": "1",
    }
