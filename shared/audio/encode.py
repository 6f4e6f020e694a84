"""Encode the finished narration: WAV, FLAC, MP3, Opus, Ogg Vorbis and M4B audiobooks.

libsndfile (through soundfile) writes WAV (16-bit PCM), FLAC, Ogg Opus and Ogg Vorbis; MP3 goes
through FFmpeg's LAME (PyAV) on two threads (see `_mp3_lame`). Bitrates suit mono speech: MP3 is
constant 64 kb/s (predictable size, exact seeking in every player), Opus about 32 kb/s, Vorbis about
64. Opus accepts only 8, 12, 16, 24 or 48 kHz: other rates are resampled to 48 kHz here (callers that
resample anyway go straight to `shared.audio.formats.file_rate`, so the audio is resampled once).
M4B is AAC (64 kb/s) in an MP4 container written by PyAV's bundled FFmpeg, with chapter markers
(QuickTime and Nero style, read by Apple Books and most players).

Tags and chapters: `metadata` keys title, artist, album, comment, date, genre, copyright, license,
tracknumber work in every format; FLAC, Opus and MP3 also take free-form keys. `chapters` are
`(start_seconds, title)` pairs, each ending where the next starts: MP3 gets ID3 CHAP/CTOC frames, FLAC
and Opus Vorbis-comment CHAPTERnnn entries, M4B MP4 chapters. WAV has no chapter convention, so WAV
files carry none.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from itertools import pairwise
from typing import Any

import av
import numpy as np
import soundfile as sf
import soxr
from mutagen import id3
from mutagen.flac import FLAC, Picture
from mutagen.mp4 import MP4, MP4Cover
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis

from shared.audio.formats import FILE_TAGS, AudioFormat, file_rate
from shared.audio.levels import as_mono_float32
from shared.audio.pcm import ArraySamples, Samples
from shared.audio.resample import resample

MP3_KBPS = 64
AAC_KBPS = 64
OPUS_COMPRESSION_LEVEL = 0.9
"""libsndfile's 0..1 scale; 0.9 gives about 32 kb/s, transparent for speech."""
VORBIS_COMPRESSION_LEVEL = 0.6
"""libsndfile's 0..1 scale (0 = best quality); 0.6 is about Vorbis quality 4, some 64 kb/s for mono speech."""

FORMATS: tuple[str, ...] = tuple(fmt.value for fmt in AudioFormat)

SNDFILE_TAGS = (*FILE_TAGS, "license", "tracknumber")
"""Tag names libsndfile writes into WAV (its string fields)."""
_ID3_FRAMES = {
    "title": id3.TIT2,
    "artist": id3.TPE1,
    "album": id3.TALB,
    "date": id3.TDRC,
    "genre": id3.TCON,
    "copyright": id3.TCOP,
    "tracknumber": id3.TRCK,
    "album_artist": id3.TPE2,
    "composer": id3.TCOM,
}
_MP4_TAGS = {"album_artist": "aART", "composer": "\xa9wrt"}
"""Tags FFmpeg's ipod muxer would drop without `use_metadata_tags`; mutagen writes them as MP4 atoms."""

Chapters = Sequence[tuple[float, str]]
Spans = list[tuple[float, float, str]]


def content_type(fmt: str) -> str:
    return _check(fmt).content_type


def extension(fmt: str) -> str:
    return _check(fmt).extension


