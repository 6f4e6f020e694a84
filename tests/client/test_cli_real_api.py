"""The CLI against the real Flask app (served over HTTP on the test's Redis), without a worker."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner, Result
from werkzeug.serving import make_server

from client.cli import cli
from shared.settings import DEV_KEY
from tests.conftest import REPO, ServiceEnv

GAME_LINES = REPO / "examples" / "game-lines.csv"


@pytest.fixture
def api_url(service_env: ServiceEnv) -> Iterator[str]:
    from api import create_app

    server = make_server("127.0.0.1", 0, create_app(service_env.settings()), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def narrate(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--url", url, "--key", DEV_KEY, *args], catch_exceptions=False)


def test_submit_status_list_cancel_against_the_real_api(api_url: str, tmp_path: Path) -> None:
    src = tmp_path / "chapter.txt"
    src.write_text("It is a truth universally acknowledged.", encoding="utf-8")
    submitted = narrate(api_url, "submit", str(src), "--format", "flac", "--json")
    assert submitted.exit_code == 0, submitted.output
    job = json.loads(submitted.stdout)
    assert (job["status"], job["format"], job["inputs"][0]["id"]) == ("queued", "flac", "chapter")

    status = narrate(api_url, "status", job["id"])
    assert status.exit_code == 0
    assert "queued" in status.stdout

    listed = json.loads(narrate(api_url, "list", "--json", "--limit", "500").stdout)
    assert [j["id"] for j in listed] == [job["id"]]
    assert json.loads(narrate(api_url, "list", "--json", "--status", "running").stdout) == []

    canceled = narrate(api_url, "cancel", job["id"])
    assert canceled.exit_code == 0
    assert canceled.stdout.strip() == f"{job['id']} canceled"
    again = narrate(api_url, "cancel", job["id"])
    assert again.exit_code == 2
    assert "409" in again.stderr
    assert narrate(api_url, "status", job["id"]).exit_code == 1


def test_server_validation_errors_name_the_field(api_url: str, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("Hello.", encoding="utf-8")
    result = narrate(api_url, "submit", str(src), "--voice", "no-such-voice")
    assert result.exit_code == 2
    assert "unknown_voice" in result.stderr
    assert "(field voice)" in result.stderr

    denied = CliRunner().invoke(cli, ["--url", api_url, "--key", "wrong", "list"])
    assert denied.exit_code == 2
    assert "HTTP 401" in denied.stderr


@pytest.mark.slow
def test_game_lines_with_a_voice_column_through_the_cli_and_the_worker(
    service_env: ServiceEnv, start_worker, api_url: str, tmp_path: Path
) -> None:
    """examples/game-lines.csv with a voice column: one verified file per id and the batch manifest,
    then `narrate rm` removes the finished job."""
    start_worker(service_env)
    with GAME_LINES.open(encoding="utf-8", newline="") as src:
        rows = list(csv.DictReader(src))
    lines = tmp_path / "lines.csv"
    with lines.open("w", encoding="utf-8", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["id", "voice", "text"])  # the Piper engine has one voice; blank = the job's
        writer.writerows([row["id"], "joe" if row["character"] != "narrator" else "", row["text"]] for row in rows)
    out = tmp_path / "lines"
    args = ["submit", str(lines), "--format", "wav", "-o", str(out), "--poll-interval", "0.2", "--timeout", "400"]
    result = narrate(api_url, *args)
    assert result.exit_code == 0, result.output

    ids = [row["id"] for row in rows]
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{i}.wav" for i in ids] + ["manifest.json"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert [entry["id"] for entry in manifest["files"]] == ids
    for entry in manifest["files"]:
        data = (out / entry["file"]).read_bytes()
        assert entry["file"] == f"{entry['id']}.wav" and entry["status"] == "succeeded"
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["bytes"], entry["sha256"])
        assert sf.info(io.BytesIO(data)).duration > 0.3
    job_id = manifest["job_id"]
    assert json.loads(narrate(api_url, "status", job_id, "--json").stdout)["status"] == "succeeded"

    removed = narrate(api_url, "rm", job_id)
    assert removed.exit_code == 0, removed.output
    assert f"removed {job_id}" in removed.stdout
    gone = narrate(api_url, "status", job_id)
    assert gone.exit_code == 2 and "404" in gone.stderr
