"""Session fixtures: the tiny KaniTTS2 checkpoint, built once, loaded through the production loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.kanitts2_tiny import build_tiny_kanitts2


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_kanitts2(tmp_path_factory.mktemp("kanitts2-tiny"), seed=0)


@pytest.fixture(scope="session")
def tiny_lm(tiny_checkpoint: Path):
    from worker.engines.kanitts2.model import load_kanitts2

    return load_kanitts2(str(tiny_checkpoint))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models are all per-op overhead: OpenMP threads only add spin-waits (20x slower on a busy box)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_codec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.nanocodec_tiny import build_tiny_nanocodec

    return build_tiny_nanocodec(tmp_path_factory.mktemp("nanocodec-tiny") / "codec.nemo")


@pytest.fixture(scope="session")
def tiny_engine(tiny_checkpoint: Path, tiny_codec_path: Path):
    """The engine as the worker builds it: `KaniTTS2Engine.load(settings)` on CPU."""
    from shared.settings import Settings
    from worker.engines.kanitts2.engine import KaniTTS2Engine

    settings = Settings(
        engine="kanitts2",
        kanitts2_model=str(tiny_checkpoint),
        kanitts2_codec=str(tiny_codec_path),
        kanitts2_device="auto",
        kanitts2_context_sentences=1,
        batch_size=4,
    )
    return KaniTTS2Engine.load(settings)