def encode(
    audio: np.ndarray,
    sr: int,
    fmt: str,
    *,
    chapters: Chapters | None = None,
    metadata: Mapping[str, str] | None = None,
    bitrate_kbps: int | None = None,
    cover: tuple[bytes, str] | None = None,
) -> bytes:
    """The whole file as bytes (one hour of 64 kb/s MP3 is about 29 MB). `bitrate_kbps` sets MP3's and
    M4B's constant bitrate (default 64); `cover` is `(image bytes, media type)`, written as the file's
    picture (MP3 APIC, M4B covr, FLAC and Opus picture block; WAV carries none)."""
    audio = as_mono_float32(audio)
    fmt = _check(fmt)
    duration = audio.shape[0] / sr
    spans = _chapter_spans(chapters or (), duration)
    metadata = dict(metadata or {})
    if fmt == "wav":
        unknown = set(metadata) - set(SNDFILE_TAGS)
        if unknown:
            raise ValueError(f"WAV cannot carry tags {sorted(unknown)}; supported: {SNDFILE_TAGS}")
        return _soundfile(audio, sr, format="WAV", subtype="PCM_16", tags=metadata)
    if fmt == "flac":
        data = _soundfile(audio, sr, format="FLAC", subtype="PCM_16")
        return _vorbis_comments(FLAC, data, metadata, spans, cover)
    if fmt == "mp3":
        return _id3(_mp3_lame(audio, sr, bitrate_kbps or MP3_KBPS), metadata, spans, cover)
    if fmt == "opus":
        rate = file_rate(fmt, sr)
        data = _soundfile(
            resample(audio, sr, rate),
            rate,
            format="OGG",
            subtype="OPUS",
            compression_level=OPUS_COMPRESSION_LEVEL,
        )
        return _vorbis_comments(OggOpus, data, metadata, spans, cover)
    if fmt == "ogg":
        data = _soundfile(audio, sr, format="OGG", subtype="VORBIS", compression_level=VORBIS_COMPRESSION_LEVEL)
        return _vorbis_comments(OggVorbis, data, metadata, spans, cover)
    return _m4b(audio, sr, metadata, spans, bitrate_kbps or AAC_KBPS, cover)


MP3_LAME_QUALITY = "7"
"""LAME's algorithm quality (0 best .. 9 fastest) through FFmpeg: at a fixed 64 kb/s for speech, 7 is
about 1.5-2x faster than libsndfile's fixed setting with no audible difference; encoding is the
largest step of a job outside synthesis."""


_MP3_BLOCK = 1152 * 256  # samples per block fed to the encoder
MP3_PARALLEL_MIN_SECONDS = 30.0
"""From this length on, the two halves are encoded on two threads (see `_mp3_lame`)."""
_MP3_OVERLAP_FRAMES = 8


_LAME_OPTIONS = {"compression_level": MP3_LAME_QUALITY, "reservoir": "0"}
"""Without the bit reservoir every frame stands alone, which lets halves be encoded separately; at a
constant 64 kb/s for speech it costs nothing audible."""


def _encode_blocks(
    encode: Callable[[av.AudioFrame | None], list[av.Packet]], audio: np.ndarray, sr: int
) -> list[av.Packet]:
    """All packets of `audio`, fed in blocks (one frame for a whole hour would hold copies of it)."""
    packets = []
    for start in range(0, len(audio), _MP3_BLOCK):
        block = np.ascontiguousarray(audio[start : start + _MP3_BLOCK]).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
        frame.sample_rate = sr
        frame.pts = start
        packets += encode(frame)
    return packets + encode(None)


def _lame_packets(audio: np.ndarray, sr: int, kbps: int) -> list[av.Packet]:
    codec = av.CodecContext.create("libmp3lame", "w")
    codec.sample_rate = sr
    codec.layout = "mono"
    codec.format = "fltp"
    codec.bit_rate = kbps * 1000
    codec.options = dict(_LAME_OPTIONS)
    return _encode_blocks(codec.encode, audio, sr)


