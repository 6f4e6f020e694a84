"""Timed lines in a speak unit: held until complete, measured, and redrawn while they cannot be fitted.

The redraw needs the engine, so it happens here (a direct `Engine.generate` call for the line's
chunks with `ChunkRequest.redraw` seeds) rather than in the assembly, which only stretches. A timed line
is planned as one stream (a dialogue: one per speaker, kept in one unit), so all its chunks are in the
unit that holds it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np

from shared.audio.fit import miss, plan_fit
from shared.audio.trim import sound_bounds, trim_silence
from shared.jobs import FitStatus, JobCreate
from worker.assembly import Mastering
from worker.engines.base import ChunkResult, Review
from worker.planning import PlannedChunk, pause_after
from worker.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class TimedLines:
    """Timed lines (`target_seconds`, `max_seconds`) of a unit are held until their last chunk, measured
    as the assembly will fit them, and redrawn whole with other seeds (a direct engine call, here where
    the engine is) while the stretch they need passes the bounds, up to `NARRATE_FIT_REDRAWS` times; the
    draw nearest its slot is kept. The time-stretch itself is the assembly's (`shared.audio.fit`).
    A line some of whose chunks were already durable (a resumed unit) is kept as it comes."""

    rt: Runtime
    spec: JobCreate
    review: Review
    urgent: bool
    lines: dict[int, list[PlannedChunk]]
    """Input index -> its chunks in reading order, for the timed lines held here."""
    line_of: dict[str, int]
    """Chunk key -> input index, for those lines' chunks."""
    held: dict[int, dict[str, tuple[ChunkResult, np.ndarray]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        rt: Runtime,
        spec: JobCreate,
        chunks: list[PlannedChunk],
        remaining: list[PlannedChunk],
        review: Review,
        *,
        urgent: bool,
    ) -> TimedLines:
        missing = {p.key for p in remaining}
        lines: dict[int, list[PlannedChunk]] = {}
        for planned in chunks:
            lines.setdefault(planned.input_index, []).append(planned)
        timed = {
            index: sorted(own, key=lambda p: p.chunk.index)
            for index, own in lines.items()
            if (spec.inputs[index].target_seconds is not None or spec.inputs[index].max_seconds is not None)
            and all(p.key in missing for p in own)
        }
        line_of = {p.key: index for index, own in timed.items() for p in own}
        return cls(rt, spec, review, urgent, timed, line_of)

    def hold(self, result: ChunkResult, audio: np.ndarray) -> list[tuple[ChunkResult, np.ndarray]]:
        """What to keep now: the chunk itself, nothing (its line is not complete), or a whole line."""
        index = self.line_of.get(result.key)
        if index is None:
            return [(result, audio)]
        own = self.lines[index]
        held = self.held.setdefault(index, {})
        held[result.key] = (result, audio)
        if len(held) < len(own):
            return []
        del self.held[index]
        draw = [held[p.key] for p in own]
        if any(result.error is not None for result, _ in draw):  # the line fails: nothing to fit
            return draw
        return self._settle(index, own, draw)

    def _settle(
        self, index: int, own: list[PlannedChunk], draw: list[tuple[ChunkResult, np.ndarray]]
    ) -> list[tuple[ChunkResult, np.ndarray]]:
        rt, item = self.rt, self.spec.inputs[index]
        mastering = Mastering.from_settings(rt.settings)
        sr = rt.engine.sample_rate
        best, best_miss, spent = draw, math.inf, 0.0
        requests = [replace(p.request, urgent=self.urgent) for p in own]
        for attempt in range(rt.settings.fit_redraws + 1):
            if attempt:
                requests = [request.redraw() for request in requests]
                by_key = {}
                for result in rt.engine.generate(requests, None, self.review):
                    by_key[result.key] = (result, trim_silence(result.audio, sr))
                if any(result.error is not None for result, _ in by_key.values()):
                    break  # a redraw the engine could not make: the best draw so far stands
                draw = [by_key[p.key] for p in own]
            spent += sum(result.synth_seconds for result, _ in draw)
            speech, padding = _line_seconds(own, [audio for _, audio in draw], sr, mastering, self.spec)
            fit = plan_fit(item, speech, padding, mastering.fit)
            missed = miss(fit, item, speech, padding)
            if missed < best_miss:
                best, best_miss = draw, missed
            if fit.status is not FitStatus.OVER_LIMIT:
                break
            log.info("line %s: %.2f s of speech cannot be fitted (draw %d)", own[0].key, speech, attempt + 1)
        # The engine time of every draw is the line's (usage and RTF count what was spent).
        first, audio = best[0]
        extra = spent - sum(result.synth_seconds for result, _ in best)
        return [(replace(first, synth_seconds=first.synth_seconds + extra), audio), *best[1:]]


def _line_seconds(
    own: list[PlannedChunk], audios: list[np.ndarray], sr: int, mastering: Mastering, spec: JobCreate
) -> tuple[float, float]:
    """(speech seconds, padding seconds) of a line as the assembly will lay it out: its chunks and
    the pauses between them, trimmed to its sound when the job sets `padding_ms`."""
    pauses = mastering.pauses_for(spec)
    gaps = sum(
        p.chunk.pause_ms if p.chunk.pause_ms is not None else pause_after(p.chunk.boundary, pauses) for p in own[:-1]
    )
    samples = sum(len(audio) for audio in audios)
    if spec.padding_ms is None:
        head, tail = mastering.targets_for(spec).head_room_tone_s, mastering.targets_for(spec).tail_room_tone_s
        return samples / sr + gaps / 1000, head + tail
    first, last = sound_bounds(audios[0], sr), sound_bounds(audios[-1], sr)
    lead = first[0] if first is not None else 0
    trail = len(audios[-1]) - last[1] if last is not None else 0
    return (samples - lead - trail) / sr + gaps / 1000, 2 * spec.padding_ms / 1000
