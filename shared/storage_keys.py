"""Where a job's and a voice's objects live in storage: one place for the key layout of both.

The API writes reference clips and deletes voices, the worker writes checkpoints, results, embeddings
and previews; both sides and the tests name the same keys through these functions.
"""

from __future__ import annotations

RESULTS_ROOT = "results/"
"""Every job's result files. Expires (bucket lifecycle rule on S3, the worker's sweep on either backend)."""
CHECKPOINTS_ROOT = "checkpoints/"
"""Jobs' finished chunks: a running job's, and a succeeded job's that its render record names (pickups
stitch between them). Expires like results."""
VOICES_ROOT = "voices/"
"""Cloned voices: reference clips, embedding, preview. Never expires: a voice lives until it is deleted."""
EXPIRING_ROOTS = (RESULTS_ROOT, CHECKPOINTS_ROOT)
"""The only prefixes a retention rule or sweep may touch (voices are outside both, by construction)."""


# --- jobs -------------------------------------------------------------------------------------------
def result_prefix(tenant: str, job_id: str) -> str:
    """Every result file of a job (audio, subtitles, manifest), deleted together when it is canceled or
    deleted; the parent of everything a job writes under `RESULTS_ROOT`."""
    return f"{RESULTS_ROOT}{tenant}/{job_id}/"


def run_prefix(tenant: str, job_id: str, attempt: int) -> str:
    """The result files written by one claimed run (attempt) of a job. Each run writes under its own
    prefix, so a run that lost its claim and uploads late can never replace the files the job record
    points to; the finished run deletes the others'."""
    return f"{result_prefix(tenant, job_id)}run-{attempt}/"


def manifest_key(tenant: str, job_id: str, attempt: int) -> str:
    """The list of files of a job whose inputs were rendered separately."""
    return f"{run_prefix(tenant, job_id, attempt)}manifest.json"


def quality_report_key(tenant: str, job_id: str, attempt: int) -> str:
    """Every chunk's quality-control scores and offsets (`worker.quality_report`); in a folder of its
    own, so no input's files (`<input id>.json`: timing) can take its name."""
    return f"{run_prefix(tenant, job_id, attempt)}qc/quality.json"


def manifest_csv_key(tenant: str, job_id: str, attempt: int) -> str:
    """The same list as CSV (one row per input), for spreadsheets and import scripts."""
    return f"{run_prefix(tenant, job_id, attempt)}manifest.csv"


def line_cache_prefix(tenant: str) -> str:
    """A tenant's cache of finished lines (`worker.line_cache`), under the tenant's results: it expires
    with them (a cached line lives for the results retention after it was last produced or reused) and
    no key of one tenant lies under another's prefix. The segment cannot be a job id (those start with `job_`)."""
    return f"{RESULTS_ROOT}{tenant}/line-cache/"


def line_cache_keys(tenant: str, digest: str, extension: str) -> tuple[str, str]:
    """(audio, entry) of one cached line: the entry (JSON: duration, checksum, mastering report, cues) is
    written after the audio, so an entry that exists names audio that exists."""
    base = f"{line_cache_prefix(tenant)}{digest[:2]}/{digest}"
    return f"{base}.{extension}", f"{base}.json"


def checkpoint_prefix(job_id: str) -> str:
    """Finished chunk audio of a job: a succeeded job keeps the parts its render record names until
    retention ends; a canceled or failed job's go when it ends."""
    return f"{CHECKPOINTS_ROOT}{job_id}/"


def run_checkpoint_prefix(job_id: str, run: int) -> str:
    """The chunks checkpointed by one claimed run (attempt) of a job: a run that lost its claim and
    writes late can neither replace a chunk another run recorded nor leave files behind (it deletes its
    own prefix when it learns it was fenced out)."""
    return f"{checkpoint_prefix(job_id)}run-{run}/"


def checkpoint_key(job_id: str, chunk_key: str, run: int) -> str:
    """Where run `run` stored a chunk (the chunk's record names its run; 0: a record written before
    runs had prefixes)."""
    if run == 0:
        return f"{checkpoint_prefix(job_id)}{chunk_key}.flac"
    return f"{run_checkpoint_prefix(job_id, run)}{chunk_key}.flac"


def unit_checkpoint_prefix(job_id: str, unit: int) -> str:
    """The checkpoint part objects of one speak unit of a job, of all its attempts."""
    return f"{checkpoint_prefix(job_id)}unit-{unit}/"


def checkpoint_part_key(job_id: str, unit: int, attempt: int, part: int) -> str:
    """One checkpoint part of a speak unit: the chunks its claim `attempt` finished in one checkpoint
    period, as one FLAC object. Attempt-scoped, so a holder that lost its lease and writes late can never
    replace a part the unit's record points to."""
    return f"{unit_checkpoint_prefix(job_id, unit)}attempt-{attempt}/part-{part:05d}.flac"


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