def _mp3_lame(audio: np.ndarray, sr: int, kbps: int = MP3_KBPS) -> bytes:
    """CBR MP3 with its Info header (length, encoder delay and padding, so decoders trim exactly).

    Encoding is the largest step of a job outside synthesis and LAME is single-threaded, so longer audio
    is cut in two at a frame boundary and the halves are encoded at once. Encoder frame j always covers
    the same input offset, so each half is encoded with a few frames of the other beside it (the MDCT's
    history and look-ahead) and those frames are dropped. With the bit reservoir off the joined stream
    decodes to exactly as many samples as one continuous encoding (the Info header's delay and padding
    are right), to the same samples for steady signals such as a tone, and, for speech, to the same
    samples except in a few frames after the split (LAME's psychoacoustic state reaches further back
    than the overlap): on a speech-like signal under 1 % of the frames differ, each by less than the
    coding error itself (tests check both).
    """
    parallel = len(audio) >= MP3_PARALLEL_MIN_SECONDS * sr
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=sr, layout="mono", options=dict(_LAME_OPTIONS))
        stream.bit_rate = kbps * 1000
        if not parallel:
            packets = _encode_blocks(stream.encode, audio, sr)
        else:
            size = 576 if sr <= 24000 else 1152  # samples per MPEG-2 / MPEG-1 layer III frame
            split = len(audio) // 2 // size * size
            overlap = _MP3_OVERLAP_FRAMES * size
            with ThreadPoolExecutor(max_workers=1) as pool:
                later = pool.submit(_lame_packets, audio[split - overlap :], sr, kbps)
                packets = _encode_blocks(stream.encode, audio[: split + overlap], sr)[: split // size]
                second = later.result()[_MP3_OVERLAP_FRAMES:]
            for packet in second:  # keeps its side data: the last one tells the muxer the end padding
                packet.stream = stream
                assert packet.pts is not None  # the encoder stamps every packet
                packet.pts += split - overlap
                packet.dts = packet.pts
            packets += second
        for packet in packets:
            container.mux(packet)
    return buffer.getvalue()


def _check(fmt: str) -> AudioFormat:
    if fmt not in FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; supported: {', '.join(FORMATS)}")
    return AudioFormat(fmt)


def _chapter_spans(chapters: Chapters, duration: float) -> Spans:
    """(start, end, title) with each end at the next start; starts must rise within the audio."""
    starts = [float(start) for start, _ in chapters]
    if not starts:
        return []
    if any(b <= a for a, b in pairwise(starts)) or any(not 0 <= s < max(duration, 1e-9) for s in starts):
        raise ValueError("chapter starts must be increasing and inside the audio")
    ends = [*starts[1:], duration]
    return [(start, end, str(title)) for (start, title), end in zip(chapters, ends, strict=True)]


def _soundfile(audio: np.ndarray, sr: int, *, tags: Mapping[str, str] | None = None, **options: Any) -> bytes:
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", samplerate=sr, channels=1, **options) as f:
        for key, value in (tags or {}).items():
            setattr(f, key, value)
        # Write in slices: libsndfile would otherwise convert the whole hour to its format at once.
        for begin in range(0, audio.shape[0], 1 << 20):
            f.write(audio[begin : begin + (1 << 20)])
    return buffer.getvalue()


def _picture(cover: tuple[bytes, str]) -> Picture:
    picture = Picture()
    picture.type = 3  # front cover
    picture.mime = cover[1]
    picture.data = cover[0]
    return picture


def _fill_vorbis_comments(
    tagged: FLAC | OggOpus | OggVorbis, metadata: Mapping[str, str], spans: Spans, cover: tuple[bytes, str] | None
) -> None:
    """Tags, chapter marks (CHAPTERnnn / CHAPTERnnnNAME) and the cover as Vorbis comments."""
    if tagged.tags is None:
        tagged.add_tags()
    for key, value in metadata.items():
        tagged[key] = str(value)
    for number, (start, _, title) in enumerate(spans, start=1):
        tagged[f"CHAPTER{number:03d}"] = _hhmmss(start)
        tagged[f"CHAPTER{number:03d}NAME"] = title
    if cover is not None:
        if isinstance(tagged, FLAC):
            tagged.add_picture(_picture(cover))
        else:
            tagged["METADATA_BLOCK_PICTURE"] = base64.b64encode(_picture(cover).write()).decode()


def _vorbis_comments(
    kind: type[FLAC] | type[OggOpus] | type[OggVorbis],
    data: bytes,
    metadata: Mapping[str, str],
    spans: Spans,
    cover: tuple[bytes, str] | None = None,
) -> bytes:
    if not metadata and not spans and cover is None:
        return data
    buffer = io.BytesIO(data)
    tagged = kind(buffer)
    _fill_vorbis_comments(tagged, metadata, spans, cover)
    buffer.seek(0)
    tagged.save(buffer)
    return buffer.getvalue()


def _hhmmss(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}.{millis % 1000:03d}"


def _id3(data: bytes, metadata: Mapping[str, str], spans: Spans, cover: tuple[bytes, str] | None = None) -> bytes:
    if not metadata and not spans and cover is None:
        return data
    buffer = io.BytesIO(data)
    _id3_tags(metadata, spans, cover).save(buffer)
    return buffer.getvalue()


def _id3_tags(metadata: Mapping[str, str], spans: Spans, cover: tuple[bytes, str] | None) -> id3.ID3:
    tags = id3.ID3()
    for key, value in metadata.items():
        if key in _ID3_FRAMES:
            tags.add(_ID3_FRAMES[key](encoding=3, text=str(value)))
        elif key == "comment":
            tags.add(id3.COMM(encoding=3, lang="eng", desc="", text=str(value)))
        else:
            tags.add(id3.TXXX(encoding=3, desc=key, text=str(value)))
    if spans:
        ids = [f"chp{number}" for number in range(len(spans))]
        tags.add(
            id3.CTOC(element_id="toc", flags=id3.CTOCFlags.TOP_LEVEL | id3.CTOCFlags.ORDERED, child_element_ids=ids)
        )
        for element_id, (start, end, title) in zip(ids, spans, strict=True):
            tags.add(
                id3.CHAP(
                    element_id=element_id,
                    start_time=round(start * 1000),
                    end_time=round(end * 1000),
                    sub_frames=[id3.TIT2(encoding=3, text=title)],
                )
            )
    if cover is not None:
        tags.add(id3.APIC(encoding=3, mime=cover[1], type=id3.PictureType.COVER_FRONT, desc="Cover", data=cover[0]))
    return tags


def _m4b(
    audio: np.ndarray,
    sr: int,
    metadata: Mapping[str, str],
    spans: Spans,
    kbps: int = AAC_KBPS,
    cover: tuple[bytes, str] | None = None,
) -> bytes:
    """AAC in MP4 via PyAV; written to a temporary file so `faststart` can move the index to the front."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "out.m4b")
        _m4b_file(ArraySamples(audio), sr, metadata, spans, kbps, cover, path)
        with open(path, "rb") as f:
            return f.read()


def _m4b_file(
    samples: Samples,
    sr: int,
    metadata: Mapping[str, str],
    spans: Spans,
    kbps: int,
    cover: tuple[bytes, str] | None,
    path: str,
) -> None:
    """The M4B at `path`. The cover and the tags FFmpeg's muxer drops are added by mutagen, which
    moves the chunk offsets."""
    with av.open(path, "w", format="ipod", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("aac", rate=sr, layout="mono")
        stream.bit_rate = kbps * 1000
        for key, value in metadata.items():
            if key not in _MP4_TAGS:
                container.metadata[key] = str(value)
        container.set_chapters(
            [
                {
                    "id": number,
                    "start": round(start * 1000),
                    "end": round(end * 1000),
                    "time_base": Fraction(1, 1000),
                    "metadata": {"title": title},
                }
                for number, (start, end, title) in enumerate(spans, start=1)
            ]
        )
        _encode_stream(container, stream, samples, sr, 1 << 16)
    extra = {atom: str(metadata[key]) for key, atom in _MP4_TAGS.items() if key in metadata}
    if extra or cover is not None:
        tagged = MP4(path)
        assert tagged.tags is not None  # FFmpeg wrote an ilst (at least the encoder tag)
        for atom, value in extra.items():
            tagged.tags[atom] = [value]
        if cover is not None:
            kind = MP4Cover.FORMAT_PNG if cover[1] == "image/png" else MP4Cover.FORMAT_JPEG
            tagged.tags["covr"] = [MP4Cover(cover[0], imageformat=kind)]
        tagged.save()


# --- streaming: from `Samples` (a PCM spill file) to a file on disk -------------------------------

STREAM_BLOCK = 1 << 18
"""Samples read and encoded at a time when encoding from `Samples`."""
IN_MEMORY_MAX_BYTES = 256 * 1024 * 1024
"""Audio up to this size (float32) is encoded from memory: MP3 then gets its two-thread encoding."""


def encode_to_file(
    samples: Samples,
    sr: int,
    fmt: str,
    path: str | os.PathLike[str],
    *,
    chapters: Chapters | None = None,
    metadata: Mapping[str, str] | None = None,
    bitrate_kbps: int | None = None,
    cover: tuple[bytes, str] | None = None,
) -> None:
    """`encode`, reading `samples` block by block and writing `path`: memory stays at a few blocks
    whatever the length (a 40-hour book). Short audio goes through `encode` (MP3's two threads)."""
    fmt = _check(fmt)
    total = len(samples)
    if total * 4 <= IN_MEMORY_MAX_BYTES:
        data = encode(
            samples.read(0, total),
            sr,
            fmt,
            chapters=chapters,
            metadata=metadata,
            bitrate_kbps=bitrate_kbps,
            cover=cover,
        )
        with open(path, "wb") as f:
            f.write(data)
        return
    spans = _chapter_spans(chapters or (), total / sr)
    metadata = dict(metadata or {})
    target = os.fspath(path)
    if fmt in ("wav", "flac", "opus", "ogg"):
        _soundfile_stream(samples, sr, fmt, target, metadata)
        if fmt != "wav":
            kind = {"flac": FLAC, "opus": OggOpus, "ogg": OggVorbis}[fmt]
            _vorbis_comments_file(kind, target, metadata, spans, cover)
        return
    if fmt == "mp3":
        with av.open(target, "w", format="mp3") as container:
            stream = container.add_stream("libmp3lame", rate=sr, layout="mono", options=dict(_LAME_OPTIONS))
            stream.bit_rate = (bitrate_kbps or MP3_KBPS) * 1000
            _encode_stream(container, stream, samples, sr, _MP3_BLOCK)
        if metadata or spans or cover is not None:
            tags = _id3_tags(metadata, spans, cover)
            tags.save(target)
        return
    _m4b_file(samples, sr, metadata, spans, bitrate_kbps or AAC_KBPS, cover, target)


def _encode_stream(container: Any, stream: Any, samples: Samples, sr: int, block: int) -> None:
    for start in range(0, len(samples), block):
        chunk = np.ascontiguousarray(samples.read(start, start + block)).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = sr
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _soundfile_stream(samples: Samples, sr: int, fmt: AudioFormat, path: str, metadata: Mapping[str, str]) -> None:
    if fmt == "wav":
        unknown = set(metadata) - set(SNDFILE_TAGS)
        if unknown:
            raise ValueError(f"WAV cannot carry tags {sorted(unknown)}; supported: {SNDFILE_TAGS}")
    rate = file_rate(fmt, sr)
    options: dict[str, Any] = {"format": "WAV", "subtype": "PCM_16"}
    if fmt == "flac":
        options = {"format": "FLAC", "subtype": "PCM_16"}
    elif fmt == "opus":
        options = {"format": "OGG", "subtype": "OPUS", "compression_level": OPUS_COMPRESSION_LEVEL}
    elif fmt == "ogg":
        options = {"format": "OGG", "subtype": "VORBIS", "compression_level": VORBIS_COMPRESSION_LEVEL}
    stream = soxr.ResampleStream(sr, rate, 1, dtype="float32", quality="HQ") if rate != sr else None
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, **options) as f:
        if fmt == "wav":
            for key, value in metadata.items():
                setattr(f, key, value)
        total = len(samples)
        for start in range(0, total, STREAM_BLOCK):
            block = samples.read(start, start + STREAM_BLOCK)
            if stream is not None:
                block = stream.resample_chunk(block, last=start + STREAM_BLOCK >= total)
            f.write(block)


def _vorbis_comments_file(
    kind: type[FLAC] | type[OggOpus] | type[OggVorbis],
    path: str,
    metadata: Mapping[str, str],
    spans: Spans,
    cover: tuple[bytes, str] | None,
) -> None:
    if not metadata and not spans and cover is None:
        return
    tagged = kind(path)
    _fill_vorbis_comments(tagged, metadata, spans, cover)
    tagged.save()
