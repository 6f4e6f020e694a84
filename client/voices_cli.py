"""`narrate voices ...`: clone a voice from recordings, list, show and delete voices.

Attached to the `narrate` group in `client.cli` (`cli.add_command(voices)`). Talks HTTP only.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from client.api import ApiClient, ApiError, voice_path

Voice = dict[str, Any]
EXIT_FAILED = 1


def add_voice(
    client: ApiClient,
    name: str,
    files: list[Path],
    *,
    consent_by: str,
    consent_at: str | None = None,
    description: str | None = None,
    language: str | None = None,
) -> Voice:
    """Upload reference clips (multipart, streamed from disk); the voice comes back `processing`."""
    fields = {"name": name, "consent_by": consent_by}
    for key, value in (("consent_at", consent_at), ("description", description), ("language", language)):
        if value:
            fields[key] = value
    with ExitStack() as stack:
        parts = [
            ("files", (path.name, stack.enter_context(path.open("rb")), "application/octet-stream")) for path in files
        ]
        # Uploads are not retried by the session, and may take longer than a JSON call.
        return client.request("POST", "/v1/voices", data=fields, files=parts, timeout=max(client.timeout, 300)).json()


def wait_voice(client: ApiClient, voice_id: str, *, interval: float = 1.0, timeout: float | None = None) -> Voice:
    """Poll until the voice is `ready` or `failed`."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        voice = client.request("GET", voice_path(voice_id)).json()
        if voice["status"] != "processing":
            return voice
        if deadline is not None and time.monotonic() > deadline:
            raise ApiError(0, "timeout", f"voice {voice_id} still processing after {timeout:.0f} s")
        time.sleep(interval)


def describe_voice(voice: Voice) -> str:
    rows = [("id", voice["id"]), ("name", voice["name"]), ("status", voice["status"])]
    if voice.get("language"):
        rows.append(("language", voice["language"]))
    if voice.get("description"):
        rows.append(("about", voice["description"]))
    if voice.get("mix"):
        rows.append(("mix", " + ".join(f"{part['voice']}({part['weight']:g})" for part in voice["mix"])))
    else:
        consent = voice.get("consent") or {}
        rows.append(("consent", f"{consent.get('by', '?')} at {consent.get('at', '?')}"))
    for clip in voice.get("clips") or []:
        speech = clip.get("speech_seconds")
        rows.append(("clip", f"{clip['filename']} ({speech if speech is not None else clip['duration_seconds']} s)"))
    if voice.get("preview_url"):
        rows.append(("preview", voice["preview_url"]))
    if voice.get("error"):
        rows.append(("error", f"{voice['error']['code']}: {voice['error']['message']}"))
    return "\n".join(f"{label:<9} {value}" for label, value in rows)


@click.group()
def voices() -> None:
    """Cloned voices: add (from recordings, with the speaker's consent), list, show, rm."""


@voices.command("add")
@click.argument("name")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--consent", "consent_by", required=True, help="Who consented to cloning their voice (stored).")
@click.option("--consent-at", help="When they consented (ISO 8601; default now).")
@click.option("--description", help="A note about the voice.")
@click.option("--language", help="Language/accent tag, e.g. en_us.")
@click.option("--wait", is_flag=True, help="Wait until the voice is ready (exit 1 if cloning fails).")
@click.option("--timeout", type=click.FloatRange(1), help="Give up waiting after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the voice as JSON.")
@click.pass_obj
def add(
    client: ApiClient,
    name: str,
    files: tuple[Path, ...],
    consent_by: str,
    consent_at: str | None,
    description: str | None,
    language: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Clone voice NAME from reference recordings FILE... (3-30 s of speech each)."""
    voice = add_voice(
        client, name, list(files), consent_by=consent_by, consent_at=consent_at, description=description,
        language=language,
    )  # fmt: skip
    click.echo(f"voice {voice['id']} queued for cloning ({len(files)} clip(s))", err=True)
    if wait:
        voice = wait_voice(client, voice["id"], timeout=timeout)
    if as_json:
        click.echo(json.dumps(voice, indent=2))
    else:
        click.echo(describe_voice(voice) if wait else voice["id"])
    if voice["status"] == "failed":
        click.echo(f"voice {voice['id']} failed: {voice['error']['message']}", err=True)
        sys.exit(EXIT_FAILED)


@voices.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the answer of GET /v1/voices as JSON.")
@click.pass_obj
def list_voices(client: ApiClient, as_json: bool) -> None:
    """Your cloned voices, then the engine's built-in voices and language tags."""
    body = client.request("GET", "/v1/voices").json()
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    own = body.get("data") or []
    if own:
        width = max(len(v["id"]) for v in own)
        click.echo(f"{'ID':<{width}}  {'STATUS':<10} NAME")
        for voice in own:
            click.echo(f"{voice['id']:<{width}}  {voice['status']:<10} {voice['name']}")
    else:
        click.echo("no cloned voices", err=True)
    builtin = ", ".join(v["id"] for v in body.get("builtin") or [])
    click.echo(f"built-in ({body.get('engine')}): {builtin}")


@voices.command("show")
@click.argument("voice_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(client: ApiClient, voice_id: str, as_json: bool) -> None:
    """Show a voice (status, clips, consent, preview link)."""
    voice = client.request("GET", voice_path(voice_id)).json()
    click.echo(json.dumps(voice, indent=2) if as_json else describe_voice(voice))


@voices.command("rm")
@click.argument("voice_id")
@click.pass_obj
def remove(client: ApiClient, voice_id: str) -> None:
    """Delete a voice with its embedding and reference audio; queued jobs using it fail."""
    client.request("DELETE", voice_path(voice_id))
    click.echo(f"deleted {voice_id}", err=True)
