"""Builds the configured engine, and the speaker embedder of engines that clone. Engine modules are
imported here, lazily, so importing the worker package never imports torch or touches CUDA (that would
break Celery's forked processes), and the cloning task never names an engine's modules."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from shared.settings import Settings
from worker.engines.base import Engine


class SpeakerEmbedder(Protocol):
    """Turns one reference clip into the engine's speaker vector (the cloning task averages them)."""

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray: ...


def load_engine(settings: Settings) -> Engine:
    if settings.gpu_idle_release_seconds > 0:  # released while idle, reloaded by the next job
        from worker.engines.idle import IdleReleasingEngine

        plain = settings.model_copy(update={"gpu_idle_release_seconds": 0.0})
        return IdleReleasingEngine(lambda: load_engine(plain), settings.gpu_idle_release_seconds)
    if settings.engine == "piper":
        from worker.engines.piper_engine import PiperEngine

        return PiperEngine.load()
    if settings.engine == "kanitts2":
        from worker.engines.kanitts2.engine import KaniTTS2Engine

        return KaniTTS2Engine.load(settings)
    raise ValueError(f"unknown engine {settings.engine!r}")


def load_speaker_embedder(settings: Settings) -> SpeakerEmbedder:
    """The embedder that makes voices for the configured engine; ValueError for an engine that cannot clone."""
    if settings.engine == "kanitts2":
        from worker.engines.kanitts2.speaker import SpeakerEmbedder as KaniSpeakerEmbedder

        return KaniSpeakerEmbedder.load(
            settings.kanitts2_speaker_embedder, device=settings.kanitts2_device, cache_dir=settings.hf_cache_dir
        )
    raise ValueError(f"the {settings.engine!r} engine has no speaker embedder (it cannot clone)")
