"""Jobs in Spanish and English through the real API, Redis queue and a Celery worker process (Piper's CPU
preview engine, Spanish by espeak-ng): each input's language named or detected, spoken by a voice of
that language after that language's text rules, and reported in the job and the manifest."""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import pytest
import soundfile as sf

from shared.text.normalize import normalize
from tests.conftest import AUTH, wait_status
from tests.worker.test_synthesis_jobs import _read, _submit

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="Debian's espeak-ng (scripts/setup_test_tools.sh)"),
]

SPANISH = "Buenos días, señora. El Sr. García pagó 1.234,56 € el 25/12/2023 a las 14:30."
SHEET = [
    {"id": "en-1", "text": "Good morning, my friend. The weather is lovely today, isn't it?"},
    {"id": "es-1", "text": SPANISH},
    {"id": "es-2", "text": "¿Dónde está la biblioteca? Está cerca de la plaza mayor."},
    {"id": "es-3", "text": "Sí.", "language": "es"},
]


def _espeak_seconds(text: str) -> float:
    """How long espeak-ng itself takes to say `text` (what the preview voice must have said)."""
    wav = subprocess.run(["espeak-ng", "-v", "es", "-s", "160", "-b", "1", "--stdout"], input=text.encode(),
                         capture_output=True, check=True).stdout  # fmt: skip
    audio, rate = sf.read(io.BytesIO(wav))
    return len(audio) / rate


def test_a_mixed_sheet_is_spoken_each_line_in_its_own_language(api_client, service_env, start_worker):
    start_worker(service_env)
    job_id = _submit(api_client, {"inputs": SHEET, "concatenate": False, "format": "wav"})
    queued = api_client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
    # Named at submission: known at once; the others once the job is planned.
    assert [(item["language"], item["language_detected"]) for item in queued["inputs"]][3] == ("es", False)

    job = wait_status(api_client, job_id, {"succeeded", "failed"}, timeout=240)
    assert job["status"] == "succeeded", job["error"]
    assert {item["id"]: (item["language"], item["language_detected"]) for item in job["inputs"]} == {
        "en-1": ("en", True),
        "es-1": ("es", True),
        "es-2": ("es", True),
        "es-3": ("es", False),
    }
    manifest = json.loads(_read(api_client, job["manifest"]["url"]))
    assert {entry["id"]: (entry["voice"], entry["language"]) for entry in manifest["files"]} == {
        "en-1": ("joe", "en"),
        "es-1": ("es", "es"),
        "es-2": ("es", "es"),
        "es-3": ("es", "es"),
    }
    # The Spanish line was read after the Spanish rules, by espeak-ng: its length is espeak-ng's for the
    # normalised text ("mil doscientos treinta y cuatro euros con cincuenta y seis céntimos..."), which is
    # far longer than for the digits as written.
    result = next(item["result"] for item in job["inputs"] if item["id"] == "es-1")
    audio, rate = sf.read(io.BytesIO(_read(api_client, result["url"])))
    spoken = _espeak_seconds(normalize(SPANISH, "es").text)
    assert spoken > 1.3 * _espeak_seconds(SPANISH.replace("1.234,56 €", "").replace("25/12/2023", ""))
    assert 0.85 * spoken < len(audio) / rate < 1.15 * spoken + 1.5  # + the pauses and room tone


def test_a_language_the_engine_cannot_speak_is_refused_with_nothing_stored(api_client):
    for body, field in (
        ({"inputs": [{"text": "こんにちは、元気ですか。"}], "language": "ja"}, "language"),
        ({"inputs": [{"text": "Hello."}, {"text": "Bonjour.", "language": "fr-CA"}]}, "inputs.1.language"),
    ):
        response = api_client.post("/v1/jobs", json=body, headers=AUTH)
        assert response.status_code == 422, response.get_json()
        error = response.get_json()["error"]
        named = body.get("language") or body["inputs"][1]["language"]
        assert (error["code"], error["field"]) == ("unsupported_language", field)
        assert repr(named) in error["message"] and "en, es" in error["message"]
    response = api_client.post("/v1/jobs", json={"inputs": [{"text": "Hola."}], "language": "es", "voice": "joe"},
                               headers=AUTH)  # fmt: skip
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "voice_language_mismatch"
    response = api_client.post("/v1/jobs", json={"inputs": [{"text": "Hola.", "language": "spanish!"}]}, headers=AUTH)
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "inputs.0.language"
    assert api_client.get("/v1/jobs", headers=AUTH).get_json()["data"] == []
