"""A job's units (plan, speak, assemble) run in process by `worker.units_runner.run_token`: the fake
engine, the real Redis unit store and local storage.

What real worker processes add (Celery tokens, SIGKILL, several workers on one job) is tested in
tests/worker/; here every step between chunks is under the test's control, and "a worker died" is an
exception nothing catches, followed by a sweep as if its lease had run out.
"""

from __future__ import annotations

import io
import json
import time

import pytest
import soundfile as sf
from prometheus_client import REGISTRY

from shared.jobs import JobStatus
from shared.lease import LeaseLost
from shared.services import Services
from shared.storage_keys import checkpoint_prefix, result_prefix, run_prefix
from shared.units import Exhausted, UnitKind
from tests.conftest import ServiceEnv, wait_for
from tests.fast.conftest import TENANT
from tests.support.fake_engine import CHARS_PER_SECOND, FakeEngine, carry_of, pitch
from tests.support.units import run_until_idle
from worker.engines.base import ChunkRequest
from worker.planning import chunk_key
from worker.runtime import Runtime
from worker.units_runner import run_token

pytestmark = pytest.mark.fast

PARAGRAPHS = [
    "The storm passed before dawn. Morning light filled the valley. Birds sang in the old oak.",
    "The river ran high and brown. By noon the road was dry again. Carts rolled toward the town.",
    "At dusk the lamps were lit one by one. The inn was full of travellers. Nobody spoke of the storm.",
]
TEXT = "\n\n".join(PARAGRAPHS)


class WorkerDied(BaseException):
    """Stands for the process being killed: nothing in the worker catches it."""


@pytest.fixture
def service_env(service_env: ServiceEnv) -> ServiceEnv:
    service_env.extra.update(
        NARRATE_CHUNK_BUDGET_SECONDS="3",  # many small chunks
        NARRATE_UNIT_AUDIO_SECONDS="8",  # about one paragraph per stream, one stream per unit
    )
    return service_env


def redrawn_total() -> float:
    return REGISTRY.get_sample_value("narrate_chunks_redrawn_total") or 0.0


def checkpoints(services: Services, job_id: str) -> list[str]:
    return services.storage.list_keys(checkpoint_prefix(job_id))


def results(services: Services, job_id: str) -> list[str]:
    return services.storage.list_keys(result_prefix(TENANT, job_id))


def speak_units(services: Services, job_id: str) -> list:
    return [unit for unit in services.units.units_of(job_id) if unit.kind == UnitKind.SPEAK]


def runtime_with(env: ServiceEnv, engine: FakeEngine | None = None, **settings: str) -> Runtime:
    """A worker runtime on the test's Redis prefix and storage with these settings changed."""
    env.extra.update(settings)
    return Runtime(env.services(), engine or FakeEngine())


def dead_holders_expire(services: Services) -> int:
    """A sweep as if every lease had run out (the holders died)."""
    return services.units.sweep(stall_seconds=3600, now=time.time() + 120)


