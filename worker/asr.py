"""Speech recognisers that check a generated chunk against its text (`NARRATE_QC_ASR`).

`pocketsphinx` (the default) runs on the CPU with the English model its wheel ships. It does not
decode freely: a free decode with its general language model gets a third of the words of clean
synthetic speech wrong, far too noisy to notice one dropped word. It decodes against a grammar of the
chunk's own words in order, each optional, so it reports which of the expected words are in the audio:
a dropped, skipped or garbled word comes out missing, while an inserted word (a repeat, babble) cannot
be reported (the grammar has no word for it; the duration check catches babble). Words its dictionary
lacks are left out of the check and counted as unchecked.

`whisper` decodes freely with a Whisper model through transformers (worker/engines/whisper_asr.py):
it reports inserted words too, costs more, and suits a GPU or a spare CPU.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from shared.audio.resample import resample
from shared.settings import QcAsr, Settings

ASR_RATE = 16000
"""What both recognisers take: 16 kHz mono."""


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    """Seconds from the start of the chunk's audio."""
    end: float


@dataclass(frozen=True)
class Transcript:
    words: list[Word]
    unchecked: list[str] = field(default_factory=list)
    """Expected words the recogniser cannot check (not in its dictionary); left out of the score."""

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)


class Recogniser(Protocol):
    name: QcAsr

    def transcribe(self, audio: np.ndarray, sr: int, expected: list[str]) -> Transcript:
        """The words heard in `audio` (mono float32 at `sr`); `expected` is the chunk's spoken text as
        normalised words (what a grammar-based recogniser listens for)."""
        ...


_FILLERS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]"})


class PocketsphinxRecogniser:
    """One decoder per calling thread (a decoder is not thread-safe; each holds about 30 MB)."""

    name = QcAsr.POCKETSPHINX

    def __init__(self) -> None:
        self._local = threading.local()

    def _decoder(self) -> Any:  # a pocketsphinx.Decoder
        decoder = getattr(self._local, "decoder", None)
        if decoder is None:
            from pocketsphinx import Decoder

            decoder = Decoder(loglevel="FATAL")
            self._local.decoder = decoder
        return decoder

    def transcribe(self, audio: np.ndarray, sr: int, expected: list[str]) -> Transcript:
        decoder = self._decoder()
        known = [word for word in expected if decoder.lookup_word(word)]
        unchecked = [word for word in expected if not decoder.lookup_word(word)]
        if not known:
            return Transcript([], unchecked)
        grammar = "#JSGF V1.0;\ngrammar chunk;\npublic <chunk> = " + " ".join(f"[{w}]" for w in known) + ";\n"
        decoder.add_jsgf_string("chunk", grammar)
        decoder.activate_search("chunk")
        samples = resample(audio, sr, ASR_RATE) if sr != ASR_RATE else audio
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        frame_rate = float(decoder.config["frate"])
        words = [
            # "read(2)": the dictionary's second pronunciation of "read".
            Word(seg.word.split("(", 1)[0], seg.start_frame / frame_rate, (seg.end_frame + 1) / frame_rate)
            # No hypothesis at all (noise, silence): `seg()` is None, and no word was heard.
            for seg in decoder.seg() or ()
            if seg.word not in _FILLERS and not seg.word.startswith("+")
        ]
        return Transcript(words, unchecked)


def load_recogniser(settings: Settings) -> Recogniser | None:
    """The configured recogniser (None: `off`). Whisper's model is read from the local cache only: a
    missing one fails here, at the first check, naming the model, and is never downloaded."""
    if settings.qc_asr == QcAsr.OFF:
        return None
    if settings.qc_asr == QcAsr.POCKETSPHINX:
        return PocketsphinxRecogniser()
    from worker.engines.whisper_asr import WhisperRecogniser

    return WhisperRecogniser.load(
        settings.qc_whisper_model, device=settings.qc_whisper_device, cache_dir=settings.hf_cache_dir
    )
