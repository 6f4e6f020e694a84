"""Decode uploaded audio (voice-cloning reference clips) by its content, never its file name.

libsndfile reads WAV, FLAC, MP3 and Ogg (Vorbis/Opus) and recognises them by their bytes. Containers
it does not know (M4A/AAC from phones, WebM from browsers) are tried with PyAV.
A truncated upload must fail loudly rather than clone a voice from half a clip, so the decoders'
own hints are checked: a WAV data chunk longer than the file, fewer frames than the header
promised, an Ogg stream without its end-of-stream page.
"""

from __future__ import annotations

import io
import re

import numpy as np
import soundfile as sf


class AudioDecodeError(ValueError):
    """The bytes are not audio this service can read, or the file is cut short."""


# Streaming writers leave these placeholders as WAV data size; they do not mean truncation.
_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}
_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be", re.MULTILINE)


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """(mono float32 samples, sample rate); channels are averaged."""
    if not data:
        raise AudioDecodeError("empty upload")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            declared, sr, container, info = f.frames, f.samplerate, f.format, f.extra_info
            samples = f.read(dtype="float32", always_2d=True)
    except sf.LibsndfileError as error:
        if "not recognised" not in str(error).lower():
            raise AudioDecodeError(f"corrupt or truncated audio: {_reason(error)}") from error
        samples, sr = _decode_with_av(data)
    else:
        _check_complete(data, container, declared, samples.shape[0], info)
    if samples.shape[0] == 0:
        raise AudioDecodeError("the file contains no audio samples")
    return samples.mean(axis=1, dtype=np.float32), int(sr)


def _reason(error: sf.LibsndfileError) -> str:
    return error.error_string if getattr(error, "error_string", None) else str(error)


def _check_complete(data: bytes, container: str, declared: int, read: int, info: str) -> None:
    match = _WAV_DATA_SIZE.search(info)
    if match and int(match.group(1)) not in _STREAMING_SIZES:
        raise AudioDecodeError(f"truncated {container} file: the data chunk is longer than the file")
    if 0 < read < declared:
        raise AudioDecodeError(f"truncated {container} file: {read} of {declared} samples present")
    if container == "OGG":
        last_page = data.rfind(b"OggS")
        if last_page < 0 or len(data) < last_page + 6 or not data[last_page + 5] & 0x04:
            raise AudioDecodeError("truncated Ogg file: the end-of-stream page is missing")


def _decode_with_av(data: bytes) -> tuple[np.ndarray, int]:
    import av  # only here: most uploads never need it, and the API starts faster without it
    from av.error import FFmpegError

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError("the file has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono")
            pieces = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1))
            sr = stream.codec_context.sample_rate
    except FFmpegError as error:
        raise AudioDecodeError(f"not readable audio: {error}") from error
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return samples.astype(np.float32, copy=False)[:, None], sr
