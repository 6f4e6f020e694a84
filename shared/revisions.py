"""Pickups: re-render a few sentences of a finished job instead of the whole job.

A pickup (`POST /v1/jobs/{id}/revisions`) is a job of its own, linked to its parent (`revision_of`),
so it runs through the same queue, units and leases as any job: its plan unit takes the parent's
newest render record, re-plans only the chunks that cover the ranges asked for (each with the carry of
its neighbour in the original render), its speak unit generates those chunks (`takes` times, one
stream per take), and its assemble unit stitches them between the original chunks' audio. With one
take the result is published at once as the parent's next version; with several, each take's span is
offered and `POST /v1/jobs/{id}/revisions/{rev}/pick` publishes the chosen one (a pick job: no speak
unit, only assembly).

The render record (`render.json` beside every succeeded job's files, `StoredResult.render`) is what
makes that possible months later: the plan, where each chunk's audio lies (the job's checkpoint parts,
kept until retention ends), each chunk's carry and seed, and the engine, model and voices that rendered
it. A pickup on another engine or model says so in `warnings`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.jobs import MAX_SAFE_INTEGER, FileResult, JobError, JobStatus, VoiceName
from shared.storage import Storage

MAX_TAKES = 8
MAX_RANGES = 64
MAX_CORRECTED_CHARS = 10_000
RENDER_RECORD = "render.json"
"""The render record's name under a run's result prefix."""

Pair = Annotated[list[Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]], Field(min_length=2, max_length=2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PickupRange(_Strict):
    """Sentences of one input: by sentence index (`sentences`, first and last, inclusive, counted from 0
    across the input's paragraphs) or by character offsets into the input's text (`chars`, start
    inclusive, end exclusive). `text` replaces the `chars` span in the new version."""

    input: str = Field(..., min_length=1, max_length=128, description="The input's id.")
    sentences: Pair | None = None
    chars: Pair | None = None
    text: str | None = Field(None, min_length=1, max_length=MAX_CORRECTED_CHARS)

    @model_validator(mode="after")
    def _one_way(self) -> PickupRange:
        if (self.sentences is None) == (self.chars is None):
            raise ValueError("give sentences or chars, not both")
        pair = self.sentences or self.chars or [0, 0]
        if self.sentences is not None and pair[0] > pair[1]:
            raise ValueError("sentences: the first index is after the last")
        if self.chars is not None and pair[0] >= pair[1]:
            raise ValueError("chars: start must be before end")
        if self.text is not None and self.chars is None:
            raise ValueError("text replaces a chars range: give the offsets it replaces")
        return self


class RevisionCreate(_Strict):
    """Body of `POST /v1/jobs/{id}/revisions`."""

    ranges: Annotated[list[PickupRange], Field(min_length=1, max_length=MAX_RANGES)]
    seed: int | None = Field(
        None, ge=0, lt=2**32, description="Sampling seed of take 1 (take n: seed + n - 1); default: a random one, "
        "recorded in `takes`, so the same pickup can be drawn again."
    )  # fmt: skip
    voice: VoiceName | None = Field(None, description="Another voice for the re-rendered chunks.")
    takes: int = Field(1, ge=1, le=MAX_TAKES, description="Takes to draw; more than one waits for a pick.")


class PickBody(_Strict):
    """Body of `POST /v1/jobs/{id}/revisions/{rev}/pick`."""

    take: int = Field(..., ge=1, le=MAX_TAKES)


class Covered(BaseModel):
    """The chunks of one input a pickup re-renders (indices in the base version's plan)."""

    input: int
    chunks: list[int]
    replace: tuple[int, int, str] | None = None
    """(start, end, text): the original span the corrected text takes the place of."""


class RevisionRecord(BaseModel):
    """What a pickup job re-renders, stored with its record (`JobStore.create(revision=...)`)."""

    parent: str
    base_version: int
    base_render: str
    """Storage key of the render record the pickup starts from."""
    covered: list[Covered]
    seed: int
    voice: str | None = None
    takes: int = 1
    pick_of: str | None = None
    """A pick job: the revision whose take `take` it publishes."""
    take: int | None = None


class TakeView(BaseModel):
    take: int
    seed: int = Field(..., description="Give it as `seed` (with takes 1) to draw this take again.")
    audio: FileResult | None = Field(None, description="The re-rendered span alone, with its pauses.")


class RevisionView(BaseModel):
    """A pickup as clients see it."""

    id: str
    job_id: str
    status: JobStatus
    takes: list[TakeView] = Field(default_factory=list)
    covered_chunks: int
    picked: int | None = Field(None, description="The take published (1 when only one was drawn).")
    version: int | None = Field(None, description="The version of the job it published, once published.")
    warnings: list[str] = Field(default_factory=list)
    error: JobError | None = None


class RevisionList(BaseModel):
    data: list[RevisionView]


def take_seed(seed: int, take: int) -> int:
    """The sampling seed of take `take` of a pickup drawn with `seed`."""
    return (seed + take - 1) % 2**32


class RangeError(ValueError):
    """A range that does not fit the job's text: `field` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def resolve_ranges(record: dict[str, Any], ranges: list[PickupRange]) -> list[Covered]:
    """The chunks of the render record's plan that cover each range, one `Covered` per range."""
    spec = record["spec"]
    inputs = spec["inputs"]
    ids = [item.get("id") or f"input-{index:05d}" for index, item in enumerate(inputs)]
    out: list[Covered] = []
    for number, item in enumerate(ranges):
        where = f"ranges.{number}"
        if item.input not in ids:
            raise RangeError(f"{where}.input: no input {item.input!r} in this job", f"{where}.input")
        index = ids.index(item.input)
        chunks = [planned["chunk"] for planned in record["plan"]["inputs"][index]]
        if item.sentences is not None:
            first, last = item.sentences
            count = 1 + max((max(chunk["sentences"], default=-1) for chunk in chunks), default=-1)
            if last >= count:
                raise RangeError(f"{where}.sentences: the input has {count} sentences (0-{count - 1})", where)
            hit = [c["index"] for c in chunks if any(first <= s <= last for s in c["sentences"])]
        else:
            start, end = item.chars or (0, 0)
            if inputs[index].get("text") is None:
                raise RangeError(f"{where}.chars: a dialogue's segments are picked up by `sentences`", where)
            if item.text is not None and inputs[index].get("text_format", "plain") != "plain":
                raise RangeError(f"{where}.text: corrected text applies to a plain-text input, not SSML", where)
            length = len(inputs[index]["text"])
            if end > length:
                raise RangeError(f"{where}.chars: the input has {length} characters", where)
            hit = [c["index"] for c in chunks if c["start"] < end and start < c["end"]]
        if not hit:
            raise RangeError(f"{where}: no spoken text in this range", where)
        replace = (item.chars[0], item.chars[1], item.text) if item.text is not None and item.chars else None
        out.append(Covered(input=index, chunks=hit, replace=replace))
    for a, first in enumerate(out):
        for second in out[a + 1 :]:
            overlap = first.input == second.input and set(first.chunks) & set(second.chunks)
            if overlap and (first.replace or second.replace):
                raise RangeError("ranges with corrected text must not share a chunk with another range", "ranges")
    return out


def save_record(storage: Storage, key: str, record: dict[str, Any]) -> tuple[int, str]:
    """Upload a render record; (bytes, sha256)."""
    data = json.dumps(record, separators=(",", ":")).encode()
    storage.put_bytes(key, data, "application/json")
    return len(data), hashlib.sha256(data).hexdigest()


def load_record(storage: Storage, key: str) -> dict[str, Any]:
    return json.loads(storage.get_bytes(key))
