"""A deterministic engine for in-process tests: text in, a tone of the text's length out, in microseconds.

It keeps the whole `worker.engines.base.Engine` contract the worker relies on (results per request,
carry per stream, a second draw of what `review` refuses, early close) and records what it was asked,
so a test can check what the worker requested (only the chunks without a checkpoint, each stream's
carry after a resume, urgency) without a model; each speak unit is one `generate`
call. Each draw's tone pitch follows its seed, so a test can tell a
redrawn chunk from its first draw.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from worker.engines.base import ChunkRequest, ChunkResult, Engine, Review, VoiceInfo

SAMPLE_RATE = 16000
CHARS_PER_SECOND = 15.0
"""Speaking rate of the fake: close to the chunker's prior (14), so its draws pass the worker's check."""


@dataclass
class Call:
    """One `generate` call: the keys asked for, in order, and the carry handed in per stream."""

    keys: list[str]
    carry_in: dict[int, bytes]
    urgent: list[bool] = field(default_factory=list)
    """`ChunkRequest.urgent` of each request, in order."""
    produced: list[str] = field(default_factory=list)
    """Keys of the results yielded, in order."""
    kept_seconds: dict[str, float] = field(default_factory=dict)
    """Length of each yielded result (the draw that was kept)."""
    closed_early: bool = False


def pitch(seed: int) -> float:
    """The tone frequency (Hz) of a draw with this seed."""
    return 180.0 + seed % 240


def tone(seconds: float, frequency: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(max(1, round(seconds * sample_rate))) / sample_rate
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def carry_of(request: ChunkRequest) -> bytes:
    return f"{request.stream}:{request.key}".encode()


class FakeEngine(Engine):
    name = "fake"
    sample_rate = SAMPLE_RATE
    default_streams = 2

    def __init__(
        self,
        *,
        can_clone: bool = True,
        runaway: Mapping[str, int] | None = None,
        before_chunk: Callable[[int], None] | None = None,
        gpu: tuple[int, int] | None = None,
        gpu_total: int | None = None,
        device: str = "cpu",
    ) -> None:
        """`runaway`: chunk key -> how many of its draws run on far past the text (the worker refuses
        them); `before_chunk(i)` runs before the i-th result of a call is made (0-based: to cancel the
        job or kill the "worker" at a chosen point); `gpu` is what `gpu_memory` reports, `gpu_total`
        what `gpu_memory_total` does."""
        self.can_clone = can_clone
        self._runaway = dict(runaway or {})
        self._before_chunk = before_chunk
        self._gpu = gpu
        self._gpu_total = gpu_total
        self._device = device
        self.calls: list[Call] = []
        self.draws: list[tuple[str, int]] = []
        """(key, seed) of every draw, redraws included."""

    @property
    def device(self) -> str:
        return self._device

    def gpu_memory(self) -> tuple[int, int] | None:
        return self._gpu

    def gpu_memory_total(self) -> int | None:
        return self._gpu_total

    def voices(self) -> list[VoiceInfo]:
        return [VoiceInfo("fake", "A deterministic tone per chunk", "en")]

    def draw(self, request: ChunkRequest) -> ChunkResult:
        seed = request.seed()
        self.draws.append((request.key, seed))
        seconds = len(request.text) / CHARS_PER_SECOND
        if self._runaway.get(request.key, 0) > 0:
            self._runaway[request.key] -= 1
            seconds = 3 * max(request.expected_seconds, seconds) + 3.0
        audio = tone(seconds, pitch(seed))
        return ChunkResult(request.key, audio, carry=carry_of(request), frames=len(audio), synth_seconds=0.01)

    def generate(
        self,
        requests: Sequence[ChunkRequest],
        carry_in: Mapping[int, bytes] | None = None,
        review: Review | None = None,
    ) -> Generator[ChunkResult, None, None]:
        call = Call([r.key for r in requests], dict(carry_in or {}), [r.urgent for r in requests])
        self.calls.append(call)
        try:
            for index, request in enumerate(requests):
                if self._before_chunk is not None:
                    self._before_chunk(index)
                result = self.draw(request)
                if review is not None and not review(request, result):
                    result = self.draw(request.redraw())  # kept whatever review says
                call.produced.append(result.key)
                call.kept_seconds[result.key] = len(result.audio) / self.sample_rate
                yield result
        except GeneratorExit:
            call.closed_early = True
            raise
