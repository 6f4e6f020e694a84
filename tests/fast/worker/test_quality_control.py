"""Quality control on real audio: Piper speaks, pocketsphinx listens, jiwer scores, in process.

A test engine wraps the real Piper engine and splices a word out of chosen draws (the chunk's text
spoken in two word groups, the word between them left out), as a model that skips a word would.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence

import numpy as np
import pytest

from shared.jobs import JobStatus
from shared.settings import QcAsr, Settings
from tests.conftest import ServiceEnv
from tests.fast.conftest import TENANT
from tests.support.units import run_until_idle
from worker.asr import PocketsphinxRecogniser, Transcript, Word, load_recogniser
from worker.engines.base import ChunkRequest, ChunkResult, Review
from worker.engines.piper_engine import PiperEngine
from worker.planning import chunk_key
from worker.qc import score, spoken_words
from worker.runtime import Runtime

pytestmark = pytest.mark.fast

TEXT = "The storm passed before dawn. Morning light filled the quiet valley. Birds sang in the old oak."


class SplicingPiper(PiperEngine):
    """Piper, with `cut[key]` = (word, draws): the first `draws` draws of that chunk lack the word."""

    def __init__(self, piper: PiperEngine, cut: dict[str, tuple[str, int]]) -> None:
        super().__init__(piper._voice)
        self.cut = dict(cut)
        self.drawn: list[str] = []

    def speak(self, text: str) -> np.ndarray:
        (result,) = PiperEngine.generate(self, [ChunkRequest(key="group", text=text)])
        return result.audio

    def generate(
        self,
        requests: Sequence[ChunkRequest],
        carry_in: Mapping[int, bytes] | None = None,
        review: Review | None = None,
    ) -> Generator[ChunkResult, None, None]:
        for request in requests:
            self.drawn.append(request.key)
            word, draws = self.cut.get(request.key, ("", 0))
            if draws > 0:
                self.cut[request.key] = (word, draws - 1)
                before, after = request.text.split(f" {word} ", 1)
                gap = np.zeros(self.sample_rate // 20, np.float32)
                audio = np.concatenate([self.speak(before), gap, self.speak(after)])
                yield ChunkResult(request.key, audio, frames=len(audio), synth_seconds=0.1)
            else:
                yield from PiperEngine.generate(self, [request])


@pytest.fixture(scope="module")
def piper() -> PiperEngine:
    return PiperEngine.load()


@pytest.fixture
def service_env(service_env: ServiceEnv) -> ServiceEnv:
    service_env.extra.update(NARRATE_QC_ASR="pocketsphinx", NARRATE_CHUNK_BUDGET_SECONDS="3")
    return service_env


def test_a_chunk_missing_a_word_is_flagged_and_redrawn_and_one_missing_it_every_time_is_listed(
    service_env, services, queue_job, piper
):
    job_id = queue_job({"inputs": [{"id": "tale", "text": TEXT}], "format": "wav"})
    first, second, third = (chunk_key(0, i) for i in range(3))
    engine = SplicingPiper(piper, {second: ("light", 1), third: ("sang", 3)})
    assert run_until_idle(Runtime(services, engine))[-1] == "assemble:succeeded"

    # The chunk spliced once was drawn again and its good draw kept; the one spliced every time was
    # drawn 1 + NARRATE_QC_REDRAWS (2) times; the intact chunk once.
    assert (engine.drawn.count(first), engine.drawn.count(second), engine.drawn.count(third)) == (1, 2, 3)
    view = services.jobs.view(job_id)
    assert view is not None and view.status == JobStatus.SUCCEEDED
    quality = view.quality
    assert quality is not None and (quality.asr, quality.chunks, quality.checked, quality.redrawn) == (
        "pocketsphinx", 3, 3, 2,
    )  # fmt: skip
    (flagged,) = quality.flagged
    assert (flagged.chunk, flagged.input, flagged.problem, flagged.draws) == (third, "tale", "asr", 3)
    assert flagged.missing == ["sang"] and flagged.inserted == [] and flagged.wer == pytest.approx(1 / 6, abs=1e-3)
    assert flagged.sentence == "Birds sang in the old oak."
    assert flagged.file == f"{job_id}.wav" and flagged.start_seconds < flagged.at_seconds < flagged.end_seconds
    # "Birds" is the first word: where "sang" belongs is within a second of the chunk's start.
    assert flagged.at_seconds - flagged.start_seconds < 1.0

    stored = view.stored_result
    assert stored.quality_report is not None
    rows = {row["chunk"]: row for row in json.loads(services.storage.get_bytes(stored.quality_report.key))["chunks"]}
    assert (rows[first]["ok"], rows[first]["wer"], rows[first]["draws"]) == (True, 0.0, 1)
    assert (rows[second]["ok"], rows[second]["wer"], rows[second]["draws"]) == (True, 0.0, 2)
    assert rows[third]["ok"] is False and rows[third]["missing"] == ["sang"]
    assert stored.quality_report.key.startswith(f"results/{TENANT}/{job_id}/")


def test_pocketsphinx_hears_every_word_of_intact_piper_speech_and_reports_a_dropped_one(piper):
    recogniser = PocketsphinxRecogniser()
    text = "Morning light filled the quiet valley."
    (whole,) = piper.generate([ChunkRequest(key="whole", text=text)])
    expected = spoken_words(text)
    assert score(expected, recogniser.transcribe(whole.audio, piper.sample_rate, expected)).wer == 0.0
    (cut,) = piper.generate([ChunkRequest(key="cut", text="Morning filled the quiet valley.")])
    heard = score(expected, recogniser.transcribe(cut.audio, piper.sample_rate, expected))
    assert heard.missing == ["light"] and heard.missing_index == 1 and heard.wer == pytest.approx(1 / 6)


def test_both_sides_are_normalised_alike_so_numbers_and_case_do_not_count_as_errors():
    """Whisper writes digits and capitals: "12 May" heard is the same words as "12 May" expected."""
    expected = spoken_words("Dr. Smith saw 3 cats on 12 May.")
    assert expected[:5] == ["doctor", "smith", "saw", "three", "cats"]
    heard = Transcript([Word(w, 0.0, 0.0) for w in ["Doctor", "Smith", "saw", "three", "cats,", "on", "12", "May"]])
    assert score(expected, heard).wer == 0.0
    extra = Transcript([*heard.words, Word("again", 0.0, 0.0)])
    assert score(expected, extra).inserted == ["again"]


def test_whisper_is_selected_by_setting_and_never_downloads_a_missing_model(tmp_path):
    assert load_recogniser(Settings(qc_asr=QcAsr.OFF)) is None
    assert isinstance(load_recogniser(Settings(qc_asr=QcAsr.POCKETSPHINX)), PocketsphinxRecogniser)
    model = "narrate-test/absent-whisper"
    settings = Settings(qc_asr=QcAsr.WHISPER, qc_whisper_model=model, hf_cache_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="narrate-test/absent-whisper"):
        load_recogniser(settings)
    assert list(tmp_path.iterdir()) == []  # nothing fetched


def test_a_draw_with_no_speech_at_all_is_heard_as_no_words_not_an_error():
    """Silence or noise (a sampling engine's bad draw) gives pocketsphinx no hypothesis: every word is
    then missing and the chunk fails its check, instead of the job failing with an internal error."""
    recogniser = PocketsphinxRecogniser()
    rng = np.random.default_rng(3)
    for audio in (np.zeros(16000, np.float32), (rng.standard_normal(16000) * 0.01).astype(np.float32)):
        heard = recogniser.transcribe(audio, 16000, ["the", "storm", "passed"])
        assert heard.words == [] or all(word.text in {"the", "storm", "passed"} for word in heard.words)
    assert score(["the", "storm", "passed"], Transcript([])).missing == ["the", "storm", "passed"]
