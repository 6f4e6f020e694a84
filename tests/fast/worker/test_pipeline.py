"""`worker.pipeline.run_job` in process: the fake engine, the real Redis job store and local storage.

What a real worker process adds (Celery redelivery, SIGKILL, time limits) is tested in
tests/worker/test_synthesis_jobs.py; here every step between chunks is under the test's control.
"""

from __future__ import annotations

import io
import time

import pytest
import soundfile as sf
from prometheus_client import REGISTRY

from shared.jobs import JobStatus
from shared.services import Services
from shared.storage_keys import checkpoint_key, checkpoint_prefix, result_prefix, run_prefix
from tests.conftest import ServiceEnv, wait_for
from tests.fast.conftest import TENANT
from tests.support.fake_engine import FakeEngine, carry_of, pitch
from worker.engines.base import ChunkRequest
from worker.pipeline import run_job
from worker.planning import chunk_key

pytestmark = pytest.mark.fast

PARAGRAPHS = [
    "The storm passed before dawn. Morning light filled the valley. Birds sang in the old oak.",
    "The river ran high and brown. By noon the road was dry again. Carts rolled toward the town.",
    "At dusk the lamps were lit one by one. The inn was full of travellers. Nobody spoke of the storm.",
]
TEXT = "\n\n".join(PARAGRAPHS)


class WorkerDied(BaseException):
    """Stands for the process being killed: nothing in the pipeline catches it."""


@pytest.fixture
def service_env(service_env: ServiceEnv) -> ServiceEnv:
    service_env.extra["NARRATE_CHUNK_BUDGET_SECONDS"] = "3"  # many small chunks, two streams
    return service_env


def redrawn_total() -> float:
    return REGISTRY.get_sample_value("narrate_chunks_redrawn_total") or 0.0


def checkpoints(services: Services, job_id: str) -> list[str]:
    return services.storage.list_keys(checkpoint_prefix(job_id))


def results(services: Services, job_id: str) -> list[str]:
    return services.storage.list_keys(result_prefix(TENANT, job_id))


def test_a_job_generates_every_chunk_once_in_stream_order_and_ends_with_one_file(services, make_runtime, queue_job):
    engine = FakeEngine()
    job_id = queue_job({"inputs": [{"id": "tale", "text": TEXT}], "format": "wav"})
    assert run_job(job_id, make_runtime(engine)) == JobStatus.SUCCEEDED

    (call,) = engine.calls
    counters = services.jobs.counters(job_id)
    assert counters["chunks_done"] == counters["chunks_synthesized"] == counters["chunks_total"] == len(call.keys) > 4
    assert call.carry_in == {} and call.produced == call.keys and not call.closed_early
    view = services.jobs.view(job_id)
    assert view.status == JobStatus.SUCCEEDED and view.progress.percent == 100.0
    assert set(view.timings) >= {"chunking", "generation", "stitching", "loudness", "encoding", "upload"}
    stored = view.stored_result.file  # the record keeps keys; links are minted when the job is read
    assert stored is not None and view.result is None
    audio, rate = sf.read(io.BytesIO(services.storage.get_bytes(stored.key)))
    assert rate == engine.sample_rate and stored.duration_seconds == pytest.approx(len(audio) / rate, abs=1e-3)
    assert checkpoints(services, job_id) == []
    assert sorted(results(services, job_id)) == sorted(
        f"{run_prefix(TENANT, job_id, 1)}{job_id}.{ext}" for ext in ("wav", "srt", "vtt", "json")
    )


