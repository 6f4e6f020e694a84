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
