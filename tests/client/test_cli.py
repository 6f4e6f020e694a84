"""The `narrate` CLI over real HTTP against a server that answers per the API contract."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from client.cli import cli
from tests.client.contract_server import API_KEY, ContractApi, audio_bytes, serve_contract_api

REPO = Path(__file__).resolve().parents[2]
GAME_LINES = REPO / "examples" / "game-lines.csv"


@pytest.fixture
def api() -> Iterator[ContractApi]:
    with serve_contract_api() as server:
        yield server


def narrate(api: ContractApi, *args: str, key: str = API_KEY) -> Result:
    runner = CliRunner()
    return runner.invoke(cli, ["--url", api.base_url, "--key", key, *args], catch_exceptions=False)


def posted(api: ContractApi) -> dict:
    return next(r for r in api.requests if r["method"] == "POST")


def test_submit_prints_job_id_and_sends_the_text(api: ContractApi, tmp_path: Path) -> None:
    text = "It is a truth universally acknowledged — that a single man…\n"
    src = tmp_path / "chapter-1.txt"
    src.write_text(text, encoding="utf-8")
    result = narrate(api, "submit", str(src), "--voice", "joe", "--format", "flac", "--sample-rate", "24000")
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    assert job_id in api.jobs
    request = posted(api)
    assert request["headers"]["Idempotency-Key"]
    body = request["json"]
    assert body["inputs"] == [{"id": "chapter-1", "text": text}]
    assert (body["voice"], body["format"], body["sample_rate"], body["concatenate"]) == (
        "joe",
        "flac",
        24000,
        True,
    )


def test_submit_wait_downloads_the_verified_result(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "book.txt"
    src.write_text("Chapter one.\n\nChapter two.", encoding="utf-8")
    out = tmp_path / "out" / "book.mp3"
    result = narrate(api, "submit", str(src), "--id", "ch1", "--wait", "-o", str(out), "--poll-interval", "0.05")
    assert result.exit_code == 0, result.output
    job_id = next(iter(api.jobs))
    assert out.read_bytes() == audio_bytes(job_id, "ch1.mp3")
    assert "succeeded" in result.stdout
    assert "chunk" in result.stderr  # the progress bar
    assert [p.name for p in out.parent.iterdir()] == ["book.mp3"]  # no partial files left


def test_submit_csv_sends_one_input_per_row_and_saves_each(api: ContractApi, tmp_path: Path) -> None:
    out = tmp_path / "lines"
    out.mkdir()
    result = narrate(api, "submit", str(GAME_LINES), "--format", "wav", "-o", str(out), "--poll-interval", "0.01")
    assert result.exit_code == 0, result.output
    body = posted(api)["json"]
    rows = GAME_LINES.read_text(encoding="utf-8").splitlines()[1:]
    assert [i["id"] for i in body["inputs"]] == [row.split(",")[0] for row in rows]
    assert body["inputs"][1]["text"] == "The gate closes at sundown. Come back tomorrow, traveller."
    assert body["concatenate"] is False
    job_id = next(iter(api.jobs))
    saved = sorted(p.name for p in out.iterdir())
    assert saved == sorted(f"{i['id']}.wav" for i in body["inputs"])
    assert (out / "guard_001.wav").read_bytes() == audio_bytes(job_id, "guard_001.wav")


def test_submit_rejects_non_utf8_files(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "latin1.txt"
    src.write_bytes("Café au lait".encode("latin-1"))
    result = narrate(api, "submit", str(src))
    assert result.exit_code == 2
    assert "not UTF-8" in result.stderr
    assert api.requests == []


def test_csv_without_text_column_is_a_usage_error(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "lines.csv"
    src.write_text("id,line\na,hello\n", encoding="utf-8")
    result = narrate(api, "submit", str(src))
    assert result.exit_code == 2
    assert "missing: text" in result.stderr


def test_failed_job_exits_1_with_the_error(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "bad.txt"
    src.write_text("This one will FAIL.", encoding="utf-8")
    out = tmp_path / "bad.mp3"
    result = narrate(api, "submit", str(src), "--wait", "-o", str(out), "--poll-interval", "0.01")
    assert result.exit_code == 1
    assert "the engine gave up on chunk 1" in result.stderr
    assert not out.exists()

    job_id = next(iter(api.jobs))
    status = narrate(api, "status", job_id)
    assert status.exit_code == 1
    assert "synthesis_failed" in status.stdout


def test_api_errors_print_the_server_message_and_exit_2(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    result = narrate(api, "submit", str(src), key="wrong")
    assert result.exit_code == 2
    assert "HTTP 401 unauthorized: missing or unknown API key" in result.stderr

    missing = narrate(api, "status", "job_nope")
    assert missing.exit_code == 2
    assert "no job job_nope" in missing.stderr


def test_unreachable_server_exits_2(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(cli, ["--url", f"http://127.0.0.1:{port}", "list"])
    assert result.exit_code == 2
    assert "cannot reach" in result.stderr


def test_status_json_and_summary(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello there", encoding="utf-8")
    job_id = narrate(api, "submit", str(src)).stdout.strip()
    as_json = narrate(api, "status", job_id, "--json")
    assert as_json.exit_code == 0
    job = json.loads(as_json.stdout)
    assert job["id"] == job_id
    assert job["status"] == "running"
    summary = narrate(api, "status", job_id)
    assert "running 50% (1/2 chunks, 3.5 s audio)" in summary.stdout
    assert "11 chars" in summary.stdout


def test_list_follows_cursors_and_filters(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    ids = [narrate(api, "submit", str(src)).stdout.strip() for _ in range(5)]
    narrate(api, "cancel", ids[0])

    listed = json.loads(narrate(api, "list", "--json").stdout)  # page size 2: three pages followed
    assert sorted(j["id"] for j in listed) == sorted(ids)
    assert len(json.loads(narrate(api, "list", "--json", "--limit", "3").stdout)) == 3
    canceled = json.loads(narrate(api, "list", "--json", "--status", "canceled").stdout)
    assert [j["id"] for j in canceled] == [ids[0]]
    table = narrate(api, "list").stdout.splitlines()
    assert table[0].split() == ["ID", "CREATED", "INPUTS", "STATUS"]
    assert len(table) == 6


def test_cancel(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    job_id = narrate(api, "submit", str(src)).stdout.strip()
    first = narrate(api, "cancel", job_id)
    assert first.exit_code == 0
    assert first.stdout.strip() == f"{job_id} canceled"
    again = narrate(api, "cancel", job_id)
    assert again.exit_code == 2
    assert "HTTP 409 job_finished" in again.stderr


def test_a_submit_whose_answer_was_lost_is_retried_and_creates_one_job(api: ContractApi, tmp_path: Path) -> None:
    api.lost_submit_answers = 2
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    result = narrate(api, "submit", str(src))
    assert result.exit_code == 0, result.output
    posts = [r for r in api.requests if r["method"] == "POST"]
    assert len(posts) == 3 and len({r["headers"]["Idempotency-Key"] for r in posts}) == 1
    assert list(api.jobs) == [result.stdout.strip()]


def test_a_presigned_download_is_retried_while_storage_is_unavailable(api: ContractApi, tmp_path: Path) -> None:
    api.unavailable_downloads = 2
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    out = tmp_path / "a.mp3"
    result = narrate(api, "submit", str(src), "-o", str(out), "--poll-interval", "0.01")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == audio_bytes(next(iter(api.jobs)), "a.mp3")
    assert sum(r["path"].startswith("/files/") for r in api.requests) == 3


def test_corrupted_download_is_refused(api: ContractApi, tmp_path: Path) -> None:
    api.corrupt_downloads = True
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    out = tmp_path / "a.mp3"
    result = narrate(api, "submit", str(src), "-o", str(out), "--poll-interval", "0.01")
    assert result.exit_code == 2
    assert "checksum_mismatch" in result.stderr
    assert list(tmp_path.iterdir()) == [src]


def test_file_url_results_are_copied(api: ContractApi, tmp_path: Path) -> None:
    api.file_url_dir = tmp_path / "storage"
    api.file_url_dir.mkdir()
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = narrate(api, "submit", str(src), "-o", str(out_dir), "--poll-interval", "0.01")
    assert result.exit_code == 0, result.output
    saved = out_dir / "a.mp3"
    job_id = next(iter(api.jobs))
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(audio_bytes(job_id, "a.mp3")).digest()


def test_console_entry_point_reads_url_and_key_from_environment(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    env = {**os.environ, "NARRATE_API_URL": api.base_url, "NARRATE_API_KEY": API_KEY}
    run = subprocess.run(
        [sys.executable, "-c", "from client.cli import main; main()", "submit", str(src)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() in api.jobs
