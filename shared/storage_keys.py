"""Where a job's and a voice's objects live in storage: one place for the key layout of both.

The API writes reference clips and deletes voices, the worker writes checkpoints, results, embeddings
and previews; both sides and the tests name the same keys through these functions.
"""

from __future__ import annotations

RESULTS_ROOT = "results/"
"""Every job's result files. Expires (bucket lifecycle rule on S3, the worker's sweep on either backend)."""
CHECKPOINTS_ROOT = "checkpoints/"
"""Running jobs' finished chunks. Expires like results."""
VOICES_ROOT = "voices/"
"""Cloned voices: reference clips, embedding, preview. Never expires: a voice lives until it is deleted."""
EXPIRING_ROOTS = (RESULTS_ROOT, CHECKPOINTS_ROOT)
"""The only prefixes a retention rule or sweep may touch (voices are outside both, by construction)."""


# --- jobs -------------------------------------------------------------------------------------------
def result_prefix(tenant: str, job_id: str) -> str:
    """Every result file of a job (audio, subtitles, manifest), deleted together when it is canceled or
    deleted; the parent of everything a job writes under `RESULTS_ROOT`."""
    return f"{RESULTS_ROOT}{tenant}/{job_id}/"


def manifest_key(tenant: str, job_id: str) -> str:
    """The list of files of a job whose inputs were rendered separately."""
    return f"{result_prefix(tenant, job_id)}manifest.json"


def checkpoint_prefix(job_id: str) -> str:
    """Finished chunk audio of a running job, kept until the job ends."""
    return f"{CHECKPOINTS_ROOT}{job_id}/"


def checkpoint_key(job_id: str, chunk_key: str) -> str:
    return f"{checkpoint_prefix(job_id)}{chunk_key}.flac"


# --- voices: everything of a voice under one tenant-scoped prefix -----------------------------------
def voice_prefix(tenant: str, voice_id: str) -> str:
    return f"{VOICES_ROOT}{tenant}/{voice_id}/"


def reference_key(tenant: str, voice_id: str, index: int) -> str:
    """Uploaded bytes exactly as received (decoded by content, so the name carries no extension)."""
    return f"{voice_prefix(tenant, voice_id)}reference/clip-{index:02d}"


def reference_prefix(tenant: str, voice_id: str) -> str:
    return f"{voice_prefix(tenant, voice_id)}reference/"


def embedding_key(tenant: str, voice_id: str) -> str:
    return f"{voice_prefix(tenant, voice_id)}embedding.npy"


def preview_key(tenant: str, voice_id: str) -> str:
    return f"{voice_prefix(tenant, voice_id)}preview.mp3"