def test_a_job_is_planned_spoken_in_several_units_and_assembled_into_one_file(services, make_runtime, queue_job):
    engine = FakeEngine()
    job_id = queue_job({"inputs": [{"id": "tale", "text": TEXT}], "format": "wav"})
    outcomes = run_until_idle(make_runtime(engine))

    units = speak_units(services, job_id)
    assert len(units) == len(engine.calls) == 3  # the long input became a stream per paragraph, a unit each
    assert outcomes[0] == "plan:3 units" and outcomes[-1] == "assemble:succeeded"
    assert outcomes[1:-1] == ["speak:done", "speak:done", "speak:assemble"]
    generated = [key for call in engine.calls for key in call.produced]
    counters = services.jobs.counters(job_id)
    assert len(generated) == len(set(generated)) == counters["chunks_total"] > 4  # every chunk once
    assert counters["chunks_done"] == counters["chunks_synthesized"] == counters["chunks_total"]
    assert all(call.carry_in == {} and not call.closed_early and not any(call.urgent) for call in engine.calls)
    view = services.jobs.view(job_id)
    assert view.status == JobStatus.SUCCEEDED and view.progress.percent == 100.0 and view.attempts == 1
    assert set(view.timings) >= {"chunking", "generation", "stitching", "loudness", "encoding", "upload"}
    stored = view.stored_result.file
    assert stored is not None and view.result is None
    audio, rate = sf.read(io.BytesIO(services.storage.get_bytes(stored.key)))
    assert rate == engine.sample_rate and stored.duration_seconds == pytest.approx(len(audio) / rate, abs=1e-3)
    # The chunks in the file are the generated ones, in reading order, with pauses between them.
    assert len(audio) / rate > sum(sum(call.kept_seconds.values()) for call in engine.calls) * 0.95
    # The parts stay (a pickup re-renders a span between them), named by the render record beside the files.
    assert {chunk.part for chunk in services.jobs.done_chunks(job_id).values()} <= set(checkpoints(services, job_id))
    assert len(checkpoints(services, job_id)) == 3
    assert sorted(results(services, job_id)) == sorted(
        [f"{run_prefix(TENANT, job_id, 1)}{job_id}.{ext}" for ext in ("wav", "srt", "vtt", "json", "words.json")]
        + [f"{run_prefix(TENANT, job_id, 1)}qc/quality.json", f"{run_prefix(TENANT, job_id, 1)}render.json"]
    )


def test_checkpoints_are_one_part_per_unit_and_interval_not_one_object_per_chunk(services, make_runtime, queue_job):
    job_id = queue_job({"inputs": [{"text": TEXT}], "format": "wav"})
    rt = make_runtime(FakeEngine())
    outcomes = [run_token(rt) for _ in range(4)]  # the plan and the three speak units; not the assembly
    assert outcomes[-1] == "speak:assemble"
    done = services.jobs.done_chunks(job_id)
    parts = sorted(checkpoints(services, job_id))
    assert len(parts) == 3 < len(done)  # each unit ran well under the 30 s interval: one part at its end
    assert {chunk.part for chunk in done.values()} == set(parts)
    assert run_until_idle(rt) == ["assemble:succeeded"]


def test_a_part_waits_for_its_minimum_of_audio_so_a_slow_engine_writes_few_parts(service_env, queue_job):
    """Interval 0 (roll at every chunk) but 6 s of audio per part at least: a slow engine (a CPU) writes
    one part per that much speech, and the unit's end writes the rest."""
    engine = FakeEngine()
    rt = runtime_with(
        service_env,
        engine,
        NARRATE_UNIT_AUDIO_SECONDS="300",  # one unit of the whole text
        NARRATE_CHECKPOINT_INTERVAL_SECONDS="0",
        NARRATE_CHECKPOINT_MIN_AUDIO_SECONDS="6",
    )
    job_id = queue_job({"inputs": [{"text": TEXT}], "format": "wav", "streams": 1})
    assert [run_token(rt) for _ in range(2)] == ["plan:1 units", "speak:assemble"]
    done = service_env.services().jobs.done_chunks(job_id)
    seconds_by_part: dict[str, float] = {}
    for chunk in done.values():
        seconds_by_part[chunk.part] = seconds_by_part.get(chunk.part, 0.0) + chunk.seconds
    in_order = sorted(seconds_by_part, key=lambda key: int(key.rsplit("part-", 1)[1].split(".")[0]))
    *full, last = [seconds_by_part[part] for part in in_order]
    assert full and all(seconds >= 6.0 for seconds in full) and last > 0  # the end wrote what was left
    assert len(seconds_by_part) < len(done)


