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
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from shared.jobs import SamplingOptions
from shared.text.languages import base_code

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
    """The one language it speaks (a base code, `en`); empty: every language of the engine."""


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
    seed_key: str = ""
    """What seeds sampling in place of `key` when set: a pickup's takes of one chunk have keys of their
    own but draw like the chunk itself (`shared.revisions`)."""

    def seed(self) -> int:
        """Per-chunk seed: the job seed mixed with the chunk key, so reruns are reproducible."""
        base = 0 if self.sampling.seed is None else self.sampling.seed
        digest = hashlib.sha256(f"{base}:{self.seed_key or self.key}".encode()).digest()
        return int.from_bytes(digest[:4], "little")

    def redraw(self) -> ChunkRequest:
        """The same chunk with another seed that is still a function of the job seed and the key."""
        return replace(self, sampling=replace(self.sampling, seed=self.seed() + 1))


class EngineError(RuntimeError):
    """A chunk could not be synthesised; the message is shown to the user."""

    code = "synthesis_failed"
    """The error code of the job (or, in a line sheet, of the line) it fails."""


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
    error: EngineError | None = None
    """Set when this chunk alone could not be synthesised (its text, its length); `audio` is then empty.
    A line of a line sheet fails with it, any other job fails (`worker.speak_unit`)."""


Review = Callable[[ChunkRequest, ChunkResult], bool]
"""Judges one draw of a chunk (True keeps it): the pipeline's check for truncated or runaway audio."""


Ticket = int
"""Names one `submit`ted chunk list; its streams are that list's own (stream ids of two tickets never mix)."""


@dataclass(eq=False)
class _Submission:
    """One `generate` call's chunk list, and the results a driving thread collected for it."""

    requests: list[ChunkRequest]
    carry_in: Mapping[int, bytes] | None
    review: Review | None
    ticket: Ticket | None = None
    results: deque[ChunkResult] = field(default_factory=deque)
    error: Exception | None = None
    done: bool = False


@dataclass(eq=False)
class _Driver:
    """What the `generate` callers of one engine share: whose turn it is to drive `submit`/`collect` for
    all of them (`driving`, under `turn`), the lists waiting to be admitted, the admitted ones by ticket."""

    turn: threading.Condition = field(default_factory=threading.Condition)
    driving: bool = False
    inbox: deque[_Submission] = field(default_factory=deque)
    tickets: dict[Ticket, _Submission] = field(default_factory=dict)


_DRIVER_CREATION = threading.Lock()


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
    model_version: str = ""
    """Names the weights the engine speaks with: part of a cached line's key (`worker.line_cache`), so
    new weights never serve audio of the old ones."""

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
        (cancellation) must leave the engine usable. A chunk that cannot be synthesised on its own
        (while the others can) is yielded with `error` set and no audio, and the rest go on; an error of
        the whole call is raised.

        Default: one ticket through `submit`/`collect`; results of other tickets that `collect`
        returns meanwhile are kept for their own callers, so several threads may call `generate` on
        one engine at once (their chunks share the batch). `submit`/`collect` themselves are for one
        thread.
        """
        driver = self._driver()
        mine = _Submission(list(requests), carry_in, review)
        driver.inbox.append(mine)
        try:
            while True:
                with driver.turn:
                    # One caller at a time drives the engine for everyone; the others sleep until a step
                    # of the driver has ended (their results may have come) or nobody drives.
                    while driver.driving and not (mine.results or mine.error or mine.done):
                        driver.turn.wait()
                    done = mine.done  # read before draining: `done` is set after the last result is queued
                    ready = list(mine.results)
                    mine.results.clear()
                    drive = not ready and mine.error is None and not done
                    if drive:
                        driver.driving = True
                if ready:
                    yield from ready  # outside the lock: other callers' tickets go on meanwhile
                    continue
                if mine.error is not None:
                    raise mine.error
                if done:
                    return
                try:
                    self._drive(driver, mine)
                finally:
                    with driver.turn:
                        driver.driving = False
                        driver.turn.notify_all()
        finally:
            with driver.turn:
                while driver.driving:
                    driver.turn.wait()
                if mine in driver.inbox:
                    driver.inbox.remove(mine)
                elif mine.ticket is not None and driver.tickets.pop(mine.ticket, None) and self.pending(mine.ticket):
                    self.cancel(mine.ticket)

    def _drive(self, driver: _Driver, caller: _Submission) -> None:
        """One step for every `generate` caller (by the one driving caller): admit the waiting chunk lists,
        then, unless the caller already has something to do, collect once and hand each result to its
        list's caller."""
        while driver.inbox:
            waiting = driver.inbox.popleft()
            try:
                waiting.ticket = self.submit(waiting.requests, waiting.carry_in, waiting.review)
            except Exception as exc:  # a bad voice or embedding: that caller's error, nobody else's
                waiting.error = exc
                continue
            driver.tickets[waiting.ticket] = waiting
        if caller.results or caller.error is not None or caller.done:
            return
        for ticket, result in self.collect():
            owner = driver.tickets.get(ticket)
            if owner is not None:
                owner.results.append(result)
        for ticket, owner in list(driver.tickets.items()):
            if not self.pending(ticket):
                owner.done = True
                del driver.tickets[ticket]

    def _submissions_waiting(self) -> bool:
        """Whether a `generate` caller's chunk list waits to be admitted: a batching `collect` returns
        early then, so new rows join the batch at once instead of after the next finished chunk."""
        driver = vars(self).get("_generate_driver")
        return bool(driver and driver.inbox)

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
        """Run until at least one result of any ticket is ready and return what is ready; [] when idle (a
        batching engine may also return [] early when a `generate` caller waits to be admitted)."""
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

    def _driver(self) -> _Driver:
        driver = vars(self).get("_generate_driver")
        if driver is None:
            with _DRIVER_CREATION:
                driver = vars(self).setdefault("_generate_driver", _Driver())
        return driver

    def languages(self) -> list[str]:
        """The languages (base codes) the engine can speak, its default first: those of its voices."""
        return list(dict.fromkeys(voice.language for voice in self.voices() if voice.language))

    def default_voice(self, language: str | None = None) -> str:
        """The voice an input without one is spoken in: the first voice that speaks `language`."""
        voices = self.voices()
        if language:
            base = base_code(language)
            for voice in voices:
                if voice.language in (base, ""):
                    return voice.id
        return voices[0].id

    @property
    def device(self) -> str:
        """Where the engine computes (`cpu`, `cuda:0`, ...): the label of its GPU memory metrics."""
        return "cpu"

    def gpu_memory(self) -> tuple[int, int] | None:
        """(allocated, peak) bytes on the engine's GPU; None for engines that hold no GPU memory."""
        return None

    def gpu_memory_total(self) -> int | None:
        """Bytes of memory of the engine's GPU (what allocation is measured against); None without one."""
        return None

    def close(self) -> None:  # noqa: B027 - an optional hook: engines that hold nothing keep it empty
        """Release what the engine holds (GPU memory, threads); the engine is not used afterwards."""

    def warm_up(self) -> None:
        """Run a tiny synthesis so the first real job does not pay for lazy initialisation."""
        for _ in self.generate([ChunkRequest(key="warmup", text="Ready.")]):
            pass