def test_a_resumed_job_generates_only_the_chunks_without_a_checkpoint_and_continues_each_stream(
    services, make_runtime, queue_job
):
    job_id = queue_job({"inputs": [{"text": TEXT}], "format": "flac"})

    def die_at_fourth(index: int) -> None:
        if index == 3:
            raise WorkerDied

    first = FakeEngine(before_chunk=die_at_fourth)
    with pytest.raises(WorkerDied):
        run_job(job_id, make_runtime(first))
    assert services.jobs.status(job_id) == JobStatus.RUNNING  # as a killed worker leaves it
    done = services.jobs.done_chunks(job_id)
    assert sorted(done) == sorted(first.calls[0].produced) and len(done) == 3
    assert len(checkpoints(services, job_id)) == 3

    second = FakeEngine()
    assert run_job(job_id, make_runtime(second)) == JobStatus.SUCCEEDED
    (call,) = second.calls
    everything = first.calls[0].keys
    assert call.keys == [key for key in everything if key not in done]  # the same order, minus the done
    # The stream that was cut off continues from the carry of its last checkpointed chunk.
    last_done = first.calls[0].produced[-1]
    stream = next(stream for stream, carry in call.carry_in.items() if carry.endswith(last_done.encode()))
    assert call.carry_in == {stream: carry_of(ChunkRequest(key=last_done, text="", stream=stream))}
    counters = services.jobs.counters(job_id)
    assert counters["attempts"] == 2 and counters["chunks_synthesized"] == counters["chunks_total"] == len(everything)


def test_a_job_canceled_between_chunks_stops_and_leaves_nothing_behind(services, make_runtime, queue_job):
    job_id = queue_job({"inputs": [{"text": TEXT * 2}]})
    canceled_after: list[int] = []

    def cancel_after_three(index: int) -> None:
        if index == 3:
            assert services.jobs.cancel(job_id)[0] == "ok"
            canceled_after.append(int(services.jobs.counters(job_id)["chunks_done"]))
        if index == 4:  # give the checkpoint writer time to hear of it (it runs beside the engine)
            fourth = checkpoint_key(job_id, engine.calls[0].produced[3], 1)
            wait_for(lambda: fourth in services.storage.list_keys(checkpoint_prefix(job_id)), timeout=10)
            time.sleep(0.2)

    engine = FakeEngine(before_chunk=cancel_after_three)
    assert run_job(job_id, make_runtime(engine)) == JobStatus.CANCELED
    (call,) = engine.calls
    assert call.closed_early and len(call.produced) < len(call.keys)  # the engine was stopped, not drained
    view = services.jobs.view(job_id)
    assert view.status == JobStatus.CANCELED and view.error.code == "canceled"
    assert view.progress.chunks_done == canceled_after[0] <= 3 < view.progress.chunks_total
    assert checkpoints(services, job_id) == [] and results(services, job_id) == []


def test_a_refused_draw_is_drawn_once_more_and_counted_once(services, make_runtime, queue_job):
    job_id = queue_job({"inputs": [{"text": TEXT}], "format": "wav", "sampling": {"seed": 5}})
    once, twice = chunk_key(0, 1), chunk_key(0, 4)

    before = redrawn_total()
    engine = FakeEngine(runaway={once: 1, twice: 2})
    assert run_job(job_id, make_runtime(engine)) == JobStatus.SUCCEEDED
    assert redrawn_total() - before == 2  # one per refused chunk, not per refused draw
    drawn = [key for key, _ in engine.draws]
    assert drawn.count(once) == drawn.count(twice) == 2
    assert all(drawn.count(key) == 1 for key in set(drawn) - {once, twice})
    seeds = [seed for key, seed in engine.draws if key == once]
    assert seeds[1] != seeds[0]  # the redraw uses another seed, still derived from the job's

    kept = engine.calls[0].kept_seconds
    assert kept[twice] > 2 * kept[once]  # the second bad draw was kept, run-on and all
    assert len(engine.calls[0].keys) > 4 and pitch(seeds[1]) != pitch(seeds[0])


def test_a_job_in_a_voice_the_engine_cannot_speak_fails_with_the_reason(services, make_runtime, queue_job):
    job_id = queue_job({"inputs": [{"text": "Hello there."}], "voice": "voice_0123456789abcdef01234567"})
    assert run_job(job_id, make_runtime()) == JobStatus.FAILED
    error = services.jobs.view(job_id).error
    assert error.code == "voice_deleted" and "voice_0123456789abcdef01234567" in error.message


def test_a_finished_or_missing_job_is_not_run_again(services, make_runtime, queue_job):
    job_id = queue_job({"inputs": [{"text": "Hello there."}]})
    assert run_job(job_id, make_runtime()) == JobStatus.SUCCEEDED
    engine = FakeEngine()
    assert run_job(job_id, make_runtime(engine)) is None
    assert run_job("job_missing", make_runtime(engine)) is None
    assert engine.calls == []
