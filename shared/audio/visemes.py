"""Phonemes to visemes for lip-sync: the ARPAbet phones of the aligner onto the common 15-viseme set.

The set is the one of the Oculus/Meta OVR LipSync and MPEG-4 style rigs that game engines animate
(`sil`, `PP`, `FF`, `TH`, `DD`, `kk`, `CH`, `SS`, `nn`, `RR`, `aa`, `E`, `ih`, `oh`, `ou`): one mouth
shape per group of phones that look alike. Phones are the 39 of the CMU dictionary (stress marks
ignored); silence and noise phones (`SIL`, `+NSN+`, ...) and anything unknown are `sil`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")

PHONE_VISEME: dict[str, str] = {
    **dict.fromkeys(("P", "B", "M"), "PP"),
    **dict.fromkeys(("F", "V"), "FF"),
    **dict.fromkeys(("TH", "DH"), "TH"),
    **dict.fromkeys(("T", "D"), "DD"),
    **dict.fromkeys(("K", "G", "NG", "HH"), "kk"),
    **dict.fromkeys(("CH", "JH", "SH", "ZH"), "CH"),
    **dict.fromkeys(("S", "Z"), "SS"),
    **dict.fromkeys(("N", "L"), "nn"),
    **dict.fromkeys(("R", "ER"), "RR"),
    **dict.fromkeys(("AA", "AE", "AH", "AW", "AY"), "aa"),
    **dict.fromkeys(("EH", "EY"), "E"),
    **dict.fromkeys(("IH", "IY", "Y"), "ih"),
    **dict.fromkeys(("AO", "OW", "OY"), "oh"),
    **dict.fromkeys(("UH", "UW", "W"), "ou"),
}


def viseme_of(phone: str) -> str:
    """The viseme of an ARPAbet phone (`AH0` and `AH` alike); `sil` for silence, noise and unknowns."""
    return PHONE_VISEME.get(phone.rstrip("012").upper(), "sil")


@dataclass(frozen=True)
class Timed:
    """A phone or viseme from `start` to `end` seconds."""

    name: str
    start: float
    end: float


def visemes(phones: Iterable[Timed]) -> list[Timed]:
    """The visemes of a phone sequence, neighbours of the same shape merged into one."""
    out: list[Timed] = []
    for phone in phones:
        shape = viseme_of(phone.name)
        if out and out[-1].name == shape and abs(out[-1].end - phone.start) < 1e-6:
            out[-1] = Timed(shape, out[-1].start, phone.end)
        else:
            out.append(Timed(shape, phone.start, phone.end))
    return out
