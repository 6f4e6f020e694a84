"""The contract between the synthesis pipeline and a speech engine.

The pipeline hands an engine every chunk of a job that still needs audio, ordered by stream and by
position in the stream, and the engine yields results as they finish. Handing over the whole list
(rather than one batch at a time) lets a batched engine schedule its own batches across streams and
carry context from chunk k-1 to chunk k of a stream. `ChunkResult.carry` is that context in a form the
pipeline can checkpoint, so a job resumed after a crash continues each stream where it stopped.

Two ways in, one contract: `generate` (a job's chunk list in, its results out) and `submit`/`collect`
(many jobs' chunk lists in while the engine runs, results out with their ticket), so that one engine
per GPU can be fed by several jobs at once. An engine implements one of the two; the base class
builds the other on top of it.
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from shared.jobs import SamplingOptions

_JOB_SAMPLING = SamplingOptions()


@dataclass(frozen=True)
class Sampling:
    """Sampling options of a job; engines that do not sample ignore them. The defaults are the job
    model's (`shared.jobs.SamplingOptions`), so they are spelled once."""

    temperature: float = _JOB_SAMPLING.temperature
    top_p: float = _JOB_SAMPLING.top_p
    top_k: int = _JOB_SAMPLING.top_k
    """Keep the k most likely tokens per step (0 = off); the reference's `generate` default."""
    repetition_penalty: float = _JOB_SAMPLING.repetition_penalty
    seed: int | None = _JOB_SAMPLING.seed


@dataclass(frozen=True)
class VoiceInfo:
    """A voice an engine offers without cloning (a built-in speaker or a language/accent tag)."""

    id: str
    description: str
    language: str


@dataclass(frozen=True)
class ChunkRequest:
    """One chunk of text to speak.

    `key` is stable across retries of the same job (it names the checkpoint and seeds sampling), so a
    chunk regenerated after a crash comes out identical.
    """

    key: str
    text: str
    stream: int = 0
    seq: int = 0
    voice: str | None = None
    speaker_embedding: np.ndarray | None = field(default=None, compare=False)
    language: str | None = None
    sampling: Sampling = field(default_factory=Sampling)
    last_sentence: str = ""
    """The chunk's final sentence: what a continuity engine carries into the next chunk's prompt."""
    expected_seconds: float = 0.0
    """The chunker's estimate of the chunk's duration (engines derive frame caps from it)."""
    urgent: bool = False
    """An interactive job's chunk: engines that batch admit it into the next free slot, ahead of the
    rows of other jobs already waiting."""

    def seed(self) -> int:
        """Per-chunk seed: the job seed mixed with the chunk key, so reruns are reproducible."""
        base = 0 if self.sampling.seed is None else self.sampling.seed
        digest = hashlib.sha256(f"{base}:{self.key}".encode()).digest()
        return int.from_bytes(digest[:4], "little")

    def redraw(self) -> ChunkRequest:
        """The same chunk with another seed that is still a function of the job seed and the key."""
        return replace(self, sampling=replace(self.sampling, seed=self.seed() + 1))


@dataclass
class ChunkResult:
    key: str
    audio: np.ndarray
    """Mono float32 samples in [-1, 1] at the engine's sample rate."""
    carry: bytes | None = None
    """Opaque state the next chunk of the same stream needs (e.g. codec frames); checkpointed."""
    frames: int = 0
    """Generated audio frames or tokens, for throughput metrics (0 when not meaningful)."""
    synth_seconds: float = 0.0
    """This chunk's share of engine wall time (a batch's time split across its rows), for RTF."""


Review = Callable[[ChunkRequest, ChunkResult], bool]
"""Judges one draw of a chunk (True keeps it): the pipeline's check for truncated or runaway audio."""


class EngineError(RuntimeError):
    """A chunk could not be synthesised; the message is shown to the user."""


Ticket = int
"""Names one `submit`ted chunk list; its streams are that list's own (stream ids of two tickets never mix)."""


