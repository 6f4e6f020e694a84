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
import soxr
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.audio.encode import encode
from shared.audio.resample import resample
from shared.audio.tempo import MAX_SPEED, MIN_SPEED, Tempo, change_speed
from shared.voice_mix import MAX_MIX_CHARS

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


STREAMED_FORMATS = frozenset(
    {SpeechFormat.MP3, SpeechFormat.OPUS, SpeechFormat.AAC, SpeechFormat.WAV, SpeechFormat.PCM}
)
"""Formats answered as a stream as the audio is generated (a whole-file client reads to the end). FLAC is
answered whole: a FLAC stream of unknown length is valid, but common readers (libsndfile) refuse it."""


class StreamFormat(StrEnum):
    AUDIO = "audio"
    SSE = "sse"


class SpeechCreate(BaseModel):
    """Body of `POST /v1/audio/speech` as OpenAI defines it, plus the documented extensions `seed` and
    voice mixes."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., min_length=1, max_length=64)
    input: str = Field(
        ..., min_length=1, max_length=MAX_INPUT_CHARS, description="Text to speak; longer text: POST /v1/jobs."
    )
    voice: str = Field(
        ..., min_length=1, max_length=MAX_MIX_CHARS,
        description="A voice id (built-in or cloned), an OpenAI voice name (spoken by the engine's default "
        "voice unless a voice of that id exists), or (extension) a weighted mix of cloned voices, "
        "`ada(0.7)+ben(0.3)`, where the engine clones.",
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


class _Sink:
    """A write-only file for PyAV's muxer: what it writes is taken by the stream after each feed."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


_STREAM_CODECS = {
    SpeechFormat.MP3: ("mp3", "libmp3lame", {"write_xing": "0"}),  # no length header: it is not known yet
    SpeechFormat.AAC: ("adts", "aac", {}),
    SpeechFormat.OPUS: ("ogg", "libopus", {}),
    SpeechFormat.FLAC: ("flac", "flac", {}),
}
_WAV_UNKNOWN = 0xFFFFFFFF


def _streaming_wav_header(sr: int) -> bytes:
    """A 16-bit mono WAV header whose sizes say "unknown" (0xFFFFFFFF), as streaming writers do."""
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + sr.to_bytes(4, "little")
    fmt += (sr * 2).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    return (b"RIFF" + _WAV_UNKNOWN.to_bytes(4, "little") + b"WAVE" + b"fmt " + (16).to_bytes(4, "little") + fmt
            + b"data" + _WAV_UNKNOWN.to_bytes(4, "little"))  # fmt: skip


class StreamEncoder:
    """Pieces of audio in, encoded bytes out as they are ready: one time-stretch, one resampler and one
    encoder for the whole response, so there is no seam between pieces."""

    def __init__(self, fmt: SpeechFormat, sample_rate: int, speed: float) -> None:
        self.fmt = fmt
        self._tempo = Tempo(sample_rate, speed) if speed != 1.0 else None
        self._resampler = soxr.ResampleStream(sample_rate, SPEECH_RATE, 1, dtype="float32")
        self._header = _streaming_wav_header(SPEECH_RATE) if fmt == SpeechFormat.WAV else b""
        self._sink = _Sink()
        self._pts = 0
        self._container: Any = None
        if fmt in _STREAM_CODECS:
            muxer, codec, options = _STREAM_CODECS[fmt]
            self._container = av.open(self._sink, "w", format=muxer, container_options=options)
            self._stream = self._container.add_stream(codec, rate=SPEECH_RATE, layout="mono")
            if fmt != SpeechFormat.FLAC:
                self._stream.bit_rate = 64000

    def feed(self, audio: np.ndarray) -> bytes:
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if self._tempo is not None:
            audio = self._tempo.push(audio)
        return self._encode(self._resampler.resample_chunk(audio, last=False))

    def finish(self) -> bytes:
        tail = self._tempo.finish() if self._tempo is not None else np.zeros(0, np.float32)
        data = self._encode(self._resampler.resample_chunk(tail, last=True))
        if self._container is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            data += self._sink.take()
        return data

    def _encode(self, audio: np.ndarray) -> bytes:
        head, self._header = self._header, b""
        if self._container is None:  # wav and pcm: the samples themselves
            return head + pcm16(audio)
        if len(audio):
            frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = SPEECH_RATE
            frame.pts = self._pts
            self._pts += len(audio)
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        return self._sink.take()
