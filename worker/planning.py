"""From a job's inputs to the ordered list of chunk requests an engine generates, cut into units.

The plan unit builds the plan once and stores it as JSON (`Plan.to_dict`); speak units and assembly
read it back (`Plan.from_dict`, `chunks_from_json`) and never chunk again, so every unit of a job, on
any worker, works on the same chunks, keys and streams.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from shared.jobs import JobCreate
from shared.text.chunking import Boundary, Chunk, chunk_text, split_streams
from shared.text.languages import base_code
from worker.engines.base import ChunkRequest, Sampling

if TYPE_CHECKING:
    from worker.voice_embeddings import ClonedVoice

PLAN_LANGUAGE = "en"
"""The speech-rate key (one learned rate per engine for now, whatever the language)."""


@dataclass(frozen=True)
class PlannedChunk:
    input_index: int
    chunk: Chunk
    request: ChunkRequest
    speaker: str | None = None
    """The dialogue speaker whose turn this chunk is (named in subtitles and timing)."""
    carry_in: bytes | None = None
    """Context from the chunk before it, when that chunk is not in this job (a pickup's first chunk of a
    stream continues from the original render's neighbour)."""

    @property
    def key(self) -> str:
        return self.request.key


@dataclass(frozen=True)
class Plan:
    inputs: list[list[PlannedChunk]]
    """Chunks of each input in reading order (empty for an input with nothing speakable, and for the
    lines below, which are not synthesised)."""
    failed: dict[int, dict[str, str]] = field(default_factory=dict)
    """Lines of a batch of separate files that fail on their own (input index -> `{code, message}`)."""
    digests: dict[int, str] = field(default_factory=dict)
    """Line cache keys of a batch's lines (`worker.line_cache`), by input index."""
    reused: frozenset[int] = frozenset()
    """Lines whose cached file is copied instead of synthesised."""

    def all(self) -> list[PlannedChunk]:
        return [chunk for chunks in self.inputs for chunk in chunks]

    def generation_order(self) -> list[PlannedChunk]:
        return sorted(self.all(), key=lambda planned: (planned.request.stream, planned.request.seq))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; cloned voices' embeddings are left out (a speak unit loads them by voice id)."""
        return {
            "inputs": [[planned_to_dict(p) for p in chunks] for chunks in self.inputs],
            "failed": {str(index): error for index, error in self.failed.items()},
            "digests": {str(index): digest for index, digest in self.digests.items()},
            "reused": sorted(self.reused),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(
            [[planned_from_dict(item) for item in chunks] for chunks in data["inputs"]],
            failed={int(index): error for index, error in data.get("failed", {}).items()},
            digests={int(index): digest for index, digest in data.get("digests", {}).items()},
            reused=frozenset(data.get("reused", [])),
        )


def planned_to_dict(planned: PlannedChunk) -> dict[str, Any]:
    chunk = asdict(planned.chunk)
    chunk["sentences"] = list(planned.chunk.sentences)
    chunk["boundary"] = planned.chunk.boundary.value
    request = planned.request
    out: dict[str, Any] = {
        "input": planned.input_index,
        "chunk": chunk,
        "request": {
            "key": request.key,
            "stream": request.stream,
            "seq": request.seq,
            "voice": request.voice,
            "language": request.language,
            "sampling": asdict(request.sampling),
            "expected_seconds": request.expected_seconds,
            **({"seed_key": request.seed_key} if request.seed_key else {}),
        },
    }
    if planned.speaker is not None:
        out["speaker"] = planned.speaker
    if planned.carry_in is not None:
        out["carry_in"] = base64.b64encode(planned.carry_in).decode()
    return out


def planned_from_dict(data: dict[str, Any]) -> PlannedChunk:
    raw = dict(data["chunk"])
    chunk = Chunk(**{**raw, "sentences": tuple(raw["sentences"]), "boundary": Boundary(raw["boundary"])})
    fields = dict(data["request"])
    sampling = Sampling(**fields.pop("sampling"))
    request = ChunkRequest(text=chunk.text, last_sentence=chunk.last_sentence, sampling=sampling, **fields)
    carry_in = base64.b64decode(data["carry_in"]) if data.get("carry_in") else None
    return PlannedChunk(int(data["input"]), chunk, request, data.get("speaker"), carry_in)


def chunks_to_json(chunks: list[PlannedChunk]) -> str:
    """One speak unit's chunk list as `UnitStore.register_plan` stores it."""
    return json.dumps([planned_to_dict(p) for p in chunks], separators=(",", ":"))


def chunks_from_json(raw: str, cloned: dict[str, ClonedVoice] | None = None) -> list[PlannedChunk]:
    """A speak unit's chunk list, with the embeddings of its cloned voices put back."""
    cloned = cloned or {}
    out = []
    for item in json.loads(raw):
        planned = planned_from_dict(item)
        clone = cloned.get(planned.request.voice or "")
        if clone is not None:
            planned = replace(planned, request=replace(planned.request, speaker_embedding=clone.embedding))
        out.append(planned)
    return out


def pack_units(plan: Plan, unit_audio_seconds: float) -> list[list[PlannedChunk]]:
    """The plan's speak units, in generation order: each stream of an input cut into several streams is
    a unit of its own (so the units of one long input run side by side, on any worker); streams of
    inputs spoken as one stream (short lines) are packed, in order, into units of up to
    `unit_audio_seconds` of estimated audio. A stream is never split across units (its carry stays in
    one unit)."""
    streams: dict[int, list[PlannedChunk]] = {}
    for planned in plan.generation_order():
        streams.setdefault(planned.request.stream, []).append(planned)
    # A dialogue's streams (one per speaker) stay together: its turns alternate, and a timed line is fitted whole.
    split_inputs = {
        index
        for index, chunks in enumerate(plan.inputs)
        if len({p.request.stream for p in chunks}) > 1 and not any(p.speaker for p in chunks)
    }
    units: list[list[PlannedChunk]] = []
    packing: list[PlannedChunk] | None = None
    load = 0.0
    for chunks in streams.values():
        seconds = sum(p.chunk.est_seconds for p in chunks)
        if chunks[0].input_index in split_inputs:
            units.append(chunks)
            packing = None
            continue
        if packing is not None and load + seconds <= unit_audio_seconds:
            packing.extend(chunks)
            load += seconds
            continue
        packing = list(chunks)
        load = seconds
        units.append(packing)
    return units


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
    unit_audio_seconds: float | None = None,
    languages: Sequence[str] | None = None,
    voice_for: Callable[[str], str] | None = None,
    skip: frozenset[int] = frozenset(),
    first_chunk_chars: int | None = None,
) -> Plan:
    """Chunk every input; a long input is split into at least `streams` side-by-side streams at
    paragraph boundaries, and into more when a stream would hold more than `unit_audio_seconds` of
    estimated audio (a stream is a unit of work: a book spreads over many workers). Every input gets
    streams of its own (inputs never share context); a dialogue gets one per speaker, in that
    speaker's voice from the job's `voices`, and a timed line exactly one. Each input is spoken in its
    language (`languages`, else `language`). Chunks in a cloned voice carry its embedding and, when it
    has one of the input's language, its language tag. Inputs in `skip`
    (failed or reused lines) get no chunks. `first_chunk_chars` keeps the
    job's very first chunk that short (an interactive job: its audio starts sooner)."""
    sampling = Sampling(**spec.sampling.model_dump())  # the same fields, one spelling
    lexicon = spec.pronunciation()
    cloned = cloned or {}
    planned_inputs: list[list[PlannedChunk]] = []
    next_stream = 0

    def request_for(input_index: int, chunk: Chunk, stream: int, seq: int, voice: str, spoken: str) -> ChunkRequest:
        clone = cloned.get(voice)
        # A cloned voice's own tag when it is of the input's language (its accent), else the language.
        tag = clone.language if clone and clone.language and base_code(clone.language) == base_code(spoken) else None
        return ChunkRequest(
            key=chunk_key(input_index, chunk.index),
            text=chunk.text,
            stream=stream,
            seq=seq,
            voice=voice,
            speaker_embedding=clone.embedding if clone else None,
            language=tag or spoken,
            sampling=sampling,
            last_sentence=chunk.last_sentence,
            expected_seconds=chunk.est_seconds,
        )

    for input_index, item in enumerate(spec.inputs):
        if input_index in skip:
            planned_inputs.append([])
            continue
        spoken = languages[input_index] if languages is not None else language
        voice = item.voice or spec.voice or (voice_for(spoken) if voice_for else voice_default)
        turns = item.turns(tags=bool(spec.voices))
        planned: list[PlannedChunk] = []
        if any(turn.speaker is not None for turn in turns):
            # A dialogue: one stream per speaker, so each speaker's chunk follows that speaker's last one.
            own_streams: dict[str | None, int] = {}
            seqs: dict[int, int] = {}
            for position, turn in enumerate(turns):
                turn_voice = spec.voices[turn.speaker] if turn.speaker is not None else voice
                stream = own_streams.setdefault(turn.speaker, next_stream + len(own_streams))
                chunks = chunk_text(
                    turn.text,
                    budget_seconds=budget_seconds,
                    chars_per_second=chars_per_second,
                    language=spoken,
                    lexicon=lexicon,
                )
                for number, chunk in enumerate(chunks):
                    chunk = replace(
                        chunk, index=len(planned), start=chunk.start + turn.start, end=chunk.end + turn.start
                    )
                    if number == len(chunks) - 1 and position < len(turns) - 1 and chunk.pause_ms is None:
                        chunk = replace(chunk, boundary=Boundary.TURN)
                    seq = seqs.get(stream, 0)
                    seqs[stream] = seq + 1
                    request = request_for(input_index, chunk, stream, seq, turn_voice, spoken)
                    planned.append(PlannedChunk(input_index, chunk, request, turn.speaker))
            next_stream += len(own_streams)
            planned_inputs.append(planned)
            continue
        chunks = chunk_text(
            item.spoken_text, budget_seconds=budget_seconds, chars_per_second=chars_per_second, language=spoken,
            lexicon=lexicon, text_format=item.text_format,
            first_chunk_chars=first_chunk_chars if input_index == 0 else None,
        )  # fmt: skip
        # A timed line is one stream in one unit: it is measured, redrawn and fitted whole.
        split = (1, None) if item.timed else (streams, unit_audio_seconds)
        for stream_chunks in _streams_of(chunks, *split):
            for seq, chunk in enumerate(stream_chunks):
                planned.append(
                    PlannedChunk(input_index, chunk, request_for(input_index, chunk, next_stream, seq, voice, spoken))
                )
            next_stream += 1
        planned.sort(key=lambda p: p.chunk.index)
        planned_inputs.append(planned)
    return Plan(planned_inputs)


def _streams_of(chunks: list[Chunk], streams: int, unit_audio_seconds: float | None) -> list[list[Chunk]]:
    """`split_streams` with as many streams as it takes to keep each under `unit_audio_seconds` (as
    far as paragraphs allow), never fewer than `streams`."""
    if not chunks:
        return []
    total = sum(chunk.est_seconds for chunk in chunks)
    parts = max(streams, math.ceil(total / unit_audio_seconds) if unit_audio_seconds else 1)
    paragraphs = len({chunk.paragraph for chunk in chunks})
    while True:
        result = split_streams(chunks, parts)
        longest = max(sum(chunk.est_seconds for chunk in stream) for stream in result)
        if unit_audio_seconds is None or longest <= unit_audio_seconds or parts >= paragraphs:
            return result
        parts += 1


def pause_after(boundary: Boundary, pauses: dict[str, int]) -> int:
    return pauses[boundary.value] if boundary.value in pauses else pauses["sentence"]
