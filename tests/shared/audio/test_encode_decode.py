import io

import av
import mutagen
import numpy as np
import pytest
import soundfile as sf

from shared.audio.decode import AudioDecodeError, decode_audio
from shared.audio.encode import FORMATS, content_type, encode, extension
from tests.shared.audio.signals import speechlike, tone

SR = 22050
AUDIO = speechlike(6.0, SR, seed=4)
CHAPTERS = [(0.0, "Chapter One"), (2.5, "Chapter Two")]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _decode_av(data: bytes) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
        return samples, stream.codec_context.sample_rate


def test_m4b_is_offered():
    assert set(FORMATS) == {"wav", "flac", "mp3", "opus", "ogg", "m4b"}


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_lossless_formats_round_trip(fmt):
    data = encode(AUDIO, SR, fmt)
    decoded, sr = decode_audio(data)
    assert sr == SR and decoded.shape == AUDIO.shape
    assert np.max(np.abs(decoded - AUDIO)) < 1.5 / 32768  # 16-bit quantisation only
    assert np.corrcoef(decoded, AUDIO)[0, 1] > 0.99999


@pytest.mark.parametrize(("fmt", "rate"), [("mp3", SR), ("opus", 48000), ("ogg", SR)])
def test_lossy_formats_decode_to_the_same_duration_and_level(fmt, rate):
    data = encode(AUDIO, SR, fmt)
    decoded, sr = decode_audio(data)
    assert sr == rate
    assert decoded.shape[0] / sr == pytest.approx(6.0, abs=0.03)
    assert _rms(decoded) == pytest.approx(_rms(AUDIO), rel=0.1)


def test_speech_bitrates_are_modest():
    seconds = AUDIO.shape[0] / SR
    assert len(encode(AUDIO, SR, "mp3")) * 8 / seconds / 1000 == pytest.approx(64, abs=6)
    assert len(encode(AUDIO, SR, "opus")) * 8 / seconds / 1000 < 48


def test_ogg_vorbis_carries_tags_and_chapters_in_the_file_and_in_memory(tmp_path, monkeypatch):
    from mutagen.oggvorbis import OggVorbis

    from shared.audio import encode as encode_module
    from shared.audio.encode import encode_to_file
    from shared.audio.pcm import ArraySamples

    monkeypatch.setattr(encode_module, "IN_MEMORY_MAX_BYTES", 0)  # the block-by-block path of long files
    data = encode(AUDIO, SR, "ogg", chapters=CHAPTERS, metadata={"title": "Line"})
    tags = OggVorbis(io.BytesIO(data))
    assert tags["title"] == ["Line"] and tags["CHAPTER002NAME"] == ["Chapter Two"]
    path = tmp_path / "line.ogg"
    encode_to_file(ArraySamples(np.tile(AUDIO, 40)), SR, "ogg", path, metadata={"title": "Long"})  # block by block
    decoded, sr = decode_audio(path.read_bytes())
    assert sr == SR and decoded.shape[0] == AUDIO.shape[0] * 40
    assert OggVorbis(path)["title"] == ["Long"]


def test_opus_keeps_rates_opus_supports():
    decoded, sr = decode_audio(encode(tone(1.0, 24000), 24000, "opus"))
    assert sr == 24000 and decoded.shape[0] == 24000


def test_m4b_is_aac_with_chapters_and_tags():
    data = encode(AUDIO, SR, "m4b", chapters=CHAPTERS, metadata={"title": "A Book", "artist": "Narrator"})
    decoded, sr = _decode_av(data)
    assert sr == SR
    assert decoded.shape[0] / sr == pytest.approx(6.0, abs=0.1)  # plus AAC priming frames
    assert _rms(decoded) == pytest.approx(_rms(AUDIO), rel=0.1)
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        chapters = container.chapters()
        assert container.metadata["title"] == "A Book"
    assert [(c["start"] * c["time_base"], c["metadata"]["title"]) for c in chapters] == [
        (0, "Chapter One"),
        (2.5, "Chapter Two"),
    ]
    assert float(chapters[-1]["end"] * chapters[-1]["time_base"]) == pytest.approx(6.0)
    # Through our own decoder too (PyAV fallback for containers libsndfile does not read).
    ours, rate = decode_audio(data)
    assert rate == SR and ours.shape[0] / rate == pytest.approx(6.0, abs=0.1)


def test_mp3_carries_id3_chapters_and_tags():
    data = encode(AUDIO, SR, "mp3", chapters=CHAPTERS, metadata={"title": "A Book", "narrator": "N"})
    tags = mutagen.File(io.BytesIO(data)).tags
    assert str(tags["TIT2"]) == "A Book" and str(tags["TXXX:narrator"]) == "N"
    chaps = sorted(tags.getall("CHAP"), key=lambda c: c.start_time)
    assert [(c.start_time, c.end_time, str(c.sub_frames["TIT2"])) for c in chaps] == [
        (0, 2500, "Chapter One"),
        (2500, 6000, "Chapter Two"),
    ]
    assert decode_audio(data)[0].shape[0] == AUDIO.shape[0]  # tags do not disturb decoding


