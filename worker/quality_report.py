"""A job's quality-control report: every chunk's kept draw, scored and placed in the result files.

The speak units record each kept draw's check with the chunk (`DoneChunk.quality`); once the files are
stitched, the assembly knows where each chunk lies. The job's view gets the counts and the flagged
chunks (each with the sentence to listen to and its offset in a file); `quality.json` beside the
files lists every chunk's scores, for a producer who wants proof that no sentence was dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from shared.jobs import FlaggedChunk, QualitySummary, StoredObject
from shared.storage import Storage
from shared.text.segment import split_sentences
from worker.planning import Plan, PlannedChunk
from worker.qc import spoken_words


@dataclass(frozen=True)
class PlacedFile:
    """A result file and where each of its chunks lies in it."""

    filename: str
    chunk_spans: dict[str, tuple[float, float]]


def build_report(
    plan: Plan,
    quality: dict[str, dict[str, Any] | None],
    files: list[PlacedFile],
    input_ids: list[str],
    *,
    asr: str,
    max_wer: float,
) -> tuple[QualitySummary, list[dict[str, Any]]]:
    """(the view's summary, one row per chunk in reading order). `quality` is chunk key -> its recorded
    check (None for a chunk checkpointed without one); a chunk is placed in the first file holding it
    (the job's whole file before a book's chapter files)."""
    rows: list[dict[str, Any]] = []
    flagged: list[FlaggedChunk] = []
    scores: list[float] = []
    redrawn = 0
    for planned in plan.all():
        check = quality.get(planned.key)
        filename, (start, end) = _place(planned.key, files)
        row: dict[str, Any] = {
            "input": input_ids[planned.input_index],
            "chunk": planned.key,
            "file": filename,
            "start_seconds": round(start, 3),
            "end_seconds": round(end, 3),
            "checked": check is not None,
        }
        if check is not None:
            row |= {name: check.get(name) for name in ("ok", "problem", "wer", "missing", "inserted", "draws")}
            redrawn += int(check.get("draws", 1) > 1)
            if check.get("wer") is not None:
                scores.append(float(check["wer"]))
            if not check.get("ok", True):
                flagged.append(_flagged(planned, check, row))
        rows.append(row)
    summary = QualitySummary(
        asr=asr,
        max_wer=max_wer,
        chunks=len(rows),
        checked=len(scores),
        redrawn=redrawn,
        mean_wer=round(sum(scores) / len(scores), 4) if scores else None,
        worst_wer=max(scores) if scores else None,
        flagged=flagged,
    )
    return summary, rows


def upload_report(
    storage: Storage, key: str, job_id: str, summary: QualitySummary, rows: list[dict[str, Any]]
) -> StoredObject:
    """`quality.json`: the summary's counts and every chunk's row (the flagged ones are in the view)."""
    body = {"job_id": job_id, **summary.model_dump(mode="json", exclude={"flagged"}), "chunks": rows}
    data = json.dumps(body, indent=1).encode()
    storage.put_bytes(key, data, "application/json")
    return StoredObject(key=key, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def _place(key: str, files: list[PlacedFile]) -> tuple[str, tuple[float, float]]:
    for placed in files:
        if key in placed.chunk_spans:
            return placed.filename, placed.chunk_spans[key]
    return "", (0.0, 0.0)


def _flagged(planned: PlannedChunk, check: dict[str, Any], row: dict[str, Any]) -> FlaggedChunk:
    text = planned.chunk.text
    sentence, at = text, row["start_seconds"]
    index = check.get("missing_index")
    if index is not None:
        sentence = _sentence_with_word(text, int(index))
        if check.get("missing_at") is not None:
            at = round(min(row["end_seconds"], row["start_seconds"] + float(check["missing_at"])), 3)
    return FlaggedChunk(
        input=row["input"],
        chunk=planned.key,
        sentence=sentence,
        text=text,
        file=row["file"],
        start_seconds=row["start_seconds"],
        end_seconds=row["end_seconds"],
        at_seconds=at,
        problem=str(check.get("problem") or "asr"),
        wer=check.get("wer"),
        missing=list(check.get("missing", [])),
        inserted=list(check.get("inserted", [])),
        draws=int(check.get("draws", 1)),
    )


def _sentence_with_word(text: str, index: int) -> str:
    """The sentence of `text` holding its `index`-th spoken word (`spoken_words`)."""
    seen = 0
    sentences = [text[start:end] for start, end in split_sentences(text)] or [text]
    for sentence in sentences:
        seen += len(spoken_words(sentence))
        if index < seen:
            return sentence.strip()
    return sentences[-1].strip()
