"""`narrate`: submit texts, follow jobs and download results from the command line.

Exit codes: 0 success; 1 the job failed or was canceled; 2 a usage error (bad option, an input file
with faults: nothing is sent; an argument that is not a job or voice id: nothing is sent), an error
answer of the API (whose message is printed), or a download that failed or whose sha256 does not match
the job record or the batch manifest (no file is left at that path; `narrate download JOB -o ...`
fetches the results again). Server and key come from `--url`/`--key` or `NARRATE_API_URL`/
`NARRATE_API_KEY`. Input files are read by `client.inputs` (docs/cli.md); further command groups
(voices) attach to `cli` with `cli.add_command`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from client import books
from client import inputs as input_files
from client.api import DEFAULT_URL, FINISHED, ApiClient, ApiError, DownloadError, Job, Upload, book_options
from client.inputs import InputFormat, Inputs
from client.voices_cli import voices
from shared.audio.formats import AudioFormat

FORMATS = tuple(fmt.value for fmt in AudioFormat)
MASTERING_PRESETS = ("default", "acx", "podcast", "broadcast-ebu-r128")
"""`shared.audio.presets.MasteringPreset` (the CLI takes only the format names from shared/)."""
BITRATES = ("32", "48", "64", "96", "128", "160", "192", "256", "320")
STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
EXIT_JOB_FAILED = 1
EXIT_ERROR = 2
MANIFEST_NAME = "manifest.json"


class CliError(click.ClickException):
    """Printed as `Error: ...`, exit status 2 (the same as a usage error)."""

    exit_code = EXIT_ERROR


class NarrateGroup(click.Group):
    """Turns API and file-system errors raised anywhere in a command into a message and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            raise CliError(str(exc)) from exc
        except OSError as exc:  # e.g. a download folder that cannot be written
            raise CliError(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from exc


def load_inputs(path: Path, input_id: str | None, voice_map_path: Path | None) -> Inputs:
    """The checked inputs of `path` (`client.inputs`); any fault is a `CliError` listing them all."""
    try:
        voice_map = input_files.read_voice_map(voice_map_path) if voice_map_path else None
        return input_files.read_inputs(path, input_id, voice_map)
    except input_files.InputFileError as exc:
        raise CliError(str(exc)) from exc


def read_book_if_any(path: Path, input_id: str | None, voice_map: Path | None) -> books.Book | None:
    """The book in `path`: an EPUB, PDF, DOCX, Markdown or HTML file always; a plain text when it has at least two
    chapter headings (else it stays one input, as before)."""
    kind = books.BookFormat.of(path)
    if InputFormat.of(path) is not InputFormat.TEXT or voice_map is not None:
        return None
    try:
        book = books.read_book(path)
    except books.BookError as exc:
        raise CliError(str(exc)) from exc
    if kind is books.BookFormat.TEXT and (input_id is not None or len(book.body()) < 2):
        return None
    return book


def read_inputs(path: Path, input_id: str | None, voice_map_path: Path | None = None) -> list[dict[str, str]]:
    """The inputs of `path` as the API takes them (`load_inputs` without the line numbers; the demo's)."""
    return load_inputs(path, input_id, voice_map_path).items


def place_input_error(exc: ApiError, path: Path, inputs: Inputs) -> ApiError | CliError:
    """An API error about `inputs.N...` also names the line of the file that input came from."""
    match = re.match(r"inputs\.(\d+)", exc.field or "")
    line = inputs.line_of(int(match.group(1))) if match else None
    return CliError(f"{exc} [{path}:{line}]") if line is not None else exc


def describe_progress(job: Job) -> str:
    progress = job.get("progress") or {}
    done, total = progress.get("chunks_done") or 0, progress.get("chunks_total") or 0
    percent = progress.get("percent")
    parts = [job["status"]]
    if percent is not None and job["status"] != "queued":
        parts.append(f"{percent:.0f}%")
    if total:
        parts.append(f"({done}/{total} chunks, {progress.get('audio_seconds') or 0:.1f} s audio)")
    return " ".join(parts)


def describe_job(job: Job) -> str:
    rows = [("id", job["id"]), ("status", describe_progress(job)), ("created", job.get("created_at"))]
    if job.get("finished_at"):
        rows.append(("finished", job["finished_at"]))
    rows.append(("voice", job.get("voice") or "default"))
    rows.append(("format", job.get("format")))
    inputs = job.get("inputs") or []
    rows.append(("inputs", f"{len(inputs)} ({sum(i.get('chars', 0) for i in inputs)} chars)"))
    if job.get("rtf") is not None:
        rows.append(("rtf", f"{job['rtf']:.3f}"))
    result = job.get("result")
    if job.get("manifest"):
        rows.append(("manifest", job["manifest"]["url"]))
    if result:
        rows.append(("result", f"{result['url']}"))
        rows.append(("", f"{result.get('duration_seconds', 0):.1f} s, {result.get('bytes', 0)} bytes"))
    else:
        for item in job.get("inputs") or []:
            if item.get("result"):
                rows.append((f"  {item['id']}", item["result"]["url"]))
    if job.get("error"):
        rows.append(("error", f"{job['error']['code']}: {job['error']['message']}"))
    return "\n".join(f"{name:<9} {value}" for name, value in rows)


def wait_with_progress(client: ApiClient, job: Job, interval: float, timeout: float | None) -> Job:
    """Poll the job, drawing a tqdm bar over its chunks on stderr."""
    with tqdm(total=0, unit="chunk", desc=job["id"], file=sys.stderr, dynamic_ncols=True) as bar:

        def update(current: Job) -> None:
            progress = current.get("progress") or {}
            total = progress.get("chunks_total") or 0
            if total and bar.total != total:
                bar.total = total
            bar.n = progress.get("chunks_done") or 0
            bar.set_postfix_str(f"{current['status']}, {progress.get('audio_seconds') or 0:.0f} s audio", refresh=False)
            bar.refresh()

        return client.wait(job["id"], interval=interval, timeout=timeout, on_update=update)


def safe_filename(name: Any) -> str:
    """A result's file name as given by the API, refused if it would land outside the download folder."""
    if not isinstance(name, str) or name in ("", ".", "..", MANIFEST_NAME) or Path(name).name != name or "\\" in name:
        raise DownloadError(0, "unsafe_filename", f"the API named a result {name!r}; not saved")
    return name


def download_results(client: ApiClient, job: Job, out: Path) -> list[Path]:
    """Save the job's audio: its single result at `out` (or inside `out` when that is a directory);
    a batch's files inside the directory `out` with its manifest, see `download_batch`."""
    result = job.get("result")
    if result:
        dest = out / safe_filename(result["filename"]) if out.is_dir() else out
        return [client.download(result, dest)]
    return download_batch(client, job, out)


def download_batch(client: ApiClient, job: Job, out: Path) -> list[Path]:
    """Every input's file to `out/<filename>`, and the manifest to `out/manifest.json`, last, so that
    its presence means the whole batch arrived. Each file's sha256 must agree three ways: the manifest
    (fetched first, itself checked against the job's digest of it), the job record and the bytes."""
    if out.exists() and not out.is_dir():
        raise CliError(f"{out} is a file; a batch is saved into a directory")
    items = [item for item in job.get("inputs") or [] if item.get("result")]
    link = job.get("manifest")
    manifest = client.read(link) if link else None
    if manifest is None:
        click.echo(f"note: the API linked no manifest for {job['id']}; files checked against the job only", err=True)
    else:
        check_manifest(job["id"], manifest, items)
    failed = [item for item in job.get("inputs") or [] if item.get("status") == "failed"]
    for item in failed[:20]:
        error = item.get("error") or {}
        click.echo(f"line {item['id']} failed: {error.get('code')}: {error.get('message')}", err=True)
    if failed:
        click.echo(
            f"{len(failed)} lines failed and have no file; submit the same sheet again to redo only them "
            "(unchanged lines are reused)",
            err=True,
        )
    saved = [client.download(item["result"], out / safe_filename(item["result"]["filename"])) for item in items]
    if manifest is not None:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{MANIFEST_NAME}.part"
        tmp.write_bytes(manifest)
        saved.append(tmp.replace(out / MANIFEST_NAME))
    return saved


def check_manifest(job_id: str, manifest: bytes, items: list[dict[str, Any]]) -> None:
    """The manifest lists exactly the job's files, each with the sha256 of the job record."""
    try:
        # A line that failed on its own is listed without a file.
        listed = {entry["file"]: entry["sha256"] for entry in json.loads(manifest)["files"] if entry.get("file")}
    except (ValueError, KeyError, TypeError) as exc:
        raise DownloadError(0, "bad_manifest", f"the manifest of {job_id} cannot be read: {exc!r}") from exc
    recorded = {safe_filename(item["result"]["filename"]): item["result"].get("sha256") for item in items}
    if set(listed) != set(recorded):
        only_listed, only_recorded = sorted(set(listed) - set(recorded)), sorted(set(recorded) - set(listed))
        raise DownloadError(
            0,
            "manifest_mismatch",
            f"the manifest of {job_id} and the job disagree: only in the manifest {only_listed}, "
            f"only in the job {only_recorded}",
        )
    for name, digest in recorded.items():
        if listed[name] != digest:
            raise DownloadError(
                0, "manifest_mismatch", f"{name}: the manifest of {job_id} has sha256 {listed[name]}, the job {digest}"
            )


@click.group(cls=NarrateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="NARRATE_API_URL", default=DEFAULT_URL, show_default=True, help="API base URL.")
@click.option("--key", envvar="NARRATE_API_KEY", help="API key (env NARRATE_API_KEY).")
@click.pass_context
def cli(ctx: click.Context, url: str, key: str | None) -> None:
    """Long-form text to speech: submit texts, follow jobs, fetch audio."""
    client = ApiClient(url, key or "")
    ctx.call_on_close(client.close)
    ctx.obj = client


def job_options(command: Any) -> Any:
    """The options that shape a job, shared by `submit` and `estimate`."""
    options = [
        click.option("--voice", help="Voice name (the server's default when omitted)."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="mp3", show_default=True),
        click.option("--sample-rate", type=click.IntRange(8000, 48000), help="Output sample rate in Hz."),
        click.option("--id", "input_id", help="Input id for a text file (default: the file name without suffix)."),
        click.option(
            "--voice-map",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="character -> voice for a table's character column: a JSON object, or a CSV/TSV with columns "
            "character,voice.",
        ),
        click.option(
            "--concatenate/--separate",
            default=None,
            help="One file for all inputs, or one per input (default: one for a text, one per table row).",
        ),
        click.option(
            "--mastering", type=click.Choice(MASTERING_PRESETS), help="Mastering preset (default: the server's)."
        ),
        click.option("--bitrate", type=click.Choice(BITRATES), help="Constant bitrate of MP3/M4B files in kb/s."),
        click.option(
            "--chapter",
            "chapters",
            multiple=True,
            help="Book: narrate only this chapter (number, range or title); repeatable.",
        ),
        click.option(
            "--skip-chapter", "skip_chapters", multiple=True, help="Book: leave this chapter out; repeatable."
        ),
        click.option("--include-matter", is_flag=True, help="Book: keep front and back matter (contents, index, ...)."),
        click.option(
            "--substitute",
            "substitutions",
            multiple=True,
            help="Book: PATTERN=>REPLACEMENT regex on the spoken text; repeatable.",
        ),
        click.option(
            "--substitutions",
            "substitutions_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Book: a file of PATTERN=>REPLACEMENT lines.",
        ),
        click.option("--title", help="Book title (default: the book's own)."),
        click.option("--author", help="Book author (tags)."),
        click.option("--narrator", help="Narrator (tags)."),
        click.option(
            "--cover",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Cover image (JPEG/PNG; default: the EPUB's).",
        ),
        click.option(
            "--chapter-files", type=click.Choice(FORMATS), help="Book: also one file per chapter in this format."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dataclass
class Submission:
    """A file's inputs and the job fields its options set, checked before anything is sent."""

    inputs: Inputs
    fields: dict[str, Any]


def prepare(file: Path, options: dict[str, Any]) -> Submission:
    """The inputs of `file` (a book's chapters, a text, a table) and the job body's other fields."""
    book_fields: dict[str, Any] | None = None
    book = read_book_if_any(file, options["input_id"], options["voice_map"])
    if book is not None:
        try:
            rules = [books.Substitution.parse(rule) for rule in options["substitutions"]]
            if options["substitutions_file"]:
                rules += books.read_substitutions(options["substitutions_file"])
            items = books.book_inputs(
                book,
                only=options["chapters"],
                skip=options["skip_chapters"],
                include_matter=options["include_matter"],
                substitutions=rules,
            )
        except books.BookError as exc:
            raise CliError(str(exc)) from exc
        cover = options["cover"]
        if cover is not None:
            book.cover = (cover.read_bytes(), "image/png" if cover.suffix.lower() == ".png" else "image/jpeg")
        book_fields = book_options(
            book, options["author"], options["narrator"], options["title"], options["chapter_files"]
        )
        inputs = Inputs(items)
        titles = ", ".join(item.get("title", item["id"]) for item in items[:6])
        click.echo(f"book: {len(items)} chapter(s): {titles}{', ...' if len(items) > 6 else ''}", err=True)
    else:
        book_only = ("chapters", "skip_chapters", "substitutions", "substitutions_file", "chapter_files")
        if any(options[name] for name in book_only):
            raise CliError(
                f"{file} has no chapters: --chapter, --skip-chapter, --substitute and --chapter-files are for books"
            )
        inputs = load_inputs(file, options["input_id"], options["voice_map"])
    for note in inputs.notes:
        click.echo(f"note: {note}", err=True)
    concatenate = options["concatenate"]
    if concatenate is None:
        concatenate = book is not None or InputFormat.of(file) is InputFormat.TEXT
    fields = {
        "voice": options["voice"],
        "format": options["fmt"],
        "sample_rate": options["sample_rate"],
        "concatenate": concatenate,
        "mastering": options["mastering"],
        "bitrate_kbps": int(options["bitrate"]) if options["bitrate"] else None,
        "book": book_fields,
    }
    return Submission(inputs, fields)


def first_minute(items: list[dict[str, str]], characters: int) -> list[dict[str, str]]:
    """The opening of the first input, cut at the first sentence end past `characters` (about a minute
    at the server's speech rate): what `--sample` renders before a full run."""
    first = dict(items[0])
    text = first["text"]
    if len(text) > characters:
        match = re.compile(r"[.!?…][\"'”’)]*(?=\s)").search(text, characters)
        first["text"] = text[: match.end()] if match else text[:characters]
    first["id"] = f"{first['id']}-sample"
    return [first]


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@job_options
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as JSON.")
@click.pass_obj
def estimate(client: ApiClient, file: Path, as_json: bool, **options: Any) -> None:
    """Estimate FILE's audio length per chapter and time to make it, without queueing anything."""
    submission = prepare(file, options)
    answer = client.estimate(submission.inputs.items, **submission.fields)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    for chapter in answer["chapters"]:
        click.echo(f"{chapter['id']}  {_hms(chapter['audio_seconds'])}  {chapter['title']}")
    total = f"{answer['characters']} characters, about {_hms(answer['audio_seconds'])} of audio"
    if answer.get("processing_seconds") is not None:
        total += f", about {_hms(answer['processing_seconds'])} to make (rtf {answer['rtf']})"
    click.echo(total)


def _hms(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@job_options
@click.option(
    "--sample", is_flag=True, help="Render only about the first minute (of the first chapter) to check the sound."
)
@click.option("--idempotency-key", help="Resubmitting with the same key returns the same job.")
@click.option("--wait", is_flag=True, help="Follow the job with a progress bar until it finishes.")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    help="Download the audio here once finished (implies --wait); a directory for per-input files.",
)
@click.option("--poll-interval", type=click.FloatRange(0.01), default=1.0, show_default=True)
@click.option("--timeout", type=click.FloatRange(1), help="Give up waiting after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.pass_obj
def submit(
    client: ApiClient,
    file: Path,
    sample: bool,
    idempotency_key: str | None,
    wait: bool,
    out: Path | None,
    poll_interval: float,
    timeout: float | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Queue FILE for narration: a UTF-8 text, a book (.epub, .pdf, .docx, .md, .html, or a text with chapter headings:
    one titled input per chapter), or a .csv/.tsv/.jsonl table with the columns id and text (optionally
    voice, character), checked whole before anything is sent."""
    submission = prepare(file, options)
    inputs = submission.inputs
    fields = dict(submission.fields)
    if sample:
        answer = client.estimate(inputs.items, **fields)
        inputs = Inputs(first_minute(inputs.items, answer["sample_characters"]))
        fields["book"] = {key: value for key, value in (fields["book"] or {}).items() if key != "chapter_files"} or None
        click.echo(f"sample: the first {len(inputs.items[0]['text'])} characters of {inputs.items[0]['id']}", err=True)
    on_sent = upload_report(len(inputs.items)) if InputFormat.of(file) is not InputFormat.TEXT else None
    try:
        job = client.submit(inputs.items, idempotency_key=idempotency_key, on_sent=on_sent, **fields)
    except ApiError as exc:
        raise place_input_error(exc, file, inputs) from exc
    chars = sum(len(i["text"]) for i in inputs.items)
    click.echo(f"queued job {job['id']}: {len(inputs.items)} input(s), {chars} chars", err=True)
    if not (wait or out):
        click.echo(json.dumps(job, indent=2) if as_json else job["id"])
        return
    try:
        job = wait_with_progress(client, job, poll_interval, timeout)
    except KeyboardInterrupt:
        click.echo(f"\nstopped waiting; job {job['id']} goes on (narrate status {job['id']})", err=True)
        sys.exit(130)
    finish(job, as_json)
    if out and job["status"] == "succeeded":
        for path in download_results(client, job, out):
            click.echo(f"saved {path}", err=True)
    if job["status"] != "succeeded":
        sys.exit(EXIT_JOB_FAILED)


def upload_report(lines: int) -> Callable[[Upload], None]:
    """What `submit` of a sheet prints on stderr once its body is sent (before the API has answered):
    `sent 20000 lines (2.2 MB JSON as 0.3 MB gzip)`."""

    def report(upload: Upload) -> None:
        size = _megabytes(upload.json_bytes) + " JSON"
        if upload.compressed:
            size += f" as {_megabytes(upload.sent_bytes)} gzip"
        again = f", try {upload.attempt}" if upload.attempt > 1 else ""
        click.echo(f"sent {lines} lines ({size}{again})", err=True)

    return report


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"


def finish(job: Job, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(job, indent=2))
    else:
        click.echo(describe_job(job))
    if job["status"] in ("failed", "canceled"):
        error = job.get("error") or {}
        click.echo(f"job {job['id']} {job['status']}: {error.get('message', '')}".rstrip(": "), err=True)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.pass_obj
def status(client: ApiClient, job_id: str, as_json: bool) -> None:
    """Show a job; exit status 1 when it failed or was canceled."""
    job = client.get_job(job_id)
    finish(job, as_json)
    if job["status"] in FINISHED - {"succeeded"}:
        sys.exit(EXIT_JOB_FAILED)


@cli.command(name="list")
@click.option("--status", "status_filter", type=click.Choice(STATUSES))
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as a JSON array.")
@click.pass_obj
def list_jobs(client: ApiClient, status_filter: str | None, limit: int, as_json: bool) -> None:
    """List your jobs, newest first."""
    jobs = list(client.iter_jobs(status=status_filter, limit=limit))
    if as_json:
        click.echo(json.dumps(jobs, indent=2))
        return
    if not jobs:
        click.echo("no jobs", err=True)
        return
    width = max(len(j["id"]) for j in jobs)
    click.echo(f"{'ID':<{width}}  {'CREATED':<25} {'INPUTS':>6}  STATUS")
    for job in jobs:
        created = job.get("created_at") or ""
        click.echo(f"{job['id']:<{width}}  {created:<25} {len(job.get('inputs') or []):>6}  {describe_progress(job)}")


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.pass_obj
def cancel(client: ApiClient, job_id: str, as_json: bool) -> None:
    """Cancel a queued or running job (an error if it already finished)."""
    job = client.cancel(job_id)
    click.echo(json.dumps(job, indent=2) if as_json else f"{job['id']} {job['status']}")


@cli.command()
@click.argument("job_id")
@click.pass_obj
def rm(client: ApiClient, job_id: str) -> None:
    """Delete a finished job: its record, result files, manifest and checkpoints (its idempotency key
    then names a new job). A queued or running job is refused: cancel it first."""
    job = client.get_job(job_id)
    if job["status"] not in FINISHED:
        raise CliError(f"job {job_id} is {job['status']}; `narrate cancel {job_id}` first, then rm it")
    try:
        answer = client.delete_job(job_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        answer = None  # a DELETE repeated after its answer was lost: the first one removed it
    if answer is not None:  # it was not finished after all: the API cancelled it instead
        raise CliError(f"job {job_id} was {answer['status']} and is not removed; run rm again once it has stopped")
    files = sum(1 for item in job.get("inputs") or [] if item.get("result")) + bool(job.get("result"))
    parts = [f"{files} result file{'s' if files != 1 else ''}"] + (["its manifest"] if job.get("manifest") else [])
    click.echo(f"removed {job_id} ({job['status']}): its record, {', '.join(parts)} and checkpoints")


@cli.command()
@click.argument("job_id")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="File for a single result, or the directory for a batch's files and manifest.json.",
)
@click.pass_obj
def download(client: ApiClient, job_id: str, out: Path) -> None:
    """Download the results of a succeeded job (again), checking every sha256."""
    job = client.get_job(job_id)
    if job["status"] != "succeeded":
        raise CliError(f"job {job_id} is {job['status']}; only a succeeded job has results")
    for path in download_results(client, job, out):
        click.echo(f"saved {path}", err=True)


cli.add_command(voices)


def main(argv: list[str] | None = None) -> None:
    """Console script `narrate`."""
    cli.main(args=argv, prog_name="narrate")


if __name__ == "__main__":
    main()
