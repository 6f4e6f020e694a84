"""Mastering presets: the loudness, peak, room-tone and delivery targets a job's files are made to.

Standard library only (the job model and the API document use it; the DSP is `shared.audio.mastering`).
Each preset states the rules its files are checked against in the mastering report:

- `default`: the service's settings (`NARRATE_LOUDNESS_TARGET_LUFS`, `NARRATE_PEAK_DBFS`, now a true
  peak), no room tone.
- `acx` (Audible / ACX audiobook submission): RMS between -23 and -18 dB, true peak at most -3 dBFS,
  noise floor at most -60 dB, 0.5-1 s of room tone at the head and 1-5 s at the tail of every chapter,
  44.1 kHz, MP3 at 192 kb/s CBR.
- `podcast`: -16 LUFS integrated (Apple's and Spotify's recommendation) within 1 LU, -1 dBTP.
- `broadcast-ebu-r128`: -23 LUFS within 0.5 LU, -1 dBTP (EBU R128 / Tech 3341).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class MasteringPreset(StrEnum):
    DEFAULT = "default"
    ACX = "acx"
    PODCAST = "podcast"
    BROADCAST_EBU_R128 = "broadcast-ebu-r128"


@dataclass(frozen=True)
class MasteringTargets:
    """What one preset (or a job's explicit targets) asks of a file.

    Exactly one of `loudness_lufs` (integrated, BS.1770) and `rms_db` (plain RMS of the whole file, as
    ACX measures it) is the level the gain aims at; the `*_range` and `*_max` fields are the rules the
    report checks (None: not checked).
    """

    preset: MasteringPreset
    loudness_lufs: float | None
    rms_db: float | None
    true_peak_dbfs: float
    limiter_margin_db: float = 0.0
    """The limiter aims this far under `true_peak_dbfs`: lossy encoders add a little overshoot."""
    loudness_range_lufs: tuple[float, float] | None = None
    rms_range_db: tuple[float, float] | None = None
    noise_floor_max_db: float | None = None
    head_room_tone_s: float = 0.0
    tail_room_tone_s: float = 0.0
    head_range_s: tuple[float, float] | None = None
    tail_range_s: tuple[float, float] | None = None
    room_tone_db: float | None = None
    """RMS of the room-tone bed laid under each chapter (its silences are then not digital zero, which
    retailers reject as dead air); None: silence stays silent."""
    sample_rate: int | None = None
    """The rate the preset delivers at when the job names none."""
    bitrate_kbps: int | None = None
    """Constant bitrate of lossy files when the job names none."""


_ACX = MasteringTargets(
    MasteringPreset.ACX,
    loudness_lufs=None,
    rms_db=-20.0,
    true_peak_dbfs=-3.0,
    limiter_margin_db=0.5,
    rms_range_db=(-23.0, -18.0),
    noise_floor_max_db=-60.0,
    head_room_tone_s=0.75,
    tail_room_tone_s=2.5,
    head_range_s=(0.5, 1.0),
    tail_range_s=(1.0, 5.0),
    room_tone_db=-72.0,
    sample_rate=44100,
    bitrate_kbps=192,
)
_PODCAST = MasteringTargets(
    MasteringPreset.PODCAST,
    loudness_lufs=-16.0,
    rms_db=None,
    true_peak_dbfs=-1.0,
    limiter_margin_db=0.3,
    loudness_range_lufs=(-17.0, -15.0),
)
_BROADCAST = MasteringTargets(
    MasteringPreset.BROADCAST_EBU_R128,
    loudness_lufs=-23.0,
    rms_db=None,
    true_peak_dbfs=-1.0,
    limiter_margin_db=0.3,
    loudness_range_lufs=(-23.5, -22.5),
)


def preset_targets(preset: MasteringPreset, *, default_lufs: float, default_peak_dbfs: float) -> MasteringTargets:
    """The targets of `preset`; `default` takes the service's settings."""
    if preset is MasteringPreset.ACX:
        return _ACX
    if preset is MasteringPreset.PODCAST:
        return _PODCAST
    if preset is MasteringPreset.BROADCAST_EBU_R128:
        return _BROADCAST
    return MasteringTargets(
        MasteringPreset.DEFAULT, loudness_lufs=default_lufs, rms_db=None, true_peak_dbfs=default_peak_dbfs
    )


def with_overrides(
    targets: MasteringTargets,
    *,
    loudness_lufs: float | None = None,
    rms_db: float | None = None,
    true_peak_dbfs: float | None = None,
    head_room_tone_s: float | None = None,
    tail_room_tone_s: float | None = None,
) -> MasteringTargets:
    """A preset with a job's explicit targets in place of its own. A new level target replaces the
    preset's level rule by one around it (±1 LU, or the ACX window shifted with the RMS target)."""
    changed = targets
    if loudness_lufs is not None:
        rule = (loudness_lufs - 1.0, loudness_lufs + 1.0) if targets.loudness_range_lufs else None
        changed = replace(
            changed, loudness_lufs=loudness_lufs, rms_db=None, loudness_range_lufs=rule, rms_range_db=None
        )
    if rms_db is not None:
        rule = (rms_db - 3.0, rms_db + 2.0) if targets.rms_range_db else None
        changed = replace(changed, rms_db=rms_db, loudness_lufs=None, rms_range_db=rule, loudness_range_lufs=None)
    if true_peak_dbfs is not None:
        changed = replace(changed, true_peak_dbfs=true_peak_dbfs)
    if head_room_tone_s is not None:
        changed = replace(changed, head_room_tone_s=head_room_tone_s)
    if tail_room_tone_s is not None:
        changed = replace(changed, tail_room_tone_s=tail_room_tone_s)
    return changed
