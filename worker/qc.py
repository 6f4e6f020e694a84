"""Quality control of generated chunks: the duration and silence heuristics, then an ASR score.

Every kept draw of a chunk is judged here. `shared.audio.quality.assess_chunk` catches a chunk cut
short, run on or stalled; the recogniser (`worker.asr`, `NARRATE_QC_ASR`) transcribes it and
`score` compares the words heard with the words of its text, both normalised the same way (our
normaliser, then lower case without punctuation), with jiwer: word error rate, missing and inserted
words. A chunk that fails either check is drawn again by the speak unit (up to
`NARRATE_QC_REDRAWS` more times); the best draw is kept and, when even that fails, recorded as
flagged: the job's `quality` lists it, with its place in the audio, for a person to review.

Transcription is CPU work: it runs in a pool of `NARRATE_QC_ASR_PROCESSES` spawned processes per
worker, never in the engine's loop, so the engine's batch goes on while earlier chunks are checked.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import jiwer
import numpy as np

from shared import metrics
from shared.audio.quality import assess_chunk
from shared.settings import QcAsr, Settings
from shared.text.normalize import normalize
from worker.asr import Recogniser, Transcript, Word, load_recogniser

_NOT_A_WORD = re.compile(r"[^\w']+")


def spoken_words(text: str) -> list[str]:
    """Text as the words a listener hears: our normaliser (numbers, abbreviations spelled out), lower
    case, punctuation gone. Both the chunk's text and the recogniser's words go through it."""
    spoken = normalize(text).text.lower() if text.strip() else ""
    return [word.strip("'") for word in _NOT_A_WORD.split(spoken) if word.strip("'")]


@dataclass(frozen=True)
class Score:
    wer: float
    missing: list[str]
    """Expected words not heard (deleted, or the expected side of a substitution)."""
    inserted: list[str]
    """Words heard that the text does not have (inserted, or the heard side of a substitution)."""
    missing_at: float | None = None
    """Seconds into the chunk where the first missing word belongs (from the heard words' times)."""
    missing_index: int | None = None
    """Index in the expected words of the first missing one."""


def score(expected: list[str], transcript: Transcript) -> Score:
    """Word error rate of what was heard against what was expected (unchecked words left out)."""
    unchecked = list(transcript.unchecked)
    reference: list[str] = []
    positions: list[int] = []  # of each reference word in `expected`
    for index, word in enumerate(expected):
        if word in unchecked:
            unchecked.remove(word)
        else:
            reference.append(word)
            positions.append(index)
    # Normalised as one text, as the chunk's is ("12 May" reads "the twelfth of May", "12" alone
    # "twelve"); each heard word's time is its recognised word's, matched by position.
    heard = spoken_words(transcript.text)
    per_word = [w for w in transcript.words for _ in spoken_words(w.text)] or [Word("", 0.0, 0.0)]
    times = [per_word[min(len(per_word) - 1, i * len(per_word) // max(1, len(heard)))] for i in range(len(heard))]
    if not reference:
        return Score(0.0 if not heard else 1.0, [], heard)
    if not heard:
        return Score(1.0, reference, [], 0.0, positions[0])
    out = jiwer.process_words(" ".join(reference), " ".join(heard))
    missing: list[str] = []
    inserted: list[str] = []
    missing_at: float | None = None
    missing_index: int | None = None
    for piece in out.alignments[0]:
        if piece.type in ("delete", "substitute"):
            missing += reference[piece.ref_start_idx : piece.ref_end_idx]
            if missing_index is None:
                before = piece.hyp_start_idx - 1
                missing_at = times[before].end if before >= 0 else 0.0
                missing_index = positions[piece.ref_start_idx]
        if piece.type in ("insert", "substitute"):
            inserted += heard[piece.hyp_start_idx : piece.hyp_end_idx]
    return Score(float(out.wer), missing, inserted, missing_at, missing_index)


@dataclass
class ChunkCheck:
    """The verdict on one draw of a chunk; `quality` of its durable record (`to_dict`)."""

    ok: bool
    problem: str | None
    """None when ok; else the heuristic's problem (`silent`, `truncated`, `runaway`, `long_silence`) or
    `asr` (the word error rate is above `NARRATE_QC_MAX_WER`)."""
    wer: float | None = None
    """None when no recogniser checked it (`NARRATE_QC_ASR=off`)."""
    missing: list[str] = field(default_factory=list)
    inserted: list[str] = field(default_factory=list)
    missing_at: float | None = None
    """Seconds into the kept (trimmed) audio where the first missing word belongs."""
    missing_index: int | None = None
    """Index of the first missing word in the chunk's spoken words (`spoken_words`)."""
    draws: int = 1
    """Draws of the chunk made so far (this one included)."""

    @property
    def badness(self) -> tuple[int, float]:
        """Lower is better: a draw the heuristics refuse is worse than any the recogniser scores."""
        return (0 if self.problem in (None, "asr") else 1, self.wer or 0.0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["wer"] is not None:
            out["wer"] = round(out["wer"], 4)
        if out["missing_at"] is not None:
            out["missing_at"] = round(out["missing_at"], 3)
        return out


class QualityControl:
    """A worker process's checker: the heuristics in the calling thread, the recogniser in a pool of
    spawned processes (`NARRATE_QC_ASR_PROCESSES`). Not threads: pocketsphinx holds the GIL while it
    decodes (seconds per chunk), which would stall the engine's loop and the lease renewals."""

    def __init__(self, settings: Settings) -> None:
        self.asr = settings.qc_asr
        self.max_wer = settings.qc_max_wer
        self.redraws = settings.qc_redraws
        self._settings = settings
        self._recogniser: Recogniser | None = None
        self._lock = threading.Lock()

    def recogniser(self) -> Recogniser | None:
        """Loaded on first use (Whisper's weights only when a chunk is checked)."""
        with self._lock:
            if self._recogniser is None and self.asr != QcAsr.OFF:
                self._recogniser = load_recogniser(self._settings)
            return self._recogniser

    def heuristic(self, audio: np.ndarray, sr: int, expected_seconds: float) -> ChunkCheck:
        verdict = assess_chunk(audio, sr, expected_seconds=expected_seconds)
        return ChunkCheck(verdict.ok, verdict.problem)

    def check(self, audio: np.ndarray, sr: int, text: str, expected_seconds: float) -> ChunkCheck:
        """Both checks of one draw, in the calling thread (the pool's processes run this)."""
        found = self.heuristic(audio, sr, expected_seconds)
        recogniser = self.recogniser()
        if recogniser is None or found.problem == "silent":
            return found if recogniser is None else _with_score(found, Score(1.0, spoken_words(text), []), 1.0)
        expected = spoken_words(text)
        return _with_score(found, score(expected, recogniser.transcribe(audio, sr, expected)), self.max_wer)

    def submit(self, audio: np.ndarray, sr: int, text: str, expected_seconds: float) -> Future[ChunkCheck]:
        """`check` in the pool: the caller goes on with the engine's next results meanwhile. Without a
        recogniser the heuristics (milliseconds) run at once."""
        done: Future[ChunkCheck] = Future()
        if self.asr == QcAsr.OFF:
            done.set_result(self.heuristic(audio, sr, expected_seconds))
            return done
        running = _asr_pool(self._settings.qc_asr_processes).submit(
            _check_in_child, self._settings, audio, sr, text, expected_seconds
        )

        def hand_on(future: Future[tuple[ChunkCheck, float]]) -> None:
            try:
                found, seconds = future.result()
            except BaseException as exc:  # a child that died (out of memory): the unit fails, retried
                done.set_exception(exc)
                return
            metrics.QC_ASR_SECONDS.inc(seconds)
            done.set_result(found)

        running.add_done_callback(hand_on)
        return done


_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
_child_checkers: dict[str, QualityControl] = {}


def _asr_pool(processes: int) -> ProcessPoolExecutor:
    """The process's transcription pool (spawned children: no engine, no CUDA context inherited)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != processes:
            _pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
            _pool_size = processes
        return _pool


def _check_in_child(
    settings: Settings, audio: np.ndarray, sr: int, text: str, expected_seconds: float
) -> tuple[ChunkCheck, float]:
    """In a pool process: the check with that process's recogniser (loaded once per settings), and
    the seconds it took (the parent counts them in `narrate_qc_asr_seconds_total`)."""
    started = time.perf_counter()
    key = settings.model_dump_json()
    checker = _child_checkers.get(key)
    if checker is None:
        checker = _child_checkers[key] = QualityControl(settings)
    return checker.check(audio, sr, text, expected_seconds), time.perf_counter() - started


def _with_score(found: ChunkCheck, heard: Score, max_wer: float) -> ChunkCheck:
    failed = heard.wer > max_wer
    problem = found.problem if found.problem is not None else ("asr" if failed else None)
    return ChunkCheck(
        found.ok and not failed,
        problem,
        heard.wer,
        heard.missing,
        heard.inserted,
        heard.missing_at,
        heard.missing_index,
        found.draws,
    )
