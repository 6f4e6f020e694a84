"""The `narrate` CLI over real HTTP against a server that answers per the API contract."""

from __future__ import annotations

import csv
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

from client.api import ApiClient
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
    # A small body goes as it is, with its length: only bodies above 16 KiB are gzip-streamed.
    assert "Content-Encoding" not in request["headers"]
    assert int(request["headers"]["Content-Length"]) == request["sent_bytes"]
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


def game_lines_with_voices(tmp_path: Path) -> Path:
    """examples/game-lines.csv with a voice column in place of its character column."""
    voices = {"guard": "joe", "merchant": "voice_merchant1", "captain": "", "narrator": "en_us"}
    with GAME_LINES.open(encoding="utf-8", newline="") as src:
        rows = list(csv.DictReader(src))
    path = tmp_path / "lines.csv"
    with path.open("w", encoding="utf-8", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["id", "voice", "text"])
        writer.writerows([row["id"], voices[row["character"]], row["text"]] for row in rows)
    return path


def test_submit_csv_with_a_voice_column_saves_one_file_per_id_and_the_manifest(
    api: ContractApi, tmp_path: Path
) -> None:
    lines = game_lines_with_voices(tmp_path)
    out = tmp_path / "lines"
    result = narrate(api, "submit", str(lines), "--format", "wav", "-o", str(out), "--poll-interval", "0.01")
    assert result.exit_code == 0, result.output
    body = posted(api)["json"]
    with GAME_LINES.open(encoding="utf-8", newline="") as src:
        rows = list(csv.DictReader(src))
    assert [i["id"] for i in body["inputs"]] == [row["id"] for row in rows]
    assert [i["text"] for i in body["inputs"]] == [row["text"] for row in rows]
    assert body["inputs"][0]["voice"] == "joe" and body["inputs"][3]["voice"] == "voice_merchant1"
    assert "voice" not in body["inputs"][6]  # an empty voice cell: the job's voice
    assert body["concatenate"] is False
    job_id = next(iter(api.jobs))
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{row['id']}.wav" for row in rows] + ["manifest.json"])
    assert (out / "guard_001.wav").read_bytes() == audio_bytes(job_id, "guard_001.wav")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["job_id"] == job_id
    assert [entry["id"] for entry in manifest["files"]] == [row["id"] for row in rows]
    for entry in manifest["files"]:
        assert hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    shown = narrate(api, "status", job_id).stdout
    assert f"manifest  {api.base_url.replace('127.0.0.1', 'localhost')}/files/{job_id}/manifest.json" in shown


def test_voice_map_gives_each_character_its_voice(api: ContractApi, tmp_path: Path) -> None:
    voice_map = tmp_path / "voices.json"
    voice_map.write_text(json.dumps({"guard": "joe", "merchant": "voice_m1", "captain": "joe", "narrator": "en_us"}))
    result = narrate(api, "submit", str(GAME_LINES), "--voice-map", str(voice_map))
    assert result.exit_code == 0, result.output
    voices = {i["id"]: i["voice"] for i in posted(api)["json"]["inputs"]}
    assert (voices["guard_002"], voices["merchant_001"], voices["narrator_003"]) == ("joe", "voice_m1", "en_us")

    as_csv = tmp_path / "voices.csv"
    as_csv.write_text("character,voice\nguard,joe\nmerchant,voice_m2\ncaptain,joe\nnarrator,joe\n")
    result = narrate(api, "submit", str(GAME_LINES), "--voice-map", str(as_csv))
    assert result.exit_code == 0, result.output
    last = [r for r in api.requests if r["method"] == "POST"][-1]["json"]
    assert {i["id"]: i["voice"] for i in last["inputs"]}["merchant_002"] == "voice_m2"


def test_a_row_voice_overrides_its_characters_mapping(api: ContractApi, tmp_path: Path) -> None:
    lines = tmp_path / "lines.tsv"
    lines.write_text("id\tcharacter\tvoice\ttext\na\tguard\t\tHalt!\nb\tguard\ten_us\tWho goes there?\n")
    voice_map = tmp_path / "map.tsv"
    voice_map.write_text("character\tvoice\nguard\tjoe\n")
    result = narrate(api, "submit", str(lines), "--voice-map", str(voice_map))
    assert result.exit_code == 0, result.output
    inputs = posted(api)["json"]["inputs"]
    assert inputs == [
        {"id": "a", "text": "Halt!", "voice": "joe"},
        {"id": "b", "text": "Who goes there?", "voice": "en_us"},
    ]


def test_a_character_column_without_voice_map_is_noted(api: ContractApi) -> None:
    result = narrate(api, "submit", str(GAME_LINES))
    assert result.exit_code == 0, result.output
    assert "character column but no --voice-map" in result.stderr
    assert all("voice" not in i for i in posted(api)["json"]["inputs"])


