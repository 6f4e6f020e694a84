"""Continuous batching of audio rows over the static decoder (not `GenerationMixin.generate`).

Every row starts at a frame boundary right after `start_of_speech` (plus any pre-filled context
frames), so all rows are at the same codebook each step. That lets the head compute only the 4032
logits of that codebook plus `end_of_speech` (allowed only at a frame boundary), and makes the frame
grammar hold by construction. `SlotBatcher` keeps a fixed set of slots: at every frame boundary the
host looks at the slots once, hands out finished rows, and prefills waiting rows into free slots, so
no row waits for another row to finish (`schedule="slots"`). `schedule="waves"` admits rows only when
every slot is empty, as the earlier loop did, for comparison. A row's tokens depend only on its own
prompt and seed, never on its slot or its neighbours (see `sampling`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from worker.engines.kanitts2.decoder import RowRequest, StaticDecoder, bucket_for
from worker.engines.kanitts2.model import KaniTTS2ForCausalLM

MAX_CHUNK_SECONDS = 40.0
"""Longest clip the model saw in training; no chunk may run past it."""
CACHE_ALIGN = 64
Schedule = Literal["slots", "waves"]


def frame_cap(text: str, expected_seconds: float, frames_per_second: float) -> int:
    """Most frames a chunk may take: generous against slow speech, bounded against runaway loops.

    The chunker's estimate (or ~8 chars/s, slower than any narration) with 60 % + 3 s headroom,
    never beyond the 40 s training maximum.
    """
    seconds = max(expected_seconds, len(text.strip()) / 8.0, 0.5)
    return max(1, math.ceil(min(1.6 * seconds + 3.0, MAX_CHUNK_SECONDS) * frames_per_second))


@dataclass
class RowOutput:
    frames: np.ndarray
    """Generated codes `[T, codebooks]` (pre-filled context frames not included)."""
    stopped: bool
    """True when the model ended with `end_of_speech`, False when the frame cap cut it."""


@dataclass
class BatchStats:
    """How full the slots were: `occupancy` = useful row-steps / all slot-steps of the frames run."""

    slot_steps: int = 0
    """The batch's slots x frame steps run: the capacity, idle slots included."""
    bucket_steps: int = 0
    """Slots actually computed x frame steps (a step runs over the smallest bucket holding every row)."""
    row_steps: int = 0
    """Rows that were generating x frame steps."""
    frames: int = 0
    """Frame steps run."""
    prefills: int = 0
    """Prefill calls (each admits one or more rows)."""

    @property
    def occupancy(self) -> float:
        return self.row_steps / self.slot_steps if self.slot_steps else 0.0


class AudioHead:
    """Output rows of one codebook plus `end_of_speech`, cut from the tied head (tests, conformance)."""

    def __init__(self, model: KaniTTS2ForCausalLM) -> None:
        ids = model.spec.tokens
        weight = model.lm_head.weight
        eos = weight[ids.end_of_speech : ids.end_of_speech + 1]
        self.weights = [
            torch.cat([weight[ids.audio_token(q, 0) : ids.audio_token(q, 0) + ids.codebook_size], eos]).contiguous()
            for q in range(ids.num_codebooks)
        ]
        self.eos_index = ids.codebook_size

    def __call__(self, hidden: torch.Tensor, codebook: int) -> torch.Tensor:
        return torch.nn.functional.linear(hidden, self.weights[codebook]).float()


def longest_first(rows: Sequence[RowRequest]) -> list[int]:
    """Indices of `rows` by descending frame cap (ties keep their order): longest-processing-time
    first, which keeps the drain at the end of a finite list short."""
    return sorted(range(len(rows)), key=lambda index: -rows[index].max_frames)


def cache_tokens(rows: Sequence[RowRequest], tokens_per_frame: int) -> int:
    """Cache length that holds every row's prompt and frames (rounded up, so sizes repeat)."""
    need = max(len(row.items) + tokens_per_frame * row.max_frames for row in rows)
    return CACHE_ALIGN * math.ceil(need / CACHE_ALIGN)


@dataclass
class _Waiting:
    tag: Hashable
    row: RowRequest