class Engine(ABC):
    """A loaded speech model. One instance per worker process, created after the process started.

    Subclasses override `generate` (engines that work through one list at a time) or `submit`,
    `collect`, `cancel` and `pending` (engines that batch across lists); the defaults of the other
    side are built on them.
    """

    name: str
    sample_rate: int
    can_clone: bool = False
    default_streams: int = 1
    """Streams a long input is split into when the job does not say (1 for engines without context)."""

    @abstractmethod
    def voices(self) -> list[VoiceInfo]:
        """Built-in voices and language tags a job may name."""

    def generate(
        self,
        requests: Sequence[ChunkRequest],
        carry_in: Mapping[int, bytes] | None = None,
        review: Review | None = None,
    ) -> Generator[ChunkResult, None, None]:
        """Yield a result for every request, in any order, as soon as each is finished.

        `carry_in` maps a stream to the carry of the chunk just before its first request (after a
        resume). An engine that samples (and so can truncate or run away) shows every draw to `review`
        and draws a refused chunk once more, with `ChunkRequest.redraw`, before the chunk's stream goes
        on: the next chunk must continue from the audio that is kept. The second draw is kept whatever
        `review` says. Engines that do not sample may ignore `review`. Closing the iterator early
        (cancellation) must leave the engine usable.

        Default: one ticket through `submit`/`collect`; results of other tickets that `collect`
        returns meanwhile are kept for their own callers, so several threads may call `generate` on
        one engine at once (their chunks share the batch). `submit`/`collect` themselves are for one
        thread.
        """
        lock = self._generate_lock()
        admission = self._admission()
        with admission:  # the thread collecting now returns at its next step boundary and lets us in
            self._admission_waiting[0] += 1
        try:
            with lock:
                ticket = self.submit(requests, carry_in, review)
        finally:
            with admission:
                self._admission_waiting[0] -= 1
                admission.notify_all()
        try:
            while True:
                with lock:  # take, pending and collect as one step: another caller may collect for us
                    mine = self._take(ticket)
                    if not mine:
                        if not self.pending(ticket):
                            return
                        for other, result in self.collect():
                            self._parked().setdefault(other, []).append(result)
                        mine = self._take(ticket)
                if not mine:
                    # No result yet: if callers wait to submit, let them add their rows to the running
                    # batch before this thread drives it on.
                    with admission:
                        admission.wait_for(lambda: self._admission_waiting[0] == 0, timeout=1.0)
                    continue
                yield from mine  # outside the lock: other callers' tickets go on meanwhile
        finally:
            with lock:
                if self.pending(ticket):
                    self.cancel(ticket)
                self._parked().pop(ticket, None)

    def submit(
        self,
        requests: Sequence[ChunkRequest],
        carry_in: Mapping[int, bytes] | None = None,
        review: Review | None = None,
    ) -> Ticket:
        """Hand over a chunk list (as `generate` takes it) without waiting; returns its ticket.

        Default: a `generate` iterator per ticket, advanced by `collect` oldest ticket first.
        """
        tickets = self._iterators()
        ticket = max(tickets, default=0) + 1
        tickets[ticket] = self.generate(requests, carry_in, review)
        return ticket

    def collect(self) -> list[tuple[Ticket, ChunkResult]]:
        """Run until at least one result of any ticket is ready and return what is ready; [] when idle."""
        tickets = self._iterators()
        for ticket in sorted(tickets):
            try:
                return [(ticket, next(tickets[ticket]))]
            except StopIteration:
                del tickets[ticket]
        return []

    def cancel(self, ticket: Ticket) -> None:
        """Drop what is left of a ticket (its waiting and running chunks); the engine stays usable."""
        iterator = self._iterators().pop(ticket, None)
        if iterator is not None:
            iterator.close()

    def pending(self, ticket: Ticket | None = None) -> bool:
        """Whether the ticket (or any ticket) still has chunks to deliver."""
        tickets = self._iterators()
        return bool(tickets) if ticket is None else ticket in tickets

    def _iterators(self) -> dict[Ticket, Generator[ChunkResult, None, None]]:
        return vars(self).setdefault("_ticket_iterators", {})

    def _parked(self) -> dict[Ticket, list[ChunkResult]]:
        """Results `collect` returned for tickets other than the one a `generate` call waits for."""
        return vars(self).setdefault("_parked_results", {})

    def _generate_lock(self) -> threading.RLock:
        lock = vars(self).get("_generate_rlock")
        if lock is None:
            lock = vars(self).setdefault("_generate_rlock", threading.RLock())
        return lock

    def _admission(self) -> threading.Condition:
        """Callers of `generate` waiting to submit (`_admission_waiting[0]`), guarded by this condition."""
        condition = vars(self).get("_admission_condition")
        if condition is None:
            with self._generate_lock():
                condition = vars(self).setdefault("_admission_condition", threading.Condition())
                vars(self).setdefault("_admission_count", [0])
        return condition

    @property
    def _admission_waiting(self) -> list[int]:
        return vars(self).setdefault("_admission_count", [0])

    def admission_waiting(self) -> bool:
        """Whether a `generate` caller waits to submit: a batching engine's `collect` returns at its next
        step boundary then (with what is ready, maybe nothing), so the newcomer's rows join the batch
        now instead of after the next finished chunk."""
        return self._admission_waiting[0] > 0

    def _take(self, ticket: Ticket) -> list[ChunkResult]:
        return self._parked().pop(ticket, [])

    def default_voice(self) -> str:
        return self.voices()[0].id

    @property
    def device(self) -> str:
        """Where the engine computes (`cpu`, `cuda:0`, ...): the label of its GPU memory metrics."""
        return "cpu"

    def gpu_memory(self) -> tuple[int, int] | None:
        """(allocated, peak) bytes on the engine's GPU; None for engines that hold no GPU memory."""
        return None

    def close(self) -> None:  # noqa: B027 - an optional hook: engines that hold nothing keep it empty
        """Release what the engine holds (GPU memory, threads); the engine is not used afterwards."""

    def warm_up(self) -> None:
        """Run a tiny synthesis so the first real job does not pay for lazy initialisation."""
        for _ in self.generate([ChunkRequest(key="warmup", text="Ready.")]):
            pass