def test_jsonl_inputs(api: ContractApi, tmp_path: Path) -> None:
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"id": "a", "text": "Halt!", "voice": "joe"}\n\n{"id": "b", "text": "Who, me?"}\n')
    result = narrate(api, "submit", str(lines))
    assert result.exit_code == 0, result.output
    assert posted(api)["json"]["inputs"] == [
        {"id": "a", "text": "Halt!", "voice": "joe"},
        {"id": "b", "text": "Who, me?"},
    ]


def test_an_api_error_about_an_input_names_its_line(api: ContractApi, tmp_path: Path) -> None:
    lines = tmp_path / "lines.csv"
    lines.write_text('id,text\na,Hello.\n"b","Two\nlines."\nc,BADVOICE\n')
    api.refuse_text = "BADVOICE"
    result = narrate(api, "submit", str(lines))
    assert result.exit_code == 2
    assert "(field inputs.2.text)" in result.stderr and f"[{lines}:5]" in result.stderr


def test_a_manifest_that_disagrees_with_the_job_is_refused(api: ContractApi, tmp_path: Path) -> None:
    api.tamper_manifest = True
    out = tmp_path / "lines"
    result = narrate(api, "submit", str(GAME_LINES), "-o", str(out), "--poll-interval", "0.01")
    assert result.exit_code == 2
    assert "manifest_mismatch" in result.stderr and "guard_001.mp3" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_a_batch_with_failed_lines_saves_the_others_and_names_the_failed_ones(api: ContractApi, tmp_path: Path) -> None:
    lines = tmp_path / "lines.csv"
    lines.write_text("id,text\na,Hello there.\nb,BROKENLINE here.\nc,Goodbye.\n")
    out = tmp_path / "out"
    result = narrate(api, "submit", str(lines), "-o", str(out), "--poll-interval", "0.01")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.mp3", "c.mp3", "manifest.json"]
    assert "line b failed: voice_deleted" in result.stderr and "submit the same sheet again" in result.stderr


def test_a_corrupted_batch_file_leaves_no_manifest(api: ContractApi, tmp_path: Path) -> None:
    api.corrupt_downloads = True
    out = tmp_path / "lines"
    result = narrate(api, "submit", str(GAME_LINES), "-o", str(out), "--poll-interval", "0.01")
    assert result.exit_code == 2
    assert "checksum_mismatch" in result.stderr
    assert not (out / "manifest.json").exists()

    api.corrupt_downloads = False  # the job is still there: download it again
    again = narrate(api, "download", next(iter(api.jobs)), "-o", str(out))
    assert again.exit_code == 0, again.output
    assert len(json.loads((out / "manifest.json").read_text())["files"]) == 12


