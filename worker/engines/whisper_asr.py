"""The Whisper recogniser of quality control (`NARRATE_QC_ASR=whisper`), through transformers.

Here, under `worker/engines/`, because it is the only quality-control code that touches torch. The
model is resolved in the local Hugging Face cache only (`local_files_only`): a worker never downloads
weights while it runs.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from shared.audio.resample import resample
from shared.settings import QcAsr
from worker.asr import ASR_RATE, Transcript, Word


class WhisperRecogniser:
    name = QcAsr.WHISPER

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._lock = threading.Lock()  # one pipeline, one call at a time

    @classmethod
    def load(cls, model: str, *, device: str = "cpu", cache_dir: str | None = None) -> WhisperRecogniser:
        """Raises `FileNotFoundError` naming the model when it is neither a directory nor in the cache."""
        import os

        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        path = model
        if not os.path.isdir(model):
            try:
                path = snapshot_download(model, cache_dir=cache_dir, local_files_only=True)
            except LocalEntryNotFoundError as exc:
                raise FileNotFoundError(
                    f"Whisper model {model!r} is not in the local cache; put it there first (it is never downloaded)"
                ) from exc
        from transformers import pipeline

        return cls(pipeline("automatic-speech-recognition", model=path, device=device))

    def transcribe(self, audio: np.ndarray, sr: int, expected: list[str]) -> Transcript:
        samples = resample(audio, sr, ASR_RATE) if sr != ASR_RATE else audio
        with self._lock:
            out = self._pipe({"raw": samples, "sampling_rate": ASR_RATE}, return_timestamps="word")
        words = []
        for piece in out.get("chunks", []):
            start, end = piece["timestamp"]
            for text in str(piece["text"]).split():
                words.append(Word(text, float(start or 0.0), float(end if end is not None else start or 0.0)))
        return Transcript(words)
