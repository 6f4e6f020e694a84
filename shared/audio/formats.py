"""The output formats a job may ask for, and what each means on disk: one enum for the job model, the
encoder, the API document and the CLI.

Standard library only, so the CLI can use it without pulling in the audio stack.
"""

from __future__ import annotations

from enum import StrEnum


class AudioFormat(StrEnum):
    WAV = "wav"
    FLAC = "flac"
    MP3 = "mp3"
    OPUS = "opus"
    OGG = "ogg"
    """Ogg Vorbis (game engines read it natively; any sample rate)."""
    M4B = "m4b"
    """AAC in MP4 with chapter marks (audiobooks)."""

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]

    @property
    def extension(self) -> str:
        return self.value


_CONTENT_TYPES = {
    AudioFormat.WAV: "audio/wav",
    AudioFormat.FLAC: "audio/flac",
    AudioFormat.MP3: "audio/mpeg",
    AudioFormat.OPUS: "audio/ogg",
    AudioFormat.OGG: "audio/ogg",
    AudioFormat.M4B: "audio/mp4",
}

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
"""The only sample rates Opus encodes; other audio is resampled to 48 kHz."""

FILE_TAGS = ("title", "artist", "album", "comment", "date", "genre", "copyright")
"""Job metadata keys written as tags into the audio file (every format carries these)."""


def file_rate(fmt: AudioFormat | str, sample_rate: int) -> int:
    """The sample rate a file of `fmt` has for audio at `sample_rate` (Opus: one of `OPUS_RATES`), so
    the caller resamples once, straight to it."""
    if AudioFormat(fmt) == AudioFormat.OPUS and sample_rate not in OPUS_RATES:
        return 48000
    return sample_rate
