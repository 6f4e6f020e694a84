"""`narrate voices add/list/show/rm` over real HTTP against the real API app (Redis, local storage)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner
from werkzeug.serving import make_server

from client.cli import cli
from shared.storage import LocalStorage
from tests.api.test_voices import speech  # noqa: F401 - session fixture
from tests.conftest import DEV_KEY, ServiceEnv


@pytest.fixture
def server(service_env: ServiceEnv) -> Iterator[str]:
    from api import create_app

    service_env.extra.update({"NARRATE_ENGINE": "kanitts2", "NARRATE_VOICE_RATE_LIMIT": "100 per minute"})
    httpd = make_server("127.0.0.1", 0, create_app(service_env.settings()), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(5)


def narrate(url: str, *args: str):
    return CliRunner().invoke(cli, ["--url", url, "--key", DEV_KEY, *args], catch_exceptions=False)


def test_add_list_show_rm(server: str, service_env: ServiceEnv, speech, tmp_path: Path):  # noqa: F811
    audio, sr = speech
    clip = tmp_path / "jane.flac"
    sf.write(clip, audio, sr)
    result = narrate(server, "voices", "add", "Jane", str(clip), "--consent", "Jane Doe", "--language", "en_us")
    assert result.exit_code == 0, result.output
    voice_id = result.stdout.strip()
    assert voice_id.startswith("voice_")
    storage = LocalStorage(service_env.storage_url.removeprefix("file://"))
    assert storage.get_bytes(f"voices/dev/{voice_id}/reference/clip-00") == clip.read_bytes()

    listing = narrate(server, "voices", "list")
    assert voice_id in listing.stdout and "processing" in listing.stdout and "en_us" in listing.stdout
    shown = narrate(server, "voices", "show", voice_id)
    assert "Jane Doe" in shown.stdout and "jane.flac" in shown.stdout

    assert narrate(server, "voices", "rm", voice_id).exit_code == 0
    assert storage.list_keys("voices/") == []
    gone = narrate(server, "voices", "show", voice_id)
    assert gone.exit_code == 2 and "not_found" in gone.output


def test_add_without_consent_is_a_usage_error_and_bad_audio_shows_the_server_message(server: str, tmp_path: Path):
    text = tmp_path / "notes.wav"
    text.write_text("not a recording\n" * 100)
    assert narrate(server, "voices", "add", "Jane", str(text)).exit_code == 2  # --consent is required
    result = narrate(server, "voices", "add", "Jane", str(text), "--consent", "Jane Doe")
    assert result.exit_code == 2
    assert "invalid_audio" in result.output and "notes.wav" in result.output
