"""An engine that hands its GPU memory back while the worker is idle, and loads it again on demand.

For GPUs shared with other services: after `idle_seconds` without a running `generate`, the wrapped
engine is closed and every reference to it dropped (CUDA's cached blocks go back to the driver too),
and the next call loads it again. Reloading costs the engine's load time on the first job after a
pause, so this is off unless configured (`gpu_idle_release_seconds`).

The first load happens at construction, so a broken checkpoint still fails the worker's start and the
worker measures the real load time. A release never happens while a `generate` is running (from its
first `next()` until it finishes or is closed) or while a `submit`ted ticket is pending.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence

from worker.engines.base import ChunkRequest, ChunkResult, Engine, EngineError, Review, Ticket, VoiceInfo

log = logging.getLogger(__name__)


class IdleReleasingEngine(Engine):
    """Wraps the engine `load()` returns; thread-safe (one load even when several callers need it)."""

    def __init__(self, load: Callable[[], Engine], idle_seconds: float) -> None:
        if idle_seconds <= 0:
            raise ValueError(f"idle_seconds must be positive, got {idle_seconds}")
        self._load = load
        self.idle_seconds = float(idle_seconds)
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._running = 0
        self._timer: threading.Timer | None = None
        self._closed = False
        self._tickets: set[Ticket] = set()
        self.loads = 0
        """How many times the engine was loaded (1 until the first release)."""
        with self._lock:
            engine = self._loaded()
            # What describes the engine, not its state: read once, answered without reloading.
            self.name = engine.name
            self.sample_rate = engine.sample_rate
            self.can_clone = engine.can_clone
            self.default_streams = engine.default_streams
            self._voices = list(engine.voices())
            self._languages = list(engine.languages())
            self._device = str(engine.device)
            self._arm()

    @property
    def loaded(self) -> bool:
        """Whether the engine is in memory now (waits for a release in progress to finish)."""
        with self._lock:
            return self._engine is not None

    @property
    def device(self) -> str:
        return self._device

    def voices(self) -> list[VoiceInfo]:
        return list(self._voices)

    def languages(self) -> list[str]:
        return list(self._languages)

    def generate(
        self,
        requests: Sequence[ChunkRequest],
        carry_in: Mapping[int, bytes] | None = None,
        review: Review | None = None,
    ) -> Generator[ChunkResult, None, None]:
        engine: Engine | None = self._enter()
        try:
            assert engine is not None
            yield from engine.generate(requests, carry_in, review)
        finally:
            engine = None  # the release must find no reference left in this frame
            self._leave()

    def submit(
        self,
        requests: Sequence[ChunkRequest],
        carry_in: Mapping[int, bytes] | None = None,
        review: Review | None = None,
    ) -> Ticket:
        """The loaded engine's own `submit`; the engine is held until the ticket is done or cancelled."""
        engine = self._enter()
        try:
            ticket = engine.submit(requests, carry_in, review)
        except BaseException:
            self._leave()
            raise
        self._tickets.add(ticket)
        return ticket

    def collect(self) -> list[tuple[Ticket, ChunkResult]]:
        engine = self._engine
        if engine is None or not self._tickets:
            return []
        ready = engine.collect()
        self._settle(engine)
        return ready

    def cancel(self, ticket: Ticket) -> None:
        engine = self._engine
        if engine is not None and ticket in self._tickets:
            engine.cancel(ticket)
            self._settle(engine)

    def pending(self, ticket: Ticket | None = None) -> bool:
        engine = self._engine
        if engine is None:
            return False
        return bool(self._tickets) if ticket is None else ticket in self._tickets and engine.pending(ticket)

    def _settle(self, engine: Engine) -> None:
        """Let go of the tickets that are done (each held the engine once)."""
        for ticket in [t for t in self._tickets if not engine.pending(t)]:
            self._tickets.discard(ticket)
            self._leave()

    def warm_up(self) -> None:
        engine: Engine | None = self._enter()
        try:
            assert engine is not None
            engine.warm_up()
        finally:
            engine = None
            self._leave()

    def gpu_memory(self) -> tuple[int, int] | None:
        """The engine's reading while loaded; after a release what CUDA still holds on its device."""
        with self._lock:
            if self._engine is not None:
                return self._engine.gpu_memory()
        return _cuda_memory(self._device)

    def gpu_memory_total(self) -> int | None:
        with self._lock:
            if self._engine is not None:
                return self._engine.gpu_memory_total()
        return _cuda_total(self._device)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cancel()
            if self._engine is not None:
                self._release()

    def _enter(self) -> Engine:
        with self._lock:
            if self._closed:
                raise EngineError("the engine was closed")
            self._cancel()
            self._running += 1
            try:
                return self._loaded()
            except BaseException:
                self._running -= 1
                self._arm()
                raise

    def _leave(self) -> None:
        with self._lock:
            self._running -= 1
            self._arm()

    def _loaded(self) -> Engine:
        """The engine, loaded if it was released (called with the lock held)."""
        if self._engine is None:
            started = time.perf_counter()
            self._engine = self._load()
            self.loads += 1
            if self.loads > 1:
                log.info("engine %s reloaded in %.1f s", self._engine.name, time.perf_counter() - started)
        return self._engine

    def _arm(self) -> None:
        """Start the idle countdown if nothing runs (called with the lock held)."""
        self._cancel()
        if self._running or self._closed or self._engine is None:
            return
        timer = threading.Timer(self.idle_seconds, lambda: self._expire(timer))
        timer.name = "engine-idle-release"
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, timer: threading.Timer) -> None:
        with self._lock:
            # A timer cancelled while it waited for the lock is stale: a call came in meanwhile.
            if timer is not self._timer or self._running or self._engine is None:
                return
            self._timer = None
            self._release()
            log.info("engine %s released after %.0f s idle", self.name, self.idle_seconds)

    def _release(self) -> None:
        """Close the engine and drop it (called with the lock held)."""
        engine, self._engine = self._engine, None
        assert engine is not None
        try:
            engine.close()
        except Exception:
            log.exception("closing engine %s failed; dropping it anyway", self.name)
        del engine
        gc.collect()
        torch = sys.modules.get("torch")  # never imports torch or initialises CUDA itself
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.empty_cache()


def _cuda_memory(device: str) -> tuple[int, int] | None:
    """(allocated, peak) bytes CUDA reports for `device`, if the process uses CUDA at all."""
    torch = sys.modules.get("torch")
    if not device.startswith("cuda") or torch is None or not torch.cuda.is_initialized():
        return None
    return torch.cuda.memory_allocated(device), torch.cuda.max_memory_allocated(device)


def _cuda_total(device: str) -> int | None:
    """Bytes of memory of `device`, if the process uses CUDA at all."""
    torch = sys.modules.get("torch")
    if not device.startswith("cuda") or torch is None or not torch.cuda.is_initialized():
        return None
    return int(torch.cuda.get_device_properties(device).total_memory)
