"""What one worker process holds for its life: its services and the engine it loaded when it started.

The engine is loaded once, explicitly, by `Runtime.start` (from Celery's worker_process_init, after
the fork); the speaker embedder only when the first voice's clips have passed their checks, so a
process that never clones never loads it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from shared import metrics
from shared.services import Services
from shared.settings import Settings, get_settings
from shared.storage import Storage
from shared.store import JobStore
from shared.text.detect import detect_languages
from shared.units import UnitStore
from shared.voice_store import VoiceStore
from worker.engines.base import Engine
from worker.engines.registry import SpeakerEmbedder, load_engine, load_speaker_embedder
from worker.qc import QualityControl

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    services: Services
    engine: Engine
    _embedder: SpeakerEmbedder | None = field(default=None, repr=False)
    _embedder_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _quality: QualityControl | None = field(default=None, repr=False)

    @classmethod
    def start(cls, services: Services) -> Runtime:
        """Load the configured engine and publish what it offers (the API validates voices with it)."""
        started = time.perf_counter()
        engine = load_engine(services.settings)
        seconds = time.perf_counter() - started
        metrics.ENGINE_LOAD_SECONDS.labels(engine=engine.name).set(seconds)
        log.info("engine %s loaded in %.1f s", engine.name, seconds)
        services.jobs.publish_engine(
            {
                "name": engine.name,
                "sample_rate": engine.sample_rate,
                "can_clone": engine.can_clone,
                "voices": [vars(voice) for voice in engine.voices()],
                "languages": engine.languages(),
            }
        )
        if len(engine.languages()) > 1:  # load the detector's models now, not in a first job's plan
            detect_languages(["Warm up.", "Preparación."], engine.languages())
        return cls(services, engine)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def jobs(self) -> JobStore:
        return self.services.jobs

    @property
    def units(self) -> UnitStore:
        return self.services.units

    @property
    def voices(self) -> VoiceStore:
        return self.services.voices

    @property
    def storage(self) -> Storage:
        return self.services.storage

    def speaker_embedder(self) -> SpeakerEmbedder:
        """The engine's speaker embedder, loaded on the first call and kept."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = load_speaker_embedder(self.settings)
            return self._embedder

    def quality(self) -> QualityControl:
        """The process's chunk checker (its recogniser loads at the first check), made on the first call."""
        with self._embedder_lock:
            if self._quality is None:
                self._quality = QualityControl(self.settings)
            return self._quality

    def report_gpu_memory(self) -> None:
        reading = self.engine.gpu_memory()
        if reading:
            allocated, peak = reading
            metrics.GPU_MEMORY_ALLOCATED.labels(device=self.engine.device).set(allocated)
            metrics.GPU_MEMORY_PEAK.labels(device=self.engine.device).set(peak)
        total = self.engine.gpu_memory_total()
        if total:
            metrics.GPU_MEMORY_TOTAL.labels(device=self.engine.device).set(total)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's runtime, started on first use (never at import time); the engine is loaded once
    however many threads ask at the same time."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime.start(Services.from_settings(get_settings(), client_name="narrate-worker"))
        return _runtime
