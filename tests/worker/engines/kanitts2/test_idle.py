"""Releasing an idle engine's memory and reloading it on demand, on the real tiny KaniTTS2 engine (CPU)."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from shared.settings import Settings
from worker.engines.base import ChunkRequest, ChunkResult, Engine, Sampling
from worker.engines.idle import IdleReleasingEngine
from worker.engines.registry import load_engine

pytestmark = pytest.mark.slow


def _settings(checkpoint: Path, codec: Path, **overrides: object) -> Settings:
    return Settings(
        engine="kanitts2",
        kanitts2_model=str(checkpoint),
        kanitts2_codec=str(codec),
        kanitts2_device="cpu",
        kanitts2_max_frames_per_chunk=6,
        **overrides,
    )


def _requests(tag: str) -> list[ChunkRequest]:
    """Two chunks of one stream: two waves, so the engine yields between them."""
    return [
        ChunkRequest(key=f"{tag}-{seq}", text=text, seq=seq, sampling=Sampling(seed=11))
        for seq, text in enumerate(["Hello there.", "And again."])
    ]


def _audio(results: list[ChunkResult]) -> dict[str, np.ndarray]:
    return {result.key: result.audio for result in results}


def _wait_until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.fixture
def tracked(tiny_checkpoint: Path, tiny_codec_path: Path):
    """A loader of the real engine that keeps only weak references to what it loaded."""
    from worker.engines.kanitts2.engine import KaniTTS2Engine

    settings = _settings(tiny_checkpoint, tiny_codec_path)
    loaded: list[weakref.ref[Engine]] = []

    def load() -> Engine:
        engine = KaniTTS2Engine.load(settings)
        loaded.append(weakref.ref(engine))
        return engine

    return load, loaded


def test_idle_engine_is_released_and_reloaded_with_the_same_audio(tiny_checkpoint: Path, tiny_codec_path: Path):
    engine = load_engine(_settings(tiny_checkpoint, tiny_codec_path, gpu_idle_release_seconds=0.3))
    try:
        assert isinstance(engine, IdleReleasingEngine)
        assert (engine.name, engine.sample_rate, engine.can_clone) == ("kanitts2", 22050, True)
        first = _audio(list(engine.generate(_requests("a"))))
        assert engine.loads == 1

        _wait_until(lambda: not engine.loaded)
        assert engine.voices()[0].id == "default"  # answered without reloading
        assert engine.gpu_memory() is None and engine.loads == 1

        again = _audio(list(engine.generate(_requests("a"))))
        assert engine.loads == 2
        assert first.keys() == again.keys()
        for key in first:
            assert first[key].size > 0
            np.testing.assert_array_equal(again[key], first[key])
    finally:
        engine.close()


def test_release_is_off_by_default() -> None:
    assert Settings().gpu_idle_release_seconds == 0
    engine = load_engine(Settings(engine="piper"))
    assert not isinstance(engine, IdleReleasingEngine)


def test_a_release_drops_every_reference_to_the_engine(tracked) -> None:
    load, loaded = tracked
    engine = IdleReleasingEngine(load, idle_seconds=0.2)
    try:
        list(engine.generate(_requests("b")))
        _wait_until(lambda: not engine.loaded)
        assert loaded[0]() is None  # the model and codec are garbage: their memory is free
    finally:
        engine.close()


def test_no_release_while_a_generate_runs(tracked) -> None:
    """Idle time far below the generation time: neither a slow draw, nor a pause between results, nor
    another generate finishing meanwhile releases the engine under a running generate."""
    load, loaded = tracked
    engine = IdleReleasingEngine(load, idle_seconds=0.05)
    seen: list[bool] = []

    def slow_review(request: ChunkRequest, result: ChunkResult) -> bool:
        time.sleep(0.3)  # inside the engine's generate, between draw and decision
        seen.append(engine.loaded)
        return True

    try:
        results = engine.generate(_requests("c"), review=slow_review)
        next(results)
        other = threading.Thread(target=lambda: list(engine.generate(_requests("other"))))
        other.start()
        other.join(timeout=120)  # a second caller comes and goes while the first is paused
        time.sleep(0.3)
        seen.append(engine.loaded)
        rest = list(results)
        assert len(rest) == 1 and seen == [True, True, True]
        assert engine.loads == 1 and len(loaded) == 1
        _wait_until(lambda: not engine.loaded)
    finally:
        engine.close()


def test_concurrent_calls_after_a_release_load_once(tracked) -> None:
    load, loaded = tracked
    engine = IdleReleasingEngine(load, idle_seconds=0.2)
    try:
        expected = _audio(list(engine.generate(_requests("d"))))
        _wait_until(lambda: not engine.loaded)
        outputs: list[dict[str, np.ndarray]] = []
        threads = [
            threading.Thread(target=lambda: outputs.append(_audio(list(engine.generate(_requests("d"))))))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(outputs) == 3 and engine.loads == 2 and len(loaded) == 2
        for output in outputs:
            for key, audio in expected.items():
                # The three callers' chunks share batches (and codec calls): same frames, same audio up
                # to the rounding of a batched decode.
                np.testing.assert_allclose(output[key], audio, atol=1e-5)
    finally:
        engine.close()


def test_a_closed_engine_refuses_work_and_holds_nothing(tracked) -> None:
    load, loaded = tracked
    engine = IdleReleasingEngine(load, idle_seconds=60)
    engine.close()
    assert not engine.loaded and loaded[0]() is None
    with pytest.raises(RuntimeError, match="closed"):
        list(engine.generate(_requests("e")))


def test_a_submitted_ticket_holds_the_engine_until_it_is_collected(tracked) -> None:
    load, _ = tracked
    engine = IdleReleasingEngine(load, idle_seconds=0.2)
    try:
        ticket = engine.submit(_requests("e"))
        time.sleep(0.5)  # past the idle time, but a ticket is pending
        assert engine.loaded and engine.pending(ticket)
        results = []
        while engine.pending(ticket):
            results += [result for owner, result in engine.collect() if owner == ticket]
        assert sorted(r.key for r in results) == sorted(r.key for r in _requests("e"))
        _wait_until(lambda: not engine.loaded)
    finally:
        engine.close()
