"""The pieces of a streamed speech answer: the Redis channel between worker and API, the level they are
brought to, and the encoder that joins pieces without a seam."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import redis

from shared.audio.loudness import integrated_loudness
from shared.audio.mastering import rms_dbfs
from shared.audio.presets import MasteringPreset, MasteringTargets, preset_targets
from shared.audio.resample import resample
from shared.audio.true_peak import true_peak_dbfs
from shared.speech import SPEECH_RATE, SpeechFormat, StreamEncoder, render
from shared.speech_stream import CHANNEL_SECONDS, MAX_STREAM_GAIN_DB, SpeechChannel, SpeechPiece, StreamLevel

RATE = 22050


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 560), 1))
    return (0.2 * envelope * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_pieces_streamed_as_pcm_are_the_samples_of_the_whole():
    """One resampler across pieces: the joins are where the whole file would have had the same samples."""
    audio = _speechlike(3.0)
    pieces = np.array_split(audio, 7)
    encoder = StreamEncoder(SpeechFormat.PCM, RATE, 1.0)
    streamed = b"".join([encoder.feed(piece) for piece in pieces] + [encoder.finish()])
    whole = np.frombuffer(render(audio, RATE, SpeechFormat.PCM, 1.0), "<i2").astype(np.float32)
    got = np.frombuffer(streamed, "<i2").astype(np.float32)
    assert abs(len(got) - len(whole)) <= 2
    n = min(len(got), len(whole))
    assert np.abs(got[:n] - whole[:n]).max() / 32767 < 0.01


@pytest.mark.parametrize("speed", [0.5, 2.0])
def test_a_streamed_time_stretch_has_the_length_of_the_whole_ones(speed):
    audio = _speechlike(4.0)
    encoder = StreamEncoder(SpeechFormat.PCM, RATE, speed)
    streamed = b"".join([encoder.feed(piece) for piece in np.array_split(audio, 5)] + [encoder.finish()])
    expected = len(resample(audio, RATE, SPEECH_RATE)) / speed
    assert len(streamed) / 2 == pytest.approx(expected, rel=0.03)


def test_the_wav_stream_starts_with_a_header_of_unknown_size():
    encoder = StreamEncoder(SpeechFormat.WAV, RATE, 1.0)
    first = encoder.feed(_speechlike(0.5))
    assert first[:4] == b"RIFF" and first[8:12] == b"WAVE"
    assert first[4:8] == b"\xff\xff\xff\xff" and first[40:44] == b"\xff\xff\xff\xff"
    assert int.from_bytes(first[24:28], "little") == SPEECH_RATE


def test_the_channel_carries_pieces_in_order_bounded_and_expiring(redis_url, key_prefix):
    client = redis.Redis.from_url(redis_url)
    channel = SpeechChannel(client, f"{key_prefix}-channel")
    assert not channel.is_open("job_a")
    channel.open("job_a")
    assert channel.is_open("job_a")
    audio = _speechlike(0.2)
    for index in (1, 0):
        channel.publish("job_a", SpeechPiece(index, audio, RATE, 250))
    last, pieces = channel.read("job_a", "0", block_ms=100)
    assert [p.index for p in pieces] == [1, 0]
    assert pieces[0].sample_rate == RATE and pieces[0].pause_ms == 250
    assert np.abs(pieces[0].audio - audio).max() < 1e-4  # 16-bit on the way
    assert 0 < client.ttl(f"{key_prefix}-channel:speech:job_a") <= CHANNEL_SECONDS
    assert channel.read("job_a", last, block_ms=50) == (last, [])
    channel.close("job_a")
    assert not channel.is_open("job_a")
    assert not client.exists(f"{key_prefix}-channel:speech:job_a")


def _targets(**overrides: float | None) -> MasteringTargets:
    base = preset_targets(MasteringPreset.DEFAULT, default_lufs=-19.0, default_peak_dbfs=-1.0)
    return dataclasses.replace(base, **overrides)


def test_the_stream_is_brought_to_the_jobs_level_by_one_gain_set_on_its_first_speech():
    quiet = _speechlike(2.0) * 0.3  # about -31 LUFS
    level = StreamLevel(RATE, _targets())
    assert np.array_equal(level(np.zeros(RATE // 2, np.float32)), np.zeros(RATE // 2))  # silence: no gain yet
    first = level(quiet)
    assert integrated_loudness(first, RATE) == pytest.approx(-19.0, abs=0.3)  # the job's target
    gain = level.gain
    later = [level(_speechlike(1.5, seed) * scale) for seed, scale in ((1, 0.05), (2, 0.2))]
    assert level.gain == gain  # held: a louder or softer later piece keeps the same gain, no step at a seam
    np.testing.assert_allclose(later[0], _speechlike(1.5, 1) * 0.05 * np.float32(gain), rtol=1e-5, atol=1e-6)
    assert integrated_loudness(later[0], RATE) < -19.0 - 5  # a softer passage stays softer, as in the file


def test_peaks_the_held_gain_raises_are_limited_and_an_almost_silent_start_sets_no_wild_gain():
    level = StreamLevel(RATE, _targets())
    level(_speechlike(1.0) * 0.05)
    loud = level(_speechlike(1.0, 3) * 0.9)
    assert true_peak_dbfs(loud) <= -1.0 + 0.05  # under the job's true-peak ceiling
    whisper = StreamLevel(RATE, _targets())
    whisper(_speechlike(1.0) * 0.01)  # about -61 LUFS: 42 dB under the target
    assert whisper.gain == pytest.approx(10 ** (MAX_STREAM_GAIN_DB / 20))
    hiss = StreamLevel(RATE, _targets())
    assert np.array_equal(hiss(_speechlike(1.0) * 1e-3), _speechlike(1.0) * 1e-3) and hiss.gain is None


def test_a_preset_that_aims_at_rms_sets_the_stream_by_rms():
    level = StreamLevel(RATE, _targets(loudness_lufs=None, rms_db=-20.0, true_peak_dbfs=-3.0))
    assert rms_dbfs(level(_speechlike(2.0) * 0.2)) == pytest.approx(-20.0, abs=0.3)
