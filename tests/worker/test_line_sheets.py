"""Line sheets through the real API, Redis store, storage and Piper: lines that fail on their own, the
manifest as JSON and CSV, file name templates, WAV 48 kHz and Ogg Vorbis, per-line loudness, and the
per-tenant cache of finished lines that a re-submitted sheet reuses. Each job runs in this process
(`run_until_idle`), as a worker thread runs its units."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pytest
import soundfile as sf

from shared.audio.loudness import integrated_loudness
from shared.storage import storage_from_settings
from shared.storage_keys import line_cache_prefix
from tests.conftest import AUTH, ServiceEnv
from tests.support.units import run_until_idle
from tests.worker.test_synthesis_jobs import _read, _submit
from worker.engines.base import Engine
from worker.runtime import Runtime

OTHER_KEY = "other-tenant-key"
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}
SHEET = [
    {"id": "guard_001", "text": "Halt! Who goes there?"},
    {"id": "guard_002", "text": "Pass, friend."},
    {"id": "merchant_001", "text": "Potions, scrolls, rope!"},
    {"id": "merchant_002", "text": "Fifty feet of rope for only 3 gold coins."},
    {"id": "narrator_001", "text": "The gate closed behind them."},
]


@pytest.fixture(scope="module")
def piper() -> Engine:
    from worker.engines.piper_engine import PiperEngine

    return PiperEngine.load()


@pytest.fixture
def env(service_env: ServiceEnv) -> ServiceEnv:
    service_env.extra.update(
        NARRATE_API_KEYS=f"other:{hashlib.sha256(OTHER_KEY.encode()).hexdigest()}", NARRATE_ASSEMBLY_PROCESSES="0"
    )
    return service_env


@pytest.fixture
def client(env: ServiceEnv):
    from api import create_app

    app = create_app(env.settings())
    app.testing = True
    return app.test_client()


def _run(env: ServiceEnv, piper: Engine, client, job_id: str, headers: dict | None = None) -> dict:
    run_until_idle(Runtime(env.services(), piper))
    job = client.get(f"/v1/jobs/{job_id}", headers=headers or AUTH).get_json()
    assert job["status"] == "succeeded", job["error"]
    return job


def _files(client, job: dict) -> dict[str, bytes]:
    return {item["id"]: _read(client, item["result"]["url"]) for item in job["inputs"] if item["result"]}


def test_lines_in_a_voice_gone_at_run_time_fail_alone_and_the_manifest_says_so_as_json_and_csv(env, client, piper):
    services = env.services()
    voice_id = services.voices.new_id()
    consent = {"confirmed": True, "speaker_name": "Vo", "statement": "I consent."}
    services.voices.create(voice_id, "dev", name="Vo", description=None, language="en", consent=consent, clips=[],
                           limit=10)  # fmt: skip
    services.voices.mark_ready(voice_id, clips=[], preview=False)
    sheet = [dict(line, voice=voice_id) if line["id"].startswith("merchant") else line for line in SHEET]
    job_id = _submit(client, {"inputs": sheet, "concatenate": False, "format": "wav"})
    assert services.voices.delete(voice_id, "dev")  # gone before the worker plans the job

    job = _run(env, piper, client, job_id)
    assert job["lines"] == {"succeeded": 3, "failed": 2, "reused": 0, "synthesised": 3}
    by_id = {item["id"]: item for item in job["inputs"]}
    for line in sheet:
        item = by_id[line["id"]]
        if line["id"].startswith("merchant"):
            assert (item["status"], item["result"]) == ("failed", None)
            assert item["error"]["code"] == "voice_deleted" and voice_id in item["error"]["message"]
        else:
            assert item["status"] == "succeeded" and item["error"] is None
            audio, rate = sf.read(io.BytesIO(_read(client, item["result"]["url"])))
            assert len(audio) / rate > 0.3
    manifest = json.loads(_read(client, job["manifest"]["url"]))
    assert manifest["lines"] == job["lines"]
    assert [row["status"] for row in manifest["files"]] == [by_id[line["id"]]["status"] for line in sheet]
    rows = list(csv.DictReader(io.StringIO(_read(client, job["manifest_csv"]["url"]).decode())))
    assert [row["id"] for row in rows] == [line["id"] for line in sheet]
    for row in rows:
        failed = row["id"].startswith("merchant")
        assert row["status"] == ("failed" if failed else "succeeded")
        assert row["error_code"] == ("voice_deleted" if failed else "")
        assert (row["file"] == "") == failed and (row["sha256"] == by_id[row["id"]]["result"]["sha256"] if not failed
                                                  else True)  # fmt: skip


def test_a_resubmitted_sheet_synthesises_only_its_changed_lines_and_copies_the_others_byte_for_byte(env, client, piper):
    body = {"inputs": SHEET, "concatenate": False, "format": "wav", "sample_rate": 48000,
            "filename_template": "{voice}-{id}"}  # fmt: skip
    first = _run(env, piper, client, _submit(client, body))
    assert first["lines"] == {"succeeded": 5, "failed": 0, "reused": 0, "synthesised": 5}
    assert first["inputs"][0]["result"]["filename"] == "joe-guard_001.wav"
    before = _files(client, first)
    for data in before.values():
        info = sf.info(io.BytesIO(data))
        assert (info.samplerate, info.subtype) == (48000, "PCM_16")

    changed = {"guard_002": "Pass, friend. Mind the dogs.", "narrator_001": "The gate closed behind them at dusk."}
    sheet = [dict(line, text=changed.get(line["id"], line["text"])) for line in SHEET]
    second = _run(env, piper, client, _submit(client, {**body, "inputs": sheet}))
    assert second["lines"] == {"succeeded": 5, "failed": 0, "reused": 3, "synthesised": 2}
    assert second["usage"]["lines_reused"] == 3
    report = client.get("/v1/usage", headers=AUTH).get_json()
    assert report["totals"]["lines_reused"] == 3  # the tenant's day counts them too
    assert second["progress"]["chunks_total"] == 2  # only the changed lines were planned for synthesis
    after = _files(client, second)
    for item in second["inputs"]:
        assert item["reused"] == (item["id"] not in changed)
        if item["id"] not in changed:
            assert after[item["id"]] == before[item["id"]]  # the very same bytes
            assert item["result"]["filename"] == f"joe-{item['id']}.wav"
            timing = json.loads(_read(client, item["result"]["subtitles"]["timing"]))
            assert timing["inputs"][0]["id"] == item["id"] and timing["cues"]
        else:
            assert after[item["id"]] != before[item["id"]]

    # Failed or not, a third identical submission is all reuse: the way to retry only the failed lines.
    third = _run(env, piper, client, _submit(client, {**body, "inputs": sheet}))
    assert third["lines"]["reused"] == 5 and third["progress"]["chunks_total"] == 0


def test_another_tenants_identical_sheet_is_synthesised_not_served_from_the_first_tenants_cache(env, client, piper):
    body = {"inputs": SHEET[:3], "concatenate": False, "format": "flac"}
    _run(env, piper, client, _submit(client, body))
    other = _run(env, piper, client, _submit(client, body, OTHER), OTHER)
    assert other["lines"] == {"succeeded": 3, "failed": 0, "reused": 0, "synthesised": 3}
    assert other["progress"]["chunks_total"] == 3
    storage = storage_from_settings(env.settings())
    mine, theirs = storage.list_keys(line_cache_prefix("dev")), storage.list_keys(line_cache_prefix("other"))
    assert len(mine) == len(theirs) == 6 and not set(mine) & set(theirs)  # audio + entry per line, apart


def test_ogg_vorbis_lines_decode_at_their_rate_each_at_its_own_loudness(env, client, piper):
    lines = [
        {"id": "quiet", "text": "This line is whispered from afar.", "loudness_lufs": -30.0},
        {"id": "loud", "text": "This line is shouted from nearby!", "loudness_lufs": -16.0},
    ]
    body = {"inputs": lines, "concatenate": False, "format": "ogg", "sample_rate": 44100,
            "filename_template": "{index:03d}_{id}"}  # fmt: skip
    job = _run(env, piper, client, _submit(client, body))
    levels = {}
    for index, item in enumerate(job["inputs"]):
        assert item["result"]["filename"] == f"{index:03d}_{item['id']}.ogg"
        data = _read(client, item["result"]["url"])
        assert sf.info(io.BytesIO(data)).format == "OGG" and sf.info(io.BytesIO(data)).subtype == "VORBIS"
        audio, rate = sf.read(io.BytesIO(data), dtype="float32")
        assert rate == 44100 and len(audio) / rate > 0.5
        levels[item["id"]] = integrated_loudness(np.asarray(audio), rate)
    assert abs(levels["quiet"] + 30.0) < 1.5 and abs(levels["loud"] + 16.0) < 1.5


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{voice}", "must name {id} or {index}"),
        ("{id}/{voice}", "literal text"),
        ("{title}-{id}", "unknown field {title}"),
        ("{id!r}", "takes no format"),
    ],
)
def test_a_filename_template_that_could_clash_or_escape_is_refused_naming_the_field(client, template, problem):
    body = {"inputs": SHEET, "concatenate": False, "filename_template": template}
    response = client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code in (400, 422), response.get_json()
    assert problem in json.dumps(response.get_json())
    assert "filename_template" in json.dumps(response.get_json())
