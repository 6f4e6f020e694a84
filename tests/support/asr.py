"""What a speech recogniser hears in a piece of audio: PocketSphinx's US English model, as shipped in
its wheel (no download). Small on purpose; the QC work brings the service's own ASR."""

from __future__ import annotations

import numpy as np
import soxr

ASR_RATE = 16000


def choose(audio: np.ndarray, sample_rate: int, sentence: str) -> str:
    """Which reading of `sentence` the recogniser hears: a JSGF rule body whose `( a | b )` groups are the
    alternatives (words of its dictionary), e.g. "we will ( win | do in ) the game". A forced choice
    between readings is stable where free recognition of an unseeded voice's draws is not."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=ASR_RATE, logfn="/dev/null")
    decoder.add_jsgf_string("choice", f"#JSGF V1.0;\ngrammar choice;\npublic <s> = {sentence};\n")
    decoder.activate_search("choice")
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    resampled = soxr.resample(mono.astype(np.float32), sample_rate, ASR_RATE)
    decoder.start_utt()
    decoder.process_raw((np.clip(resampled, -1.0, 1.0) * 32767).astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis else ""
