"""What one worker process holds for its lifetime: settings, store, storage and the loaded engine."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from shared import metrics
from shared.settings import Settings, get_settings
from shared.storage import Storage, storage_from_settings
from shared.store import JobStore
from worker.engines.base import Engine
from worker.engines.registry import load_engine

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    store: JobStore
    storage: Storage
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            started = time.perf_counter()
            self._engine = load_engine(self.settings)
            seconds = time.perf_counter() - started
            metrics.ENGINE_LOAD_SECONDS.labels(engine=self._engine.name).set(seconds)
            log.info("engine %s loaded in %.1f s", self._engine.name, seconds)
            self.store.publish_engine(
                {
                    "name": self._engine.name,
                    "sample_rate": self._engine.sample_rate,
                    "can_clone": self._engine.can_clone,
                    "voices": [vars(voice) for voice in self._engine.voices()],
                }
            )
        return self._engine

    def report_gpu_memory(self) -> None:
        probe = getattr(self._engine, "gpu_memory", None)
        reading = probe() if probe else None
        if reading:
            allocated, peak = reading
            device = str(getattr(self._engine, "device", "cuda"))
            metrics.GPU_MEMORY_ALLOCATED.labels(device=device).set(allocated)
            metrics.GPU_MEMORY_PEAK.labels(device=device).set(peak)


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The process's runtime, created on first use (after fork, never at import time)."""
    global _runtime
    if _runtime is None:
        settings = get_settings()
        _runtime = Runtime(settings, JobStore.from_settings(settings), storage_from_settings(settings))
    return _runtime