def test_a_unit_whose_worker_died_resumes_after_its_last_part_and_continues_its_stream(
    services, service_env, queue_job
):
    job_id = queue_job({"inputs": [{"text": TEXT}], "format": "flac", "streams": 1})

    def die_at_fourth(index: int) -> None:
        if index == 3:  # three chunks generated; once their parts are recorded, the worker dies
            wait_for(lambda: len(services.jobs.done_chunks(job_id)) == 3, timeout=10, message="three parts")
            raise WorkerDied

    first = FakeEngine(before_chunk=die_at_fourth)
    # One unit of one stream; a part per chunk, so the test knows what is durable.
    rt = runtime_with(
        service_env,
        first,
        NARRATE_UNIT_AUDIO_SECONDS="300",
        NARRATE_CHECKPOINT_INTERVAL_SECONDS="0",
        NARRATE_CHECKPOINT_MIN_AUDIO_SECONDS="0",
    )
    assert run_token(rt) == "plan:1 units"
    with pytest.raises(WorkerDied):
        run_token(rt)
    assert services.jobs.status(job_id) == JobStatus.RUNNING  # as a killed worker leaves it
    done = services.jobs.done_chunks(job_id)
    assert sorted(done) == sorted(first.calls[0].produced) and len(done) == 3

    assert dead_holders_expire(services) == 1  # its lease ran out: the unit is ready again
    second = FakeEngine()
    assert run_until_idle(Runtime(rt.services, second)) == ["speak:assemble", "assemble:succeeded"]
    resumed = second.calls[0]
    asked = first.calls[0].keys
    assert resumed.keys == [key for key in asked if key not in done]  # the same order, minus the durable
    # The stream that was cut off continues from the carry of its last durable chunk.
    last_done = first.calls[0].produced[-1]
    (stream,) = resumed.carry_in
    assert resumed.carry_in == {stream: carry_of(ChunkRequest(key=last_done, text="", stream=stream))}
    counters = services.jobs.counters(job_id)
    assert services.jobs.view(job_id).attempts == 2
    assert counters["chunks_synthesized"] == counters["chunks_total"] == counters["chunks_done"]


def test_a_job_canceled_between_chunks_stops_and_leaves_nothing_behind(services, service_env, queue_job):
    job_id = queue_job({"inputs": [{"text": TEXT * 2}], "streams": 1})
    service_done: list[int] = []

    def cancel_after_three(index: int) -> None:
        if index == 3:
            assert services.jobs.cancel(job_id)[0] == "ok"
            service_done.append(int(services.jobs.counters(job_id)["chunks_done"]))

    engine = FakeEngine(before_chunk=cancel_after_three)
    outcomes = run_until_idle(runtime_with(service_env, engine, NARRATE_UNIT_AUDIO_SECONDS="300"))
    assert outcomes == ["plan:1 units", "speak:canceled"]
    (call,) = engine.calls
    assert call.closed_early and len(call.produced) == 4 < len(call.keys)  # stopped at once, not drained
    view = services.jobs.view(job_id)
    assert view.status == JobStatus.CANCELED and view.error.code == "canceled"
    assert view.progress.chunks_done == service_done[0] == 3 < view.progress.chunks_total
    assert checkpoints(services, job_id) == [] and results(services, job_id) == []