@pytest.mark.parametrize("fmt", ["flac", "opus"])
def test_vorbis_comment_chapters_and_tags(fmt):
    data = encode(AUDIO, SR, fmt, chapters=CHAPTERS, metadata={"title": "A Book"})
    tags = mutagen.File(io.BytesIO(data))
    assert tags["title"] == ["A Book"]
    assert tags["CHAPTER002"] == ["00:00:02.500"] and tags["CHAPTER002NAME"] == ["Chapter Two"]


def test_wav_tags_and_unsupported_ones():
    data = encode(AUDIO, SR, "wav", metadata={"title": "A Book"})
    with sf.SoundFile(io.BytesIO(data)) as f:
        assert f.title == "A Book"
    with pytest.raises(ValueError, match="WAV cannot carry"):
        encode(AUDIO, SR, "wav", metadata={"narrator": "x"})


def test_bad_chapters_and_formats_are_rejected():
    with pytest.raises(ValueError):
        encode(AUDIO, SR, "mp3", chapters=[(3.0, "b"), (1.0, "a")])
    with pytest.raises(ValueError):
        encode(AUDIO, SR, "mp3", chapters=[(0.0, "a"), (60.0, "beyond the end")])
    with pytest.raises(ValueError, match="unsupported format"):
        encode(AUDIO, SR, "aiff")


def test_content_types_and_extensions():
    assert [content_type(f) for f in FORMATS] == [
        "audio/wav",
        "audio/flac",
        "audio/mpeg",
        "audio/ogg",
        "audio/ogg",
        "audio/mp4",
    ]
    assert [extension(f) for f in FORMATS] == ["wav", "flac", "mp3", "opus", "ogg", "m4b"]


def test_decode_detects_format_by_content_and_mixes_to_mono():
    stereo = np.stack([tone(1.0, 16000, amp=0.4), np.zeros(16000, dtype=np.float32)], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, stereo, 16000, format="FLAC")
    decoded, sr = decode_audio(buffer.getvalue())
    assert sr == 16000 and decoded.ndim == 1 and decoded.dtype == np.float32
    np.testing.assert_allclose(decoded, stereo.mean(axis=1), atol=1e-4)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus"])
def test_truncated_uploads_raise(fmt):
    data = encode(speechlike(3.0, SR), SR, fmt)
    with pytest.raises(AudioDecodeError):
        decode_audio(data[: len(data) // 2])


@pytest.mark.parametrize("data", [b"", b"hello world" * 50, b"\x00" * 4096, b"RIFF\x00\x00WAVE", b"%PDF-1.7\n" * 30])
def test_non_audio_raises(data):
    with pytest.raises(AudioDecodeError):
        decode_audio(data)


def test_long_mp3_is_encoded_in_halves_that_decode_exactly_like_one_continuous_encoding(monkeypatch):
    from shared.audio import encode as encode_module

    sr = 22050
    t = np.arange(int(sr * (encode_module.MP3_PARALLEL_MIN_SECONDS + 7.3))) / sr
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)
    joined, rate = decode_audio(encode(audio, sr, "mp3"))
    monkeypatch.setattr(encode_module, "MP3_PARALLEL_MIN_SECONDS", float("inf"))
    continuous, _ = decode_audio(encode(audio, sr, "mp3"))
    assert rate == sr and len(joined) == len(continuous) == len(audio)  # Info header: delay and padding right
    assert np.abs(joined - continuous).max() < 1e-5


def test_long_mp3_halves_decode_like_one_encoding_of_speech_but_for_a_few_frames_within_the_coding_error(monkeypatch):
    """On speech LAME's state reaches past the overlap: a few frames after the split differ, by less than
    the coding error itself (the bound the encoder's docstring states)."""
    from shared.audio import encode as encode_module

    sr = 22050
    audio = speechlike(encode_module.MP3_PARALLEL_MIN_SECONDS + 7.3, sr, seed=2)
    joined, rate = decode_audio(encode(audio, sr, "mp3"))
    monkeypatch.setattr(encode_module, "MP3_PARALLEL_MIN_SECONDS", float("inf"))
    continuous, _ = decode_audio(encode(audio, sr, "mp3"))
    assert rate == sr and len(joined) == len(continuous) == len(audio)
    frame = 576  # samples per MPEG-2 layer III frame
    frames = len(audio) // frame
    differ = np.abs(joined - continuous)[: frames * frame].reshape(frames, frame).max(axis=1) > 1e-5
    assert differ.sum() <= 0.01 * frames
    coding_error = continuous - audio
    assert np.abs(joined - continuous).max() < np.abs(coding_error).max()
    assert _rms(joined - continuous) < 0.1 * _rms(coding_error)
