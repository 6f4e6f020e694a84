"""A game studio's line sheet through the real API, Redis queue and worker (Piper on CPU by default).

Starts the local stack (gunicorn API, `--workers` Celery workers, Redis if none answers), submits a sheet of
`--lines` short lines as one job of separate files (WAV), waits for it, then submits the same sheet
with `--changed` lines rewritten. `--bad-percent` of the lines (default 1 %) are cast in a cloned
voice, which this Piper worker cannot use: exactly those lines must end `failed`
(`cloning_unsupported`) and every other line succeed. Reports for each run: submission time (the POST
of the whole body), wall seconds from submission to `succeeded`, lines per second end to end, engine
seconds and the share of the engines' wall time outside synthesis (planning, queueing, cache look-ups, stitching,
mastering, encoding, upload, polling); for the re-run also how many lines were synthesised (must be
exactly `--changed`), how many reused, and whether every unchanged line's file is byte-identical (the
sha256 of both runs). Before that, `--scale-lines` lines (default 20,000) are submitted once and timed to
planned (every line chunked, its speak units ready), then canceled: the submission and planning
figures at full size on a machine where synthesising them all would take hours (Piper on a shared CPU).
Figures go to bench/results/line_sheet-<lines>.json with the machine they ran on.

    .venv/bin/python bench/line_sheet.py [--lines 20000] [--changed 300] [--bad-percent 1] [--scale-lines 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client.api import ApiClient  # noqa: E402
from devstack.stack import DEV_KEY, LocalStack  # noqa: E402
from shared.services import Services  # noqa: E402
from shared.settings import DEV_TENANT  # noqa: E402

CHARACTERS = ("guard", "merchant", "smith", "innkeeper", "captain", "narrator")
PHRASES = (
    "Halt! Who goes there?",
    "Potions, scrolls and rope, all for sale.",
    "The forge is hot; come back at dawn.",
    "A room for the night costs two silver.",
    "Hold the line, they are coming!",
    "The road north was quiet that evening.",
)
_NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
# Barks: a name, a verb and a thing (25 x 40 x 25 distinct lines of 3-4 words, about 1.5 s each).
NAMES = (
    "Mira", "Tomas", "Ada", "Bren", "Cole", "Dara", "Elin", "Finn", "Greta", "Hugo", "Ivo", "Jana", "Kai",
    "Lena", "Marek", "Nora", "Otto", "Pia", "Rolf", "Sara", "Tess", "Ulf", "Vera", "Wim", "Yara",
)  # fmt: skip
VERBS = (
    "watch", "bring", "guard", "check", "close", "open", "fetch", "clean", "mend", "hide", "find", "hold",
    "move", "sell", "count", "burn", "load", "drop", "test", "lock", "light", "carry", "raise", "lower", "mark",
    "cover", "fill", "empty", "keep", "leave", "wash", "pack", "tie", "cut", "dig", "feed", "warm", "cool",
    "show", "take",
)  # fmt: skip
THINGS = (
    "the gate", "the rope", "the boat", "the door", "the cart", "the map", "the fire", "the bell", "the wall",
    "the horse", "the lamp", "the chest", "the well", "the bridge", "the tower", "the anvil", "the barrel",
    "the net", "the flag", "the oven", "the cellar", "the ladder", "the stove", "the sack", "the shield",
)  # fmt: skip


def _text(index: int, style: str) -> str:
    if style == "barks":
        name = NAMES[index % len(NAMES)]
        verb = VERBS[(index // len(NAMES)) % len(VERBS)]
        thing = THINGS[(index // (len(NAMES) * len(VERBS))) % len(THINGS)]
        return f"{name}, {verb} {thing}."
    return f"{PHRASES[(index // len(CHARACTERS)) % len(PHRASES)]} Line {index}."


def sheet(
    lines: int, changed: int = 0, bad: int = 0, bad_voice: str = "", style: str = "numbered"
) -> list[dict[str, str]]:
    """Short distinct lines: `numbered` (a phrase of 3-8 words and "Line N.", about 3.8 s each) or `barks`
    (a name, a verb and a thing, about 1.5 s). The first of every `lines // changed` (`changed` of them)
    get new text, and the second of every `lines // bad` (`bad` of them) the voice `bad_voice`."""
    out = []
    step = lines // changed if changed else 0
    bad_step = lines // bad if bad else 0
    for index in range(lines):
        character = CHARACTERS[index % len(CHARACTERS)]
        text = _text(index, style)
        if step and index % step == 0 and index // step < changed:
            text = f"{_NUMBER_WORDS[index % 10].capitalize()} more words, rewritten. Line {index}."
        line = {"id": f"{character}_{index:05d}", "text": text}
        if bad_step and index % bad_step == 1 and index // bad_step < bad:
            line["voice"] = bad_voice
        out.append(line)
    return out


def cloned_voice(stack: LocalStack) -> str:
    """A ready cloned voice of the dev tenant, recorded straight in the stack's store: the API takes lines
    in it, and the Piper worker (which cannot clone) fails each of them alone."""
    services = Services.from_settings(stack.settings, client_name="narrate-bench")
    voice_id = services.voices.new_id()
    consent = {"confirmed": True, "speaker_name": "Bench", "statement": "I consent."}
    services.voices.create(
        voice_id, DEV_TENANT, name="Bench", description=None, language="en", consent=consent, clips=[], limit=10
    )
    services.voices.mark_ready(voice_id, clips=[], preview=False)
    return voice_id


def run(client: ApiClient, inputs: list[dict[str, str]], fmt: str, workers: int = 1) -> dict[str, Any]:
    """One sheet to its end. The share outside synthesis is of the engines' wall time: `workers` engines
    ran through the whole wall time, and their summed engine seconds were synthesis."""
    body_bytes = len(json.dumps({"inputs": inputs}).encode())
    submitted = time.perf_counter()
    job = client.submit(inputs, format=fmt, concatenate=False)
    submission = time.perf_counter() - submitted
    while job["status"] not in ("succeeded", "failed", "canceled"):
        time.sleep(2.0)
        job = client.get_job(job["id"])
    wall = time.perf_counter() - submitted
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['status']}: {job['error']}")
    engine = job["usage"]["engine_seconds"]
    failed = {item["id"]: (item["error"] or {}).get("code") for item in job["inputs"] if item["status"] == "failed"}
    return {
        "lines": len(inputs),
        "body_bytes": body_bytes,
        "submission_seconds": round(submission, 3),
        "wall_seconds": round(wall, 2),
        "lines_per_second": round(len(inputs) / wall, 2),
        "audio_seconds": job["usage"]["audio_seconds"],
        "engine_seconds": engine,
        "outside_synthesis_share": round((wall * workers - engine) / (wall * workers), 4),
        "line_counts": job["lines"],
        "chunks_synthesised": job["progress"]["chunks_total"],
        "worker_phases": job["timings"],
        "failed_lines": failed,
        "sha256": {item["id"]: item["result"]["sha256"] for item in job["inputs"] if item["result"]},
    }


def planned(client: ApiClient, inputs: list[dict[str, str]], fmt: str) -> dict[str, Any]:
    """Submit, wait until the plan unit registered every chunk, cancel."""
    submitted = time.perf_counter()
    job = client.submit(inputs, format=fmt, concatenate=False)
    submission = time.perf_counter() - submitted
    while job["progress"]["chunks_total"] < len(inputs) and job["status"] in ("queued", "running"):
        time.sleep(0.5)
        job = client.get_job(job["id"])
    plan = time.perf_counter() - submitted
    client.cancel(job["id"])
    return {
        "lines": len(inputs),
        "body_bytes": len(json.dumps({"inputs": inputs}).encode()),
        "submission_seconds": round(submission, 3),
        "submitted_to_planned_seconds": round(plan, 2),
        "chunks_planned": job["progress"]["chunks_total"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--changed", type=int, default=300)
    parser.add_argument("--scale-lines", type=int, default=20000)
    parser.add_argument("--bad-percent", type=float, default=1.0, help="Lines in a voice the worker cannot use.")
    parser.add_argument("--format", default="wav")
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes (one Piper engine each)")
    parser.add_argument("--style", choices=("numbered", "barks"), default="numbered", help="the lines' text")
    parser.add_argument("--note", default="", help="Saved with the figures (e.g. the machine was shared).")
    args = parser.parse_args()
    engine = os.environ.get("NARRATE_ENGINE", "piper")
    with tempfile.TemporaryDirectory(prefix="narrate-bench-") as tmp:
        env = {
            "NARRATE_STORAGE_URL": f"file://{tmp}/storage",
            "NARRATE_KEY_PREFIX": f"narrate-bench-{os.getpid()}",
            "NARRATE_QUEUE_NAME": f"narrate-bench-{os.getpid()}",
            "NARRATE_WORKER_METRICS_PORT": "0",
        }
        stack = LocalStack(port=args.port, workers=args.workers, env=env, log_dir=Path(tmp) / "logs", echo=False)
        with stack, ApiClient(stack.url, DEV_KEY, timeout=300) as client:
            run(client, [{"id": "warm", "text": "Warming up the worker."}, {"id": "up", "text": "Ready."}], args.format)
            scale = (
                planned(client, sheet(args.scale_lines, style=args.style), args.format) if args.scale_lines else None
            )
            bad = round(args.lines * args.bad_percent / 100)
            voice = cloned_voice(stack) if bad else ""
            first = run(client, sheet(args.lines, 0, bad, voice, args.style), args.format, args.workers)
            rerun = run(client, sheet(args.lines, args.changed, bad, voice, args.style), args.format, args.workers)
    if scale is not None:
        print(
            f"scale: {scale['lines']} lines ({scale['body_bytes'] / 1e6:.1f} MB), submission "
            f"{scale['submission_seconds']:.2f} s, submitted to planned {scale['submitted_to_planned_seconds']:.1f} s"
        )
    for name, figures in (("first run", first), ("re-run", rerun)):
        print(
            f"{name}: {figures['lines']} lines, submission {figures['submission_seconds']:.2f} s "
            f"({figures['body_bytes'] / 1e6:.1f} MB), wall {figures['wall_seconds']:.1f} s, "
            f"{figures['lines_per_second']:.1f} lines/s, engine {figures['engine_seconds']:.1f} s, "
            f"outside synthesis {100 * figures['outside_synthesis_share']:.1f}%, lines {figures['line_counts']}"
        )
    exact = rerun["line_counts"]["synthesised"] == args.changed and rerun["chunks_synthesised"] == args.changed
    print(f"re-run synthesised exactly the {args.changed} changed lines: {exact}")
    bad_ids = {line["id"] for line in sheet(args.lines, 0, bad, voice, args.style) if "voice" in line}
    bad_exact = all(
        set(figures["failed_lines"]) == bad_ids and set(figures["failed_lines"].values()) <= {"cloning_unsupported"}
        for figures in (first, rerun)
    )
    print(f"exactly the {len(bad_ids)} bad lines failed, in both runs: {bad_exact}")
    changed_ids = {
        new["id"]
        for new, old in zip(
            sheet(args.lines, args.changed, style=args.style), sheet(args.lines, style=args.style), strict=True
        )
        if new != old
    }
    unchanged = [key for key in first["sha256"] if key not in changed_ids]
    identical = sum(first["sha256"][key] == rerun["sha256"].get(key) for key in unchanged)
    print(f"unchanged lines byte-identical in the re-run: {identical} of {len(unchanged)}")
    for figures in (first, rerun):
        figures["failed_lines"] = len(figures["failed_lines"])
        del figures["sha256"]
    result = {
        "benchmark": "line_sheet",
        "engine": engine,
        # Speech-recognition QC of every line (on by default; its CPU cost is in bench/qc_cost.py).
        "qc_asr": os.environ.get("NARRATE_QC_ASR", "default (pocketsphinx)"),
        "alignment": os.environ.get("NARRATE_ALIGNMENT", "default (on)"),
        "worker_processes": args.workers,
        "format": args.format,
        "style": args.style,
        "lines": args.lines,
        "changed": args.changed,
        "scale": scale,
        "first_run": first,
        "rerun": rerun,
        "rerun_synthesised_exactly_changed": exact,
        "bad_lines": len(bad_ids),
        "exactly_the_bad_lines_failed": bad_exact,
        "unchanged_lines": len(unchanged),
        "unchanged_lines_byte_identical": identical,
        "note": args.note,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
            "gpu": None,
        },
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out = REPO / "bench" / "results" / f"line_sheet-{args.lines}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out.relative_to(REPO)}")
    return 0 if exact and bad_exact and identical == len(unchanged) else 1


if __name__ == "__main__":
    raise SystemExit(main())