def test_a_chunk_failing_every_draw_is_flagged_with_its_offset_and_one_a_redraw_fixes_is_not(
    services, make_runtime, queue_job
):
    """The heuristics alone (no recogniser): a chunk refused by the engine's quick redraw is drawn again
    after the unit's pass, up to NARRATE_QC_REDRAWS (2) more times in all; one still failing is kept
    (the best draw) and listed in the job's quality with where it lies in the file, never silently."""
    job_id = queue_job({"inputs": [{"text": TEXT}], "format": "wav", "sampling": {"seed": 5}})
    once, rescued, hopeless = chunk_key(0, 1), chunk_key(0, 2), chunk_key(0, 4)

    before = redrawn_total()
    engine = FakeEngine(runaway={once: 1, rescued: 2, hopeless: 3})
    assert run_until_idle(make_runtime(engine))[-1] == "assemble:succeeded"
    assert redrawn_total() - before == 3  # one per refused chunk, not per refused draw
    drawn = [key for key, _ in engine.draws]
    assert (drawn.count(once), drawn.count(rescued), drawn.count(hopeless)) == (2, 3, 3)
    assert all(drawn.count(key) == 1 for key in set(drawn) - {once, rescued, hopeless})
    for key in (once, rescued, hopeless):
        seeds = [seed for drawn_key, seed in engine.draws if drawn_key == key]
        assert len(set(seeds)) == len(seeds)  # every draw another seed, still the job's
        assert len({pitch(seed) for seed in seeds}) == len(seeds)

    view = services.jobs.view(job_id)
    quality = view.quality
    assert quality is not None and quality.asr == "off" and quality.checked == 0
    assert quality.chunks == services.jobs.counters(job_id)["chunks_total"] and quality.redrawn == 3
    (flagged,) = quality.flagged
    assert (flagged.chunk, flagged.problem, flagged.draws, flagged.wer) == (hopeless, "runaway", 3, None)
    assert flagged.file == f"{job_id}.wav" and flagged.input == "input-00000"
    stored = view.stored_result
    assert stored.file is not None and stored.quality_report is not None
    # The offsets are the chunk's place in the file: where its sentence's cues begin and end (one sentence,
    # cut in two cues: the runaway draw is longer than a cue may be).
    timing = json.loads(services.storage.get_bytes(stored.file.subtitles["timing"]))
    inside = [c for c in timing["cues"] if flagged.start_seconds <= c["start"] < flagged.end_seconds]
    assert " ".join(c["text"] for c in inside) == flagged.text
    assert (flagged.start_seconds, flagged.end_seconds) == (inside[0]["start"], inside[-1]["end"])
    assert flagged.at_seconds == inside[0]["start"]
    assert flagged.sentence == flagged.text and 0 < flagged.start_seconds < stored.file.duration_seconds
    report = json.loads(services.storage.get_bytes(stored.quality_report.key))
    rows = {row["chunk"]: row for row in report["chunks"]}
    assert len(rows) == quality.chunks and [row["ok"] for row in rows.values()].count(False) == 1
    assert (rows[once]["draws"], rows[rescued]["draws"], rows[rescued]["ok"]) == (2, 3, True)
    # The kept draw of the rescued chunk is the good one: as long as its text says, not a run-on.
    rescued_cue = next(c for c in timing["cues"] if c["start"] == rows[rescued]["start_seconds"])
    assert rescued_cue["end"] - rescued_cue["start"] < 1.2 * len(rescued_cue["text"]) / CHARS_PER_SECOND


def test_an_interactive_jobs_chunks_are_urgent_for_the_engine(services, make_runtime, queue_job):
    queue_job({"inputs": [{"text": "Read at leisure."}], "priority": "batch"})
    queue_job({"inputs": [{"text": "Say it now."}], "priority": "interactive"})
    engine = FakeEngine()
    run_until_idle(make_runtime(engine))
    calls = [(call.keys, call.urgent) for call in engine.calls]
    assert calls == [(["00000-00000"], [True]), (["00000-00000"], [False])]  # and the interactive job first


def test_a_job_in_a_voice_the_engine_cannot_speak_fails_with_the_reason(services, make_runtime, queue_job):
    job_id = queue_job({"inputs": [{"text": "Hello there."}], "voice": "voice_0123456789abcdef01234567"})
    assert run_until_idle(make_runtime()) == ["plan:failed"]
    error = services.jobs.view(job_id).error
    assert error.code == "voice_deleted" and "voice_0123456789abcdef01234567" in error.message


def test_a_stalled_unit_is_retried_and_then_fails_its_job_with_unit_stalled(service_env, queue_job):
    job_id = queue_job({"inputs": [{"text": "A chunk that never comes."}]})
    rt = runtime_with(service_env, NARRATE_MAX_ATTEMPTS="2")
    services = rt.services
    assert run_token(rt) == "plan:1 units"
    settings = services.settings
    for attempt in (1, 2):  # a holder that renews its lease but never finishes a chunk
        claim = services.units.take(lease_seconds=60, max_attempts=settings.max_attempts)
        assert claim is not None and not isinstance(claim, Exhausted) and claim.attempts == attempt
        assert services.units.sweep(stall_seconds=5, now=time.time() + 6) == 1  # no progress for 5 s
        with pytest.raises(LeaseLost):  # the stalled holder is fenced out at its next write
            services.units.progress(claim, seconds=1.0, synth_seconds=0.1)
    assert run_token(rt) == "exhausted"
    view = services.jobs.view(job_id)
    assert view.status == JobStatus.FAILED and view.error.code == "unit_stalled" and view.attempts == 2


