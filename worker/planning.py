"""From a job's inputs to the ordered list of chunk requests an engine generates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.jobs import JobCreate
from shared.text.chunking import Boundary, Chunk, chunk_text, split_streams
from worker.engines.base import ChunkRequest, Sampling

if TYPE_CHECKING:
    from worker.voice_embeddings import ClonedVoice


@dataclass(frozen=True)
class PlannedChunk:
    input_index: int
    chunk: Chunk
    request: ChunkRequest

    @property
    def key(self) -> str:
        return self.request.key


@dataclass(frozen=True)
class Plan:
    inputs: list[list[PlannedChunk]]
    """Chunks of each input in reading order (empty for an input with nothing speakable)."""

    def all(self) -> list[PlannedChunk]:
        return [chunk for chunks in self.inputs for chunk in chunks]

    def generation_order(self) -> list[PlannedChunk]:
        return sorted(self.all(), key=lambda planned: (planned.request.stream, planned.request.seq))


def chunk_key(input_index: int, chunk_index: int) -> str:
    return f"{input_index:05d}-{chunk_index:05d}"


def build_plan(
    spec: JobCreate,
    *,
    budget_seconds: float,
    chars_per_second: float,
    streams: int,
    voice_default: str,
    cloned: dict[str, ClonedVoice] | None = None,
    language: str = "en",
) -> Plan:
    """Chunk every input; a long input is split into `streams` side-by-side streams at paragraph
    boundaries, and every input gets streams of its own (inputs never share context). Chunks in a
    cloned voice carry its embedding and, when it has one, its language tag."""
    sampling = Sampling(**spec.sampling.model_dump())  # the same fields, one spelling
    cloned = cloned or {}
    planned_inputs: list[list[PlannedChunk]] = []
    next_stream = 0
    for input_index, item in enumerate(spec.inputs):
        voice = item.voice or spec.voice or voice_default
        clone = cloned.get(voice)
        chunks = chunk_text(
            item.text, budget_seconds=budget_seconds, chars_per_second=chars_per_second, language=language
        )
        planned: list[PlannedChunk] = []
        for stream_chunks in split_streams(chunks, streams) if chunks else []:
            for seq, chunk in enumerate(stream_chunks):
                request = ChunkRequest(
                    key=chunk_key(input_index, chunk.index),
                    text=chunk.text,
                    stream=next_stream,
                    seq=seq,
                    voice=voice,
                    speaker_embedding=clone.embedding if clone else None,
                    language=clone.language if clone and clone.language else language,
                    sampling=sampling,
                    last_sentence=chunk.last_sentence,
                    expected_seconds=chunk.est_seconds,
                )
                planned.append(PlannedChunk(input_index, chunk, request))
            next_stream += 1
        planned.sort(key=lambda p: p.chunk.index)
        planned_inputs.append(planned)
    return Plan(planned_inputs)


def pause_after(boundary: Boundary, pauses: dict[str, int]) -> int:
    return pauses[boundary.value] if boundary.value in pauses else pauses["sentence"]
