"""A pickup job's plan: the base version's plan with the covered chunks re-planned, and their takes.

The revised plan keeps every chunk's logical key (the base record's audio is found by it); a
re-rendered chunk's takes are chunks of their own (`<key>~t<n>`, one stream per run of covered chunks
and take, each opening with the carry of the chunk before it in the base render) that draw with the
chunk's own key as seed key, so the same seed draws the same take again.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from shared.jobs import JobCreate
from shared.revisions import Covered, RevisionRecord, load_record, take_seed
from shared.storage import Storage
from shared.text.chunking import Chunk, chunk_text
from worker.planning import PLAN_LANGUAGE, Plan, PlannedChunk, chunk_key
from worker.voice_embeddings import ClonedVoice


def take_key(key: str, take: int) -> str:
    return f"{key}~t{take}"


def plan_pick(storage: Storage, source_render: str) -> dict[str, Any]:
    """A pick job's plan: the revision's own (no speak unit: the takes are drawn)."""
    source = load_record(storage, source_render)
    return {"inputs": source["plan"]["inputs"], "spec": source["spec"], "covered": source.get("covered", [])}


def plan_revision(
    storage: Storage,
    revision: RevisionRecord,
    *,
    budget_seconds: float,
    chars_per_second: float,
    cloned: dict[str, ClonedVoice],
    tag: str,
) -> tuple[dict[str, Any], list[PlannedChunk]]:
    """(the revised plan as stored, every take's chunks in generation order). `tag` names the chunks a
    corrected text makes (unique per pickup: `<key>~<tag>.<n>`)."""
    base = load_record(storage, revision.base_render)
    plan = Plan.from_dict(base["plan"])
    spec = JobCreate.model_validate(base["spec"])
    inputs = [list(chunks) for chunks in plan.inputs]
    wanted = {p.key for item in revision.covered if item.replace is None for p in inputs[item.input]
              if p.chunk.index in item.chunks}  # fmt: skip
    # Corrected text, from the last range of an input back, so earlier offsets stay valid.
    for number, item in sorted(enumerate(revision.covered), key=lambda pair: (pair[1].input, -pair[1].chunks[0])):
        if item.replace is not None:
            spec, inputs[item.input], made = _corrected(
                spec, item, inputs[item.input], budget_seconds, chars_per_second, f"{tag}{number}"
            )
            wanted.update(made)
    covered_keys = [p.key for chunks in inputs for p in chunks if p.key in wanted]
    voice = revision.voice
    clone = cloned.get(voice or "")
    revised: list[list[PlannedChunk]] = []
    for chunks in inputs:
        out = []
        for planned in chunks:
            if planned.key in covered_keys and voice is not None:
                request = replace(
                    planned.request,
                    voice=voice,
                    speaker_embedding=clone.embedding if clone else None,
                    language=clone.language if clone and clone.language else planned.request.language,
                )
                planned = replace(planned, request=request)
            out.append(planned)
        revised.append(out)
    takes = _takes(revised, set(covered_keys), base["chunks"], revision)
    stored = Plan(revised).to_dict()
    stored.update(
        spec=spec.model_dump(mode="json"),
        covered=covered_keys,
        takes=[
            {"take": t, "seed": take_seed(revision.seed, t), "keys": {k: take_key(k, t) for k in covered_keys}}
            for t in range(1, revision.takes + 1)
        ],
    )
    return stored, takes


def _takes(
    inputs: list[list[PlannedChunk]], covered: set[str], base_chunks: dict[str, Any], revision: RevisionRecord
) -> list[PlannedChunk]:
    by_stream: dict[int, list[PlannedChunk]] = {}
    for planned in sorted((p for chunks in inputs for p in chunks), key=lambda p: (p.request.stream, p.request.seq)):
        by_stream.setdefault(planned.request.stream, []).append(planned)
    runs: list[tuple[list[PlannedChunk], bytes | None]] = []
    for stream in by_stream.values():
        run: list[PlannedChunk] = []
        for position, planned in enumerate(stream):
            if planned.key in covered:
                if not run:
                    before = stream[position - 1].key if position > 0 else None
                    carry = base_chunks.get(before, {}).get("carry") if before else None
                    runs.append((run, base64.b64decode(carry) if carry else None))
                run.append(planned)
            else:
                run = []
    out: list[PlannedChunk] = []
    stream_id = 0
    for take in range(1, revision.takes + 1):
        for run, carry in runs:
            for seq, planned in enumerate(run):
                request = replace(
                    planned.request,
                    key=take_key(planned.key, take),
                    seed_key=planned.key.split("~", 1)[0],  # a corrected chunk draws like its place
                    stream=stream_id,
                    seq=seq,
                    sampling=replace(planned.request.sampling, seed=take_seed(revision.seed, take)),
                )
                out.append(replace(planned, request=request, carry_in=carry if seq == 0 else None))
            stream_id += 1
    return out


def _corrected(
    spec: JobCreate,
    item: Covered,
    chunks: list[PlannedChunk],
    budget_seconds: float,
    chars_per_second: float,
    tag: str,
) -> tuple[JobCreate, list[PlannedChunk], list[str]]:
    """The input's text with the correction in place, its covered chunks chunked again from it, later
    chunks' offsets, indices and sentence numbers shifted to the new text; and the new chunks' keys."""
    assert item.replace is not None
    start, end, text = item.replace
    old_text = spec.inputs[item.input].text
    assert old_text is not None  # `resolve_ranges` refuses corrected text for a dialogue's segments
    new_text = old_text[:start] + text + old_text[end:]
    delta = len(new_text) - len(old_text)
    hit = [p for p in chunks if p.chunk.index in set(item.chunks)]
    first, last = hit[0], hit[-1]
    span_start, span_end = min(first.chunk.start, start), max(last.chunk.end, end) + delta
    pieces = chunk_text(
        new_text[span_start:span_end], budget_seconds=budget_seconds, chars_per_second=chars_per_second,
        language=spec.inputs[item.input].language or spec.language or PLAN_LANGUAGE,
        lexicon=spec.pronunciation(),
    )  # fmt: skip
    sentence0 = min(first.chunk.sentences)
    old_sentences = max(last.chunk.sentences) - sentence0 + 1
    new_sentences = 1 + max((max(c.sentences) for c in pieces), default=-1)
    made: list[PlannedChunk] = []
    for j, piece in enumerate(pieces):
        final = j == len(pieces) - 1
        chunk = Chunk(
            index=first.chunk.index + j,
            text=piece.text,
            paragraph=first.chunk.paragraph + piece.paragraph,
            sentences=tuple(s + sentence0 for s in piece.sentences),
            start=piece.start + span_start,
            end=piece.end + span_start,
            boundary=last.chunk.boundary if final else piece.boundary,
            est_seconds=piece.est_seconds,
            last_sentence=piece.last_sentence,
            pause_ms=last.chunk.pause_ms if final else piece.pause_ms,
        )
        key = f"{chunk_key(item.input, first.chunk.index)}~{tag}.{j}"
        request = replace(
            first.request, key=key, text=chunk.text, seq=first.request.seq + j, last_sentence=chunk.last_sentence,
            expected_seconds=chunk.est_seconds,
        )  # fmt: skip
        made.append(PlannedChunk(item.input, chunk, request))
    shift, seq_shift = len(pieces) - len(hit), len(pieces) - len(hit)
    out: list[PlannedChunk] = []
    for planned in chunks:
        if planned.chunk.index < first.chunk.index:
            out.append(planned)
        elif planned.chunk.index == first.chunk.index:
            out.extend(made)
        elif planned.chunk.index > last.chunk.index:
            c = planned.chunk
            moved = replace(
                c, index=c.index + shift, start=c.start + delta, end=c.end + delta,
                sentences=tuple(s + new_sentences - old_sentences for s in c.sentences),
            )  # fmt: skip
            same_stream = planned.request.stream == first.request.stream
            request = replace(planned.request, seq=planned.request.seq + (seq_shift if same_stream else 0))
            out.append(PlannedChunk(planned.input_index, moved, request))
    inputs = list(spec.inputs)
    inputs[item.input] = inputs[item.input].model_copy(update={"text": new_text})
    return spec.model_copy(update={"inputs": inputs}), out, [p.key for p in made]
