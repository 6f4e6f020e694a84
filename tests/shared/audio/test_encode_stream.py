"""Encoding from a PCM spill file block by block (`encode_to_file`), the path of files too long for
memory: every format decodes to the same audio as the in-memory encoder's and keeps tags, chapters and
cover; PcmFile gives back exactly what was appended."""

from __future__ import annotations

import io

import av
import mutagen
import numpy as np
import pytest

from shared.audio import encode as encode_module
from shared.audio.decode import decode_audio
from shared.audio.encode import encode_to_file
from shared.audio.pcm import PcmFile
from tests.shared.audio.signals import speechlike

SR = 22050
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def test_a_pcm_file_returns_what_was_appended_in_any_range():
    pcm = PcmFile()
    parts = [speechlike(1.0, SR, seed=seed) for seed in range(3)]
    for part in parts:
        pcm.append(part)
    whole = np.concatenate(parts)
    assert len(pcm) == whole.shape[0]
    assert np.array_equal(pcm.to_array(), whole)
    assert np.array_equal(pcm.read(1000, 30000), whole[1000:30000])
    assert pcm.read(len(pcm), len(pcm) + 5).shape == (0,)
    pcm.close()


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus", "m4b"])
def test_streamed_encoding_matches_the_in_memory_encoder(fmt, tmp_path, monkeypatch):
    monkeypatch.setattr(encode_module, "IN_MEMORY_MAX_BYTES", 0)  # force the block-by-block path
    monkeypatch.setattr(encode_module, "STREAM_BLOCK", 5000)
    audio = speechlike(6.0, SR, amp=0.3)
    pcm = PcmFile()
    pcm.append(audio[:40000])
    pcm.append(audio[40000:])
    path = tmp_path / f"out.{fmt}"
    chapters = [(0.0, "One"), (3.0, "Two")]
    tags = {"title": "Book"} if fmt == "wav" else {"title": "Book", "album": "Album"}
    cover = None if fmt == "wav" else (PNG, "image/png")
    encode_to_file(pcm, SR, fmt, path, chapters=None if fmt == "wav" else chapters, metadata=tags, cover=cover)
    data = path.read_bytes()
    streamed, rate = decode_audio(data)
    reference, reference_rate = decode_audio(
        encode_module.encode(audio, SR, fmt, chapters=None if fmt == "wav" else chapters, metadata=tags)
    )
    assert rate == reference_rate
    assert len(streamed) / rate == pytest.approx(len(reference) / reference_rate, abs=0.03)
    if fmt in ("wav", "flac"):
        assert np.array_equal(streamed, reference)
    else:  # lossy: same level, same length
        assert np.sqrt(np.mean(streamed**2)) == pytest.approx(np.sqrt(np.mean(reference**2)), rel=0.05)
    assert mutagen.File(io.BytesIO(data)) is not None
    if fmt == "m4b":
        with av.open(io.BytesIO(data)) as container:
            assert [c["metadata"]["title"] for c in container.chapters()] == ["One", "Two"]
        assert bytes(mutagen.File(io.BytesIO(data)).tags["covr"][0]) == PNG
    if fmt == "mp3":
        id3 = mutagen.File(io.BytesIO(data)).tags
        assert [str(f.sub_frames["TIT2"]) for f in id3.getall("CHAP")] == ["One", "Two"]
        assert id3.getall("APIC")[0].data == PNG
    if fmt in ("flac", "opus"):
        tagged = mutagen.File(io.BytesIO(data))
        assert tagged["CHAPTER002NAME"] == ["Two"] and tagged["title"] == ["Book"]
