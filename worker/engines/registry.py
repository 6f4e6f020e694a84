"""Builds the configured engine. Engine modules are imported here, lazily, so importing the worker
package never imports torch or touches CUDA (that would break Celery's forked processes)."""

from __future__ import annotations

from shared.settings import Settings
from worker.engines.base import Engine


def load_engine(settings: Settings) -> Engine:
    if settings.engine == "piper":
        from worker.engines.piper_engine import PiperEngine

        return PiperEngine.load()
    if settings.engine == "kanitts2":
        from worker.engines.kanitts2.engine import KaniTTS2Engine

        return KaniTTS2Engine.load(settings)
    raise ValueError(f"unknown engine {settings.engine!r}")
