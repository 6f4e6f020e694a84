"""The OpenAI-compatible speech request (`POST /v1/audio/speech`): its body, formats, voices and models.

OpenAI's `response_format` is a concept of its own (it has `aac` and raw `pcm`, no `m4b`), so it has
its own enum; the job underneath is always rendered as lossless FLAC and converted once, at 24 kHz as
OpenAI's audio is, after the speed change.
"""

from __future__ import annotations

import io
from enum import StrEnum
from typing import Any

import av
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.audio.encode import encode
from shared.audio.resample import resample
from shared.audio.tempo import MAX_SPEED, MIN_SPEED, change_speed

MAX_INPUT_CHARS = 4096
"""OpenAI's limit for one request; longer text goes to `POST /v1/jobs`."""
SPEECH_RATE = 24000
"""Sample rate of every response (OpenAI's `pcm` is 24 kHz 16-bit mono little endian)."""

OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse", "marin", "cedar",
)  # fmt: skip
"""OpenAI's voice names. Each is spoken by the engine's default voice unless the tenant or the engine has a
voice of that very id (a cloned voice named `nova` is used as `nova`)."""

MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
"""Model names OpenAI clients send; all of them run the configured engine (whose name is a model too)."""


class SpeechFormat(StrEnum):
    MP3 = "mp3"
    OPUS = "opus"
    AAC = "aac"
    FLAC = "flac"
    WAV = "wav"
    PCM = "pcm"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]


_CONTENT_TYPES = {
    SpeechFormat.MP3: "audio/mpeg",
    SpeechFormat.OPUS: "audio/ogg",
    SpeechFormat.AAC: "audio/aac",
    SpeechFormat.FLAC: "audio/flac",
    SpeechFormat.WAV: "audio/wav",
    SpeechFormat.PCM: "audio/pcm",
}


class StreamFormat(StrEnum):
    AUDIO = "audio"
    SSE = "sse"


class SpeechCreate(BaseModel):
    """Body of `POST /v1/audio/speech` as OpenAI defines it, plus the documented extension `seed`."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., min_length=1, max_length=64)
    input: str = Field(
        ..., min_length=1, max_length=MAX_INPUT_CHARS, description="Text to speak; longer text: POST /v1/jobs."
    )
    voice: str = Field(
        ..., min_length=1, max_length=400,
        description="A voice id (built-in or cloned) or an OpenAI voice name (spoken by the engine's default "
        "voice unless a voice of that id exists).",
    )  # fmt: skip
    response_format: SpeechFormat = SpeechFormat.MP3
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED, description="Applied by time-stretching (pitch kept).")
    instructions: str | None = Field(
        None, max_length=MAX_INPUT_CHARS, description="Accepted for compatibility and ignored: no engine here "
        "takes style prompts.",
    )  # fmt: skip
    stream_format: StreamFormat = StreamFormat.AUDIO
    seed: int | None = Field(None, ge=0, lt=2**32, description="Extension: same seed and text, same audio.")

    @field_validator("response_format", mode="before")
    @classmethod
    def _known_format(cls, value: Any) -> Any:
        if value not in [fmt.value for fmt in SpeechFormat]:
            raise ValueError(f"response_format must be one of {', '.join(SpeechFormat)}")
        return value

    @field_validator("stream_format", mode="before")
    @classmethod
    def _known_stream_format(cls, value: Any) -> Any:
        if value not in [fmt.value for fmt in StreamFormat]:
            raise ValueError(f"stream_format must be one of {', '.join(StreamFormat)}")
        return value


def render(audio: np.ndarray, sr: int, fmt: SpeechFormat, speed: float) -> bytes:
    """The response body for the whole of `audio`: speed changed, at 24 kHz, in `fmt`."""
    audio = resample(change_speed(audio, sr, speed), sr, SPEECH_RATE)
    if fmt == SpeechFormat.PCM:
        return pcm16(audio)
    if fmt == SpeechFormat.AAC:
        return _adts(audio, SPEECH_RATE)
    return encode(audio, SPEECH_RATE, fmt.value)


def pcm16(audio: np.ndarray) -> bytes:
    """Signed 16-bit little-endian samples."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def _adts(audio: np.ndarray, sr: int) -> bytes:
    """AAC-LC in ADTS frames (what OpenAI's `aac` is): each frame stands alone, so it also streams."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="adts") as container:
        stream = container.add_stream("aac", rate=sr, layout="mono")
        stream.bit_rate = 64000
        samples = np.ascontiguousarray(audio, np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = sr
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