def test_submit_rejects_non_utf8_files(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "latin1.txt"
    src.write_bytes("Café au lait".encode("latin-1"))
    result = narrate(api, "submit", str(src))
    assert result.exit_code == 2
    assert "not UTF-8" in result.stderr
    assert api.requests == []


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


def test_cancel_posts_to_the_cancel_route(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    job_id = narrate(api, "submit", str(src)).stdout.strip()
    first = narrate(api, "cancel", job_id)
    assert first.exit_code == 0
    assert first.stdout.strip() == f"{job_id} canceled"
    assert (api.requests[-1]["method"], api.requests[-1]["path"]) == ("POST", f"/v1/jobs/{job_id}/cancel")
    again = narrate(api, "cancel", job_id)
    assert again.exit_code == 2
    assert "HTTP 409 already_finished" in again.stderr
    assert job_id in api.jobs  # cancel never deletes


def test_rm_deletes_a_finished_job(api: ContractApi, tmp_path: Path) -> None:
    out = tmp_path / "lines"
    assert narrate(api, "submit", str(GAME_LINES), "-o", str(out), "--poll-interval", "0.01").exit_code == 0
    job_id = next(iter(api.jobs))
    removed = narrate(api, "rm", job_id)
    assert removed.exit_code == 0, removed.output
    assert "removed" in removed.stdout and "12 result files" in removed.stdout and "manifest" in removed.stdout
    assert job_id not in api.jobs
    assert (api.requests[-1]["method"], api.requests[-1]["path"]) == ("DELETE", f"/v1/jobs/{job_id}")
    gone = narrate(api, "rm", job_id)
    assert gone.exit_code == 2
    assert f"HTTP 404 not_found: no job {job_id}" in gone.stderr


def test_rm_whose_answer_was_lost_is_retried_and_reports_the_removal(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    assert narrate(api, "submit", str(src), "-o", str(tmp_path / "a.mp3"), "--poll-interval", "0.01").exit_code == 0
    job_id = next(iter(api.jobs))
    api.lost_delete_answers = 1
    removed = narrate(api, "rm", job_id)
    assert removed.exit_code == 0, removed.output
    assert f"removed {job_id}" in removed.stdout and "1 result file and" in removed.stdout
    assert [r["method"] for r in api.requests[-2:]] == ["DELETE", "DELETE"]
    assert job_id not in api.jobs


def test_a_batch_is_saved_into_a_directory_only(api: ContractApi, tmp_path: Path) -> None:
    out = tmp_path / "lines"
    out.write_text("not a directory", encoding="utf-8")
    result = narrate(api, "submit", str(GAME_LINES), "-o", str(out), "--poll-interval", "0.01")
    assert result.exit_code == 2
    assert f"{out} is a file" in result.stderr
    assert out.read_text() == "not a directory"


def test_a_result_name_outside_the_download_folder_is_refused(api: ContractApi, tmp_path: Path) -> None:
    api.unsafe_filenames = True
    out = tmp_path / "deep" / "lines"
    result = narrate(api, "submit", str(GAME_LINES), "-o", str(out), "--poll-interval", "0.01")
    assert result.exit_code == 2
    assert "unsafe_filename" in result.stderr
    assert list(tmp_path.rglob("*")) == []  # nothing saved, in the folder or beside it


def test_rm_refuses_a_job_still_running(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    job_id = narrate(api, "submit", str(src)).stdout.strip()
    result = narrate(api, "rm", job_id)
    assert result.exit_code == 2
    assert "narrate cancel" in result.stderr
    assert not [r for r in api.requests if r["method"] == "DELETE"]
    assert api.jobs[job_id]["status"] != "canceled"


@pytest.mark.parametrize(
    "args",
    [
        ["status", "../../healthz"],
        ["cancel", "../voices/voice_abc"],
        ["rm", "../voices/voice_abc"],
        ["download", "job_x/../../../healthz", "-o", "out"],
        ["status", "job_a?status=queued"],
        ["status", "job_%2e%2e"],
        ["voices", "rm", "../jobs/job_abc"],
        ["voices", "show", "voice_a/../../../healthz"],
    ],
)
def test_an_argument_that_is_not_an_id_is_refused_before_sending(api: ContractApi, args: list[str]) -> None:
    api.voices.add("voice_abc")
    result = narrate(api, *args)
    assert result.exit_code == 2
    assert "is not a" in result.stderr and "id (they look like" in result.stderr
    assert api.requests == []
    assert api.voices == {"voice_abc"}


def test_an_unquoted_id_would_reach_another_route(api: ContractApi) -> None:
    """Why ids are checked: joined into the path as they are, `../voices/ID` deletes a voice."""
    api.voices.add("voice_abc")
    with ApiClient(api.base_url, API_KEY) as client:
        client.request("DELETE", "/v1/jobs/../voices/voice_abc")
    assert api.requests[-1]["path"] == "/v1/voices/voice_abc"
    assert api.voices == set()


def test_a_submit_whose_answer_was_lost_is_retried_and_creates_one_job(api: ContractApi, tmp_path: Path) -> None:
    api.lost_submit_answers = 2
    src = tmp_path / "a.txt"
    src.write_text("hello", encoding="utf-8")
    result = narrate(api, "submit", str(src))
    assert result.exit_code == 0, result.output
    posts = [r for r in api.requests if r["method"] == "POST"]
    assert len(posts) == 3 and len({r["headers"]["Idempotency-Key"] for r in posts}) == 1
    assert list(api.jobs) == [result.stdout.strip()]


def test_a_streamed_sheet_whose_answer_was_lost_is_sent_whole_again_and_creates_one_job(
    api: ContractApi, tmp_path: Path
) -> None:
    """A sheet's body is a gzip stream, which can be sent once: each retry encodes it anew, in full."""
    api.lost_submit_answers = 2
    sheet = tmp_path / "lines.jsonl"
    rows = [{"id": f"line_{n:04d}", "text": f"Line {n}, spoken by the watch."} for n in range(2000)]
    sheet.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = narrate(api, "submit", str(sheet))
    assert result.exit_code == 0, result.output
    posts = [r for r in api.requests if r["method"] == "POST"]
    assert len(posts) == 3 and len({r["headers"]["Idempotency-Key"] for r in posts}) == 1
    for post in posts:
        assert post["headers"]["Content-Encoding"] == "gzip"
        assert post["headers"]["Transfer-Encoding"] == "chunked"
        assert post["json"]["inputs"] == rows
    assert list(api.jobs) == [result.stdout.strip()]
    sent = [line for line in result.stderr.splitlines() if line.startswith("sent 2000 lines")]
    assert len(sent) == 3 and sent[1].endswith(", try 2)") and sent[2].endswith(", try 3)")
    assert f"as {posts[0]['sent_bytes'] / 1e3:.1f} kB gzip" in sent[0]


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
