"""The cloning task body and per-job embedding loading, in process, on real Redis and storage.

Voices are uploaded through the real API app; the task runs with the tiny WavLM-shaped embedder
loaded through the production loader. Reference audio is Piper speech or numpy signals made here.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from shared.audio.decode import decode_audio
from shared.jobs import JobCreate
from shared.speaker_embedding import embedding_from_bytes
from shared.storage import LocalStorage
from shared.storage_keys import embedding_key, voice_prefix
from shared.voice_store import VoiceStatus
from tests.api.test_voices import AUTH, make_client, speech  # noqa: F401 - session fixture
from tests.conftest import ServiceEnv
from worker.cloning import EMBEDDER_RATE, ClipRejected, clone_voice, prepare_clip
from worker.planning import build_plan
from worker.voice_embeddings import load_cloned_voices

SECOND_TEXT = "Every morning the old lighthouse keeper climbed the stairs and wound the great clock by hand."


@pytest.fixture(scope="session")
def second_speech() -> tuple[np.ndarray, int]:
    from worker.engines.base import ChunkRequest
    from worker.engines.piper_engine import PiperEngine

    engine = PiperEngine.load()
    (result,) = engine.generate([ChunkRequest(key="second", text=SECOND_TEXT)])
    return result.audio, engine.sample_rate


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    from tests.fixtures.wavlm_tiny import build_tiny_speaker_embedder
    from worker.engines.kanitts2.speaker import SpeakerEmbedder

    directory = build_tiny_speaker_embedder(tmp_path_factory.mktemp("wavlm"))
    return SpeakerEmbedder.load(str(directory), device="cpu")


def wav(audio: np.ndarray, sr: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class Setup:
    def __init__(self, env: ServiceEnv) -> None:
        self.client = make_client(env)
        self.settings = env.settings()
        self.services = env.services()
        self.voices = self.services.voices
        self.storage = LocalStorage(env.storage_url.removeprefix("file://"))

    def upload(self, *clips: tuple[bytes, str], **fields: str) -> str:
        data = {"name": "Jane", "consent_by": "Jane Doe", **fields, "files": [(io.BytesIO(b), n) for b, n in clips]}
        response = self.client.post("/v1/voices", data=data, headers=AUTH, content_type="multipart/form-data")
        assert response.status_code == 202, response.get_json()
        return response.get_json()["id"]

    def clone(self, voice_id: str, embedder) -> VoiceStatus | None:
        return clone_voice(voice_id, voices=self.voices, storage=self.storage, embedder=embedder, engine=None)


@pytest.fixture
def setup(service_env: ServiceEnv) -> Setup:
    return Setup(service_env)


def test_prepare_clip_resamples_to_16k_and_trims_silence(speech):  # noqa: F811
    audio, sr = speech
    padded = np.concatenate([np.zeros(2 * sr, np.float32), audio, np.zeros(3 * sr, np.float32)])
    clip = prepare_clip(padded, sr)
    assert clip.audio.dtype == np.float32
    assert clip.speech_seconds == pytest.approx(len(audio) / sr, abs=0.3)
    assert clip.speech_seconds == pytest.approx(len(clip.audio) / EMBEDDER_RATE)


def test_clone_averages_clip_embeddings_into_a_unit_vector(setup, embedder, speech, second_speech):  # noqa: F811
    voice_id = setup.upload((wav(*speech), "one.wav"), (wav(*second_speech), "two.wav"))
    assert setup.clone(voice_id, lambda: embedder) == VoiceStatus.READY

    stored = embedding_from_bytes(setup.storage.get_bytes(embedding_key("dev", voice_id)))
    assert stored.shape == (128,) and stored.dtype == np.float32
    assert np.linalg.norm(stored) == pytest.approx(1.0, abs=1e-5)
    # The task sees the clips as uploaded (16-bit WAV), decoded by the service's decoder.
    one = embedder.embed(prepare_clip(*decode_audio(wav(*speech))).audio, EMBEDDER_RATE)
    two = embedder.embed(prepare_clip(*decode_audio(wav(*second_speech))).audio, EMBEDDER_RATE)
    expected = (one + two) / np.linalg.norm(one + two)
    np.testing.assert_allclose(stored, expected, atol=1e-5)
    assert float(one @ stored) < 0.9999 and float(two @ stored) < 0.9999  # a real average, not one clip

    voice = setup.client.get(f"/v1/voices/{voice_id}", headers=AUTH).get_json()
    assert voice["status"] == "ready" and voice["error"] is None
    assert [c["speech_seconds"] for c in voice["clips"]] == [
        pytest.approx(prepare_clip(*speech).speech_seconds, abs=1e-3),
        pytest.approx(prepare_clip(*second_speech).speech_seconds, abs=1e-3),
    ]
    keys = setup.storage.list_keys(voice_prefix("dev", voice_id))
    assert keys == [embedding_key("dev", voice_id)] + [
        f"{voice_prefix('dev', voice_id)}reference/clip-0{i}" for i in range(2)
    ]


def _bad_clip(case: str, audio: np.ndarray, sr: int) -> np.ndarray:
    silence = np.zeros(3 * sr, np.float32)
    if case == "silence":
        return np.zeros(5 * sr, np.float32)
    if case == "too_short":  # 1.5 s of speech in 4.5 s of file: long enough until trimmed
        return np.concatenate([silence, audio[: int(1.5 * sr)]])
    if case == "ten_minutes":
        return np.tile(audio, int(np.ceil(600 * sr / len(audio))))[: 600 * sr]
    if case == "clipped":
        return np.clip(audio * 30.0, -1.0, 1.0)
    if case == "quiet":
        return audio * 0.03  # 30 dB down: audible, but speech at about -49 dBFS
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("silence", "no_speech"),
        ("too_short", "too_short"),
        ("ten_minutes", "too_long"),
        ("clipped", "clipped"),
        ("quiet", "too_quiet"),
    ],
)
def test_unusable_clip_fails_the_voice_with_the_reason_and_keeps_no_audio(setup, speech, case, code):  # noqa: F811
    audio, sr = speech
    if case == "ten_minutes":  # 16 kHz keeps the 10-minute upload under the 25 MB limit
        audio, sr = prepare_clip(audio, sr).audio, EMBEDDER_RATE
    voice_id = setup.upload((wav(audio, sr), "good.wav"), (wav(_bad_clip(case, audio, sr), sr), f"{case}.wav"))

    def no_model():
        raise AssertionError("the embedder must not load for clips that fail their checks")

    assert setup.clone(voice_id, no_model) == VoiceStatus.FAILED
    voice = setup.client.get(f"/v1/voices/{voice_id}", headers=AUTH).get_json()
    assert voice["status"] == "failed"
    assert voice["error"]["code"] == code
    assert voice["error"]["message"].startswith(f"clip 2 ({case}.wav): ")
    assert "clip 1" not in voice["error"]["message"]
    assert setup.storage.list_keys("voices/") == []  # a failed voice keeps no reference audio
    assert voice_id not in setup.voices.ready_ids("dev")


def test_prepare_clip_messages_say_what_to_do(speech):  # noqa: F811
    audio, sr = speech
    with pytest.raises(ClipRejected, match="at most 30 s per clip"):
        prepare_clip(np.tile(audio, 6), sr)
    with pytest.raises(ClipRejected, match="at least 3 s"):
        prepare_clip(audio[: 2 * sr], sr)


def test_voice_deleted_while_cloning_leaves_nothing_behind(setup, embedder, speech):  # noqa: F811
    voice_id = setup.upload((wav(*speech), "one.wav"))

    def delete_then_load():
        assert setup.client.delete(f"/v1/voices/{voice_id}", headers=AUTH).status_code == 204
        return embedder

    assert setup.clone(voice_id, delete_then_load) is None
    assert setup.storage.list_keys("voices/") == []
    assert setup.client.get(f"/v1/voices/{voice_id}", headers=AUTH).status_code == 404


def test_job_embeddings_are_loaded_once_and_reach_every_chunk(setup, embedder, speech, second_speech):  # noqa: F811
    """...with the voice's language tag, where it has one, for the engine to pick the model's tag."""
    first = setup.upload((wav(*speech), "one.wav"))
    second = setup.upload((wav(*second_speech), "two.wav"), language="en-GB")
    for voice_id in (first, second):
        assert setup.clone(voice_id, lambda: embedder) == VoiceStatus.READY
    long_text = "\n\n".join(f"Paragraph {i}. " + "The narrator reads on and on. " * 12 for i in range(4))
    spec = JobCreate(
        voice=first,
        inputs=[
            {"text": long_text},
            {"text": "A short line.", "voice": second},
            {"text": "Hi.", "voice": "en_us"},
        ],
    )
    cloned = load_cloned_voices(spec, "dev", voices=setup.voices, storage=setup.storage, can_clone=True)
    assert set(cloned) == {first, second}
    plan = build_plan(
        spec,
        budget_seconds=5.0,
        chars_per_second=14.0,
        streams=2,
        voice_default="default",
        cloned=cloned,
    )
    long_chunks = plan.inputs[0]
    assert len(long_chunks) > 3
    for planned in long_chunks:
        assert planned.request.speaker_embedding is cloned[first].embedding  # one array for the whole job
        assert planned.request.language == "en"  # no tag on the voice: the job's language
    np.testing.assert_array_equal(
        cloned[first].embedding, embedding_from_bytes(setup.storage.get_bytes(embedding_key("dev", first)))
    )
    assert plan.inputs[1][0].request.speaker_embedding is cloned[second].embedding
    assert plan.inputs[1][0].request.language == "en_gb"
    assert plan.inputs[2][0].request.speaker_embedding is None

    with pytest.raises(Exception, match="was deleted") as deleted:
        load_cloned_voices(spec, "other", voices=setup.voices, storage=setup.storage, can_clone=True)
    assert deleted.value.code == "voice_deleted"  # another tenant's id is no voice at all
    with pytest.raises(Exception, match="cannot clone") as unsupported:
        load_cloned_voices(spec, "dev", voices=setup.voices, storage=setup.storage, can_clone=False)
    assert unsupported.value.code == "cloning_unsupported"


def test_job_queued_with_a_voice_that_is_then_deleted_fails_with_voice_deleted(setup, embedder, speech):  # noqa: F811
    from tests.support.units import run_until_idle
    from worker.engines.piper_engine import PiperEngine
    from worker.runtime import Runtime

    voice_id = setup.upload((wav(*speech), "one.wav"))
    assert setup.clone(voice_id, lambda: embedder) == VoiceStatus.READY
    job = setup.client.post("/v1/jobs", json={"inputs": [{"text": "Hello."}], "voice": voice_id}, headers=AUTH)
    assert job.status_code == 202
    assert setup.client.delete(f"/v1/voices/{voice_id}", headers=AUTH).status_code == 204

    runtime = Runtime(setup.services, PiperEngine.load())
    job_id = job.get_json()["id"]
    assert run_until_idle(runtime) == ["plan:failed"]
    error = setup.client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()["error"]
    assert error["code"] == "voice_deleted" and voice_id in error["message"]


def test_a_voice_whose_workers_keep_dying_fails_instead_of_looping(setup, speech):  # noqa: F811
    voice_id = setup.upload((wav(*speech), "one.wav"))
    for _ in range(3):  # three deliveries whose worker died before finishing
        setup.voices.claim(voice_id)

    def no_model():
        raise AssertionError("a fourth delivery must not run the clip again")

    assert setup.clone(voice_id, no_model) == VoiceStatus.FAILED
    voice = setup.client.get(f"/v1/voices/{voice_id}", headers=AUTH).get_json()
    assert voice["error"]["code"] == "worker_lost"
    assert setup.storage.list_keys("voices/") == []
    assert setup.clone(voice_id, no_model) is None  # a late redelivery finds nothing to do
