"""`narrate`: submit texts, follow jobs and download results from the command line.

Exit codes: 0 success, 1 the job failed or was canceled, 2 usage error or an error answer of the API
(whose message is printed). Server and key come from `--url`/`--key` or `NARRATE_API_URL`/
`NARRATE_API_KEY`. Further command groups (voices) attach to `cli` with `cli.add_command`.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from client.api import DEFAULT_URL, FINISHED, ApiClient, ApiError, Job
from client.voices_cli import voices
from shared.audio.formats import AudioFormat

FORMATS = tuple(fmt.value for fmt in AudioFormat)
STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
EXIT_JOB_FAILED = 1
EXIT_ERROR = 2


class CliError(click.ClickException):
    """Printed as `Error: ...`, exit status 2 (the same as a usage error)."""

    exit_code = EXIT_ERROR


class NarrateGroup(click.Group):
    """Turns API errors raised anywhere in a command into a printed message and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            raise CliError(str(exc)) from exc


def read_inputs(path: Path, input_id: str | None) -> list[dict[str, str]]:
    """The job inputs in a file: a UTF-8 text is one input, a CSV with `id,text` columns one per row."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"{path} is not UTF-8 text (invalid byte at offset {exc.start}); convert it first, "
            f"e.g. iconv -f latin1 -t utf-8"
        ) from exc
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    if path.suffix.lower() != ".csv":
        if not text.strip():
            raise CliError(f"{path} is empty")
        return [{"id": input_id or path.stem, "text": text}]
    if input_id:
        raise CliError("--id names the input of a text file; a CSV brings its ids in its `id` column")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"id", "text"} - set(reader.fieldnames or [])
    if missing:
        raise CliError(
            f"{path} needs a header row with the columns id and text (missing: {', '.join(sorted(missing))})"
        )
    inputs = [{"id": row["id"].strip(), "text": row["text"]} for row in reader if (row["text"] or "").strip()]
    if not inputs:
        raise CliError(f"{path} has no rows with text")
    return inputs


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


def download_results(client: ApiClient, job: Job, out: Path) -> list[Path]:
    """Save the job's audio: its single result at `out` (or inside `out` when that is a directory),
    per-input results inside the directory `out`."""
    result = job.get("result")
    if result:
        dest = out / result["filename"] if out.is_dir() else out
        return [client.download(result, dest)]
    saved = []
    for item in job.get("inputs") or []:
        if item.get("result"):
            name = item["result"].get("filename") or f"{item['id']}.{job.get('format', 'mp3')}"
            saved.append(client.download(item["result"], out / name))
    return saved


@click.group(cls=NarrateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="NARRATE_API_URL", default=DEFAULT_URL, show_default=True, help="API base URL.")
@click.option("--key", envvar="NARRATE_API_KEY", help="API key (env NARRATE_API_KEY).")
@click.pass_context
def cli(ctx: click.Context, url: str, key: str | None) -> None:
    """Long-form text to speech: submit texts, follow jobs, fetch audio."""
    client = ApiClient(url, key or "")
    ctx.call_on_close(client.close)
    ctx.obj = client


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--voice", help="Voice name (the server's default when omitted).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="mp3", show_default=True)
@click.option("--sample-rate", type=click.IntRange(8000, 48000), help="Output sample rate in Hz.")
@click.option("--id", "input_id", help="Input id for a text file (default: the file name without suffix).")
@click.option(
    "--concatenate/--separate",
    default=None,
    help="One file for all inputs, or one per input (default: one for a text, one per CSV row).",
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
    voice: str | None,
    fmt: str,
    sample_rate: int | None,
    input_id: str | None,
    concatenate: bool | None,
    idempotency_key: str | None,
    wait: bool,
    out: Path | None,
    poll_interval: float,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Queue FILE (UTF-8 text, or CSV with id,text columns) for narration."""
    inputs = read_inputs(file, input_id)
    if concatenate is None:
        concatenate = file.suffix.lower() != ".csv"
    job = client.submit(
        inputs,
        voice=voice,
        format=fmt,
        sample_rate=sample_rate,
        concatenate=concatenate,
        idempotency_key=idempotency_key,
    )
    chars = sum(len(i["text"]) for i in inputs)
    click.echo(f"queued job {job['id']}: {len(inputs)} input(s), {chars} chars", err=True)
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


cli.add_command(voices)


def main(argv: list[str] | None = None) -> None:
    """Console script `narrate`."""
    cli.main(args=argv, prog_name="narrate")


if __name__ == "__main__":
    main()