@dataclass
class SlotBatcher:
    """Rows in, finished rows out; a fixed set of slots kept full between frames.

    `submit` may be called at any time (between `step`s), which is how the engine feeds the next
    chunk of a stream as soon as its context exists. Rows are admitted in submission order.
    """

    model: KaniTTS2ForCausalLM
    slots: int
    max_tokens: int
    max_frames: int
    schedule: Schedule = "slots"
    compiled: bool = False
    cuda_graphs: bool | None = None
    """Capture the frame step per bucket as CUDA graphs (None: when the model is on CUDA)."""
    stats: BatchStats = field(default_factory=BatchStats)
    seconds: dict[Hashable, float] = field(default_factory=dict)
    """Wall time per tag: each frame's (and prefill's) time shared by the rows it ran, for RTF."""

    def __post_init__(self) -> None:
        self.decoder = StaticDecoder(
            self.model, slots=self.slots, max_tokens=self.max_tokens, max_frames=self.max_frames
        )
        if self.compiled:
            self.decoder.compile()
        if self.cuda_graphs if self.cuda_graphs is not None else self.decoder.device.type == "cuda":
            self.decoder.capture_graphs()
        self._waiting: deque[_Waiting] = deque()
        self._running: dict[int, Hashable] = {}  # slot -> tag

    def submit(self, tag: Hashable, row: RowRequest, *, front: bool = False) -> None:
        """Queue a row; `front` puts it before every waiting row (a stream's next chunk)."""
        per_frame = self.decoder.per_frame
        if row.max_frames > self.max_frames or len(row.items) + per_frame * row.max_frames > self.max_tokens:
            raise ValueError(
                f"row of {len(row.items)} prompt items and {row.max_frames} frames does not fit the batcher "
                f"({self.max_tokens} cache tokens, {self.max_frames} frames)"
            )
        waiting = _Waiting(tag, row)
        if front:
            self._waiting.appendleft(waiting)
        else:
            self._waiting.append(waiting)

    def cancel(self, tags: set[Hashable]) -> None:
        """Drop waiting and running rows with these tags; their slots free at once."""
        self._waiting = deque(w for w in self._waiting if w.tag not in tags)
        freed = [slot for slot, tag in self._running.items() if tag in tags]
        for slot in freed:
            del self._running[slot]
        for tag in tags:
            self.seconds.pop(tag, None)
        self.decoder.release(freed)

    @property
    def busy(self) -> bool:
        return bool(self._waiting or self._running)

    def _admit(self) -> None:
        if not self._waiting or (self.schedule == "waves" and self._running):
            return
        free = [slot for slot in range(self.slots) if slot not in self._running]
        chosen = []
        while self._waiting and len(chosen) < len(free):
            chosen.append(self._waiting.popleft())
        if not chosen:
            return
        slots = free[: len(chosen)]
        self.decoder.prefill(slots, [w.row for w in chosen])
        self.stats.prefills += 1
        for slot, waiting in zip(slots, chosen, strict=True):
            self._running[slot] = waiting.tag

    def step(self) -> list[tuple[Hashable, RowOutput]]:
        """Admit waiting rows, run one frame, and return the rows that finished in it."""
        started = time.perf_counter()
        self._admit()
        if not self._running:
            return []
        n = bucket_for(max(self._running) + 1, self.slots)
        self.decoder.run_frame(n)
        self.stats.frames += 1
        self.stats.slot_steps += self.slots
        self.stats.bucket_steps += n
        self.stats.row_steps += len(self._running)
        # The one host look per frame: which slots are no longer generating (it waits for the frame).
        active = self.decoder.active[:n].cpu()
        share = (time.perf_counter() - started) / len(self._running)
        for tag in self._running.values():
            self.seconds[tag] = self.seconds.get(tag, 0.0) + share
        done = [slot for slot in self._running if not bool(active[slot])]
        if not done:
            return []
        index = torch.tensor(done, dtype=torch.long, device=self.decoder.device)
        frames = self.decoder.frames_done[index].cpu().tolist()
        stopped = self.decoder.stopped[index].cpu().tolist()
        codes = self.decoder.codes[index, : max(frames)].cpu().numpy()
        finished = []
        for i, slot in enumerate(done):
            finished.append(
                (self._running.pop(slot), RowOutput(frames=codes[i, : frames[i]].copy(), stopped=stopped[i]))
            )
        return finished


def generate_frames(
    model: KaniTTS2ForCausalLM,
    rows: Sequence[RowRequest],
    *,
    slots: int | None = None,
    schedule: Schedule = "slots",
    compiled: bool = False,
    stats: BatchStats | None = None,
) -> list[RowOutput]:
    """Generate audio frames for every row, `slots` rows at a time (all at once by default).

    Rows are admitted longest first (by frame cap), so that a finite list does not end with one long
    row running alone in an otherwise empty batch; outputs come back in the order of `rows`.
    """
    if not rows:
        return []
    batcher = SlotBatcher(
        model,
        slots=slots or len(rows),
        max_tokens=cache_tokens(rows, model.spec.tokens_per_frame),
        max_frames=max(row.max_frames for row in rows),
        schedule=schedule,
        compiled=compiled,
        stats=stats if stats is not None else BatchStats(),
    )
    for index in longest_first(rows):
        batcher.submit(index, rows[index])
    outputs: dict[Hashable, RowOutput] = {}
    while batcher.busy:
        outputs.update(batcher.step())
        batcher.seconds.clear()
    return [outputs[index] for index in range(len(rows))]