def test_a_finished_job_is_not_run_again_and_extra_tokens_find_nothing(services, make_runtime, queue_job):
    queue_job({"inputs": [{"text": "Hello there."}]})
    assert run_until_idle(make_runtime())[-1] == "assemble:succeeded"
    engine = FakeEngine()
    assert run_until_idle(make_runtime(engine)) == []
    assert engine.calls == []


def test_the_sweeper_sends_a_token_per_unit_it_makes_ready_and_tops_lost_tokens_up(service_env, queue_job):
    from worker.sweeper import sweep_units

    rt = runtime_with(service_env)
    services, queue = rt.services, service_env.queue
    client = services.redis
    queue_job({"inputs": [{"text": "One."}]})
    queue_job({"inputs": [{"text": "Two."}]})
    client.delete(queue)  # the tokens the API would have sent were lost (a broker restart, say)
    assert sweep_units(rt) == 2 and client.llen(queue) == 2  # two plan units ready: two tokens
    assert sweep_units(rt) == 0 and client.llen(queue) == 2  # enough tokens wait: none more
    claim = services.units.take(lease_seconds=1, max_attempts=3)
    assert claim is not None and not isinstance(claim, Exhausted)
    client.delete(queue)
    assert sweep_units(rt) == 1  # the other plan unit still needs a token
    # The holder died: once its lease ran out, the sweep makes its unit ready and sends its token (one
    # token per ready unit in all, not one more for the top-up).
    assert sweep_units(rt, now=time.time() + 5) == 1 and client.llen(queue) == 2
    assert sum(services.units.ready_counts().values()) == 2


def test_the_assembly_process_imports_no_engine_and_no_torch():
    """What a spawned assembly child imports (its task function's module): no CUDA context, no model
    weights beside the engine's process."""
    import subprocess
    import sys

    code = "import sys, worker.render_job; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_interactive_jobs_first_chunk_is_kept_short_so_its_audio_starts_early(service_env, services, queue_job):
    rt = runtime_with(service_env, NARRATE_CHUNK_BUDGET_SECONDS="10")
    jobs = {
        priority: queue_job({"inputs": [{"text": TEXT}], "format": "wav", "priority": priority})
        for priority in ("interactive", "normal")
    }
    assert run_until_idle(rt).count("assemble:succeeded") == 2
    first_texts = {}
    for priority, job_id in jobs.items():
        plan = services.units.plan(job_id)
        assert plan is not None
        first_texts[priority] = [item["chunk"]["text"] for item in plan["inputs"][0]]
    assert first_texts["interactive"][0] == "The storm passed before dawn."  # at most 60 characters
    assert len(first_texts["normal"][0]) > 60  # the 10 s budget packs several sentences
    assert " ".join(first_texts["interactive"]) == " ".join(first_texts["normal"])


def test_a_streamed_job_publishes_each_chunk_with_the_pause_its_file_has(services, make_runtime, queue_job):
    """The job's own pauses and inline marks, not the service's defaults (the stream sounds like the file)."""
    from shared.speech_stream import SpeechChannel

    text = (
        "The storm passed before dawn. [pause 2s] Morning light filled the valley. The river ran high and brown."
        "\n\nBirds sang in the old oak."
    )
    body = {"inputs": [{"text": text}], "format": "wav", "pauses": {"sentence_ms": 333, "paragraph_ms": 777}}
    job_id = queue_job(body)
    channel = SpeechChannel(services.redis, services.settings.key_prefix)
    channel.open(job_id)
    assert run_until_idle(make_runtime(FakeEngine()))[-1] == "assemble:succeeded"
    _, pieces = channel.read(job_id, "0", block_ms=100)
    by_index = {piece.index: piece.pause_ms for piece in pieces}
    plan = services.units.plan(job_id)
    assert plan is not None
    texts = [item["chunk"]["text"] for item in plan["inputs"][0]]
    assert texts[:3] == ["The storm passed before dawn.", "Morning light filled the valley.",
                         "The river ran high and brown."]  # fmt: skip
    # The inline mark, then the job's sentence and paragraph pauses (the settings' are 250 and 600 ms).
    assert [by_index[0], by_index[1], by_index[2]] == [2000, 333, 777]
    assert sorted(by_index) == list(range(len(texts)))
    channel.close(job_id)
