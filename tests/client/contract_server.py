"""A small HTTP server that answers like the narrate API contract, for CLI tests.

It stands in only where the real stack would need Redis and a worker; the CLI talks to it over real
HTTP. Each GET of a job advances it by one chunk, so polling shows progress and then a result; a
batch (concatenate=false) then links its manifest. It records every request it receives, and also
serves routes an unquoted id could reach (`/healthz`, `DELETE /v1/voices/{id}`), so a test can show
that the CLI never sends one there.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.serving import make_server

API_KEY = "test-key"
FORMATS = {"mp3", "wav", "flac", "opus"}


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def audio_bytes(job_id: str, name: str) -> bytes:
    return hashlib.sha512(f"{job_id}/{name}".encode()).digest() * 64


@dataclass
class ContractApi:
    """State of the fake: jobs, the requests it received and knobs a test may turn."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    idempotency: dict[str, str] = field(default_factory=dict)
    page_size: int = 2
    corrupt_downloads: bool = False
    lost_submit_answers: int = 0
    """Submits that create the job and then answer 504, as a proxy that gave up waiting would."""
    unavailable_downloads: int = 0
    """Downloads answered 503 (storage briefly unavailable) before the file is served."""
    file_url_dir: Any = None  # a Path: results are written there and linked as file:// URLs
    refuse_text: str | None = None
    """An input whose text contains this is refused (422, field `inputs.N.text`), as the API refuses one."""
    unsafe_filenames: bool = False
    """Results are named `../NAME`, as a broken or hostile server might name them."""
    lost_delete_answers: int = 0
    """Deletes that remove the job and then answer 504."""
    tamper_manifest: bool = False
    """The manifest (itself intact) gives the first file another sha256 than the job record."""
    voices: set[str] = field(default_factory=set)
    """Cloned voice ids; `DELETE /v1/voices/{id}` removes one."""
    base_url: str = ""

    def error(self, status: int, code: str, message: str, field_name: str | None = None) -> Response:
        response = jsonify({"error": {"code": code, "message": message, "field": field_name}})
        response.status_code = status
        return response

    def result(self, job: dict[str, Any], name: str, data: bytes | None = None) -> dict[str, Any]:
        data = audio_bytes(job["id"], name) if data is None else data
        job["_objects"][name] = data
        if self.file_url_dir is not None:
            path = self.file_url_dir / name
            path.write_bytes(data)
            url = path.as_uri()
        else:
            # Another host name than the API's, as a presigned storage URL would have.
            url = f"{self.base_url.replace('127.0.0.1', 'localhost')}/files/{job['id']}/{name}"
        return {
            "url": url,
            "url_expires_at": now(),
            "key": f"results/test/{job['id']}/{name}",
            "format": job["format"],
            "filename": f"../{name}" if self.unsafe_filenames else name,
            "duration_seconds": 3.5,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def advance(self, job: dict[str, Any]) -> None:
        if job["status"] in ("succeeded", "failed", "canceled"):
            return
        progress = job["progress"]
        if job["status"] == "queued":
            job["status"], job["started_at"] = "running", now()
            return
        progress["chunks_done"] += 1
        progress["audio_seconds"] = 3.5 * progress["chunks_done"]
        progress["percent"] = 100.0 * progress["chunks_done"] / progress["chunks_total"]
        if progress["chunks_done"] < progress["chunks_total"]:
            return
        job["finished_at"] = now()
        if any("FAIL" in text for text in job["_texts"]):
            job["status"] = "failed"
            job["error"] = {"code": "synthesis_failed", "message": "the engine gave up on chunk 1"}
            return
        job["status"], job["rtf"] = "succeeded", 0.25
        ext = job["format"]
        if job["concatenate"]:
            job["result"] = self.result(job, f"{job['inputs'][0]['id']}.{ext}")
        else:
            # A batch's line whose text holds BROKENLINE fails alone, as a line in a voice gone at run time.
            for item, text in zip(job["inputs"], job["_texts"], strict=True):
                if "BROKENLINE" in text:
                    item["status"], item["error"] = "failed", {"code": "voice_deleted", "message": "voice gone"}
                else:
                    item["status"], item["result"] = "succeeded", self.result(job, f"{item['id']}.{ext}")
            job["manifest"] = self.manifest(job)

    def manifest(self, job: dict[str, Any]) -> dict[str, Any]:
        """The batch manifest document, linked as `{url, url_expires_at, key, bytes, sha256}`."""
        files = [
            {
                "id": item["id"],
                "file": item["result"]["filename"] if item.get("result") else None,
                "key": item["result"]["key"] if item.get("result") else None,
                "format": job["format"],
                "duration_seconds": item["result"]["duration_seconds"] if item.get("result") else None,
                "bytes": item["result"]["bytes"] if item.get("result") else None,
                "sha256": item["result"]["sha256"] if item.get("result") else None,
                "voice": item.get("voice") or job.get("voice"),
                "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "status": item.get("status", "succeeded"),
            }
            for item, text in zip(job["inputs"], job["_texts"], strict=True)
        ]
        if self.tamper_manifest:
            files[0]["sha256"] = hashlib.sha256(b"something else").hexdigest()
        document = json.dumps({"job_id": job["id"], "files": files}, indent=2).encode()
        link = self.result(job, "manifest.json", document)
        return {k: link[k] for k in ("url", "url_expires_at", "key", "bytes", "sha256")}

    def public(self, job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def app(self) -> Flask:
        app = Flask(__name__)

        @app.before_request
        def record_and_authenticate() -> Response | None:
            # A body may come gzip-compressed (Content-Encoding: gzip), as the API takes it.
            sent = request.get_data()
            raw = gzip.decompress(sent) if request.headers.get("Content-Encoding") == "gzip" else sent
            g.body = json.loads(raw) if raw and request.mimetype == "application/json" else None
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "headers": dict(request.headers),
                    "json": g.body,
                    "sent_bytes": len(sent),
                }
            )
            if request.path.startswith("/v1/") and request.headers.get("Authorization") != f"Bearer {API_KEY}":
                return self.error(401, "unauthorized", "missing or unknown API key")
            return None

        @app.get("/readyz")
        def readyz() -> Any:
            return {"status": "ok"}

        @app.post("/v1/jobs")
        def create() -> Any:
            body = g.body
            if not body.get("inputs"):
                return self.error(422, "invalid_request", "at least one input is required", "inputs")
            if body.get("format") not in FORMATS:
                return self.error(422, "invalid_request", "unknown format", "format")
            for index, item in enumerate(body["inputs"]):
                if self.refuse_text and self.refuse_text in item["text"]:
                    return self.error(422, "invalid_request", "text has nothing to speak", f"inputs.{index}.text")
            key = request.headers.get("Idempotency-Key")
            if key in self.idempotency:
                job = self.jobs[self.idempotency[key]]
            else:
                job_id = f"job_{uuid.uuid4().hex[:10]}"
                job = {
                    "id": job_id,
                    "status": "queued",
                    "created_at": now(),
                    "started_at": None,
                    "finished_at": None,
                    "voice": body.get("voice"),
                    "format": body["format"],
                    "sample_rate": body.get("sample_rate"),
                    "concatenate": body.get("concatenate", True),
                    "metadata": body.get("metadata") or {},
                    "progress": {
                        "chunks_done": 0,
                        "chunks_total": 2 * len(body["inputs"]),
                        "percent": 0.0,
                        "audio_seconds": 0.0,
                    },
                    "rtf": None,
                    "result": None,
                    "manifest": None,
                    "inputs": [
                        {"id": i["id"], "chars": len(i["text"]), "voice": i.get("voice"), "result": None}
                        for i in body["inputs"]
                    ],
                    "error": None,
                    "_texts": [i["text"] for i in body["inputs"]],
                    "_objects": {},
                }
                self.jobs[job_id] = job
                if key:
                    self.idempotency[key] = job_id
            if self.lost_submit_answers > 0:
                self.lost_submit_answers -= 1
                return self.error(504, "gateway_timeout", "the upstream did not answer in time")
            response = jsonify(self.public(job))
            response.status_code = 202
            response.headers["Location"] = f"/v1/jobs/{job['id']}"
            return response

        @app.get("/v1/jobs/<job_id>")
        def get(job_id: str) -> Any:
            job = self.jobs.get(job_id)
            if job is None:
                return self.error(404, "not_found", f"no job {job_id}")
            self.advance(job)
            return self.public(job)

        @app.get("/v1/jobs")
        def index() -> Any:
            jobs = sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=True)
            if status := request.args.get("status"):
                jobs = [j for j in jobs if j["status"] == status]
            start = int(request.args.get("cursor") or 0)
            size = min(int(request.args.get("limit") or 100), self.page_size)
            page = jobs[start : start + size]
            more = start + size < len(jobs)
            return {
                "data": [self.public(j) for j in page],
                "next_cursor": str(start + size) if more else None,
            }

        def cancel_job(job_id: str) -> Any:
            job = self.jobs[job_id]
            job["status"], job["finished_at"] = "canceled", now()
            return self.public(job)

        @app.post("/v1/jobs/<job_id>/cancel")
        def cancel(job_id: str) -> Any:
            job = self.jobs.get(job_id)
            if job is None:
                return self.error(404, "not_found", f"no job {job_id}")
            if job["status"] in ("succeeded", "failed", "canceled"):
                return self.error(409, "already_finished", f"job {job_id} already {job['status']}")
            return cancel_job(job_id)

        @app.delete("/v1/jobs/<job_id>")
        def delete(job_id: str) -> Any:
            """A finished job is removed (204); a queued or running one is cancelled (200 + job)."""
            job = self.jobs.get(job_id)
            if job is None:
                return self.error(404, "not_found", f"no job {job_id}")
            if job["status"] in ("queued", "running"):
                return cancel_job(job_id)
            del self.jobs[job_id]
            self.idempotency = {k: v for k, v in self.idempotency.items() if v != job_id}
            if self.lost_delete_answers > 0:
                self.lost_delete_answers -= 1
                return self.error(504, "gateway_timeout", "the upstream did not answer in time")
            return Response(status=204)

        @app.get("/healthz")
        def healthz() -> Any:
            return {"status": "ok"}

        @app.delete("/v1/voices/<voice_id>")
        def delete_voice(voice_id: str) -> Any:
            if voice_id not in self.voices:
                return self.error(404, "not_found", f"no voice {voice_id}")
            self.voices.discard(voice_id)
            return Response(status=204)

        @app.get("/files/<job_id>/<name>")
        def files(job_id: str, name: str) -> Any:
            if request.headers.get("Authorization"):
                return self.error(400, "unexpected_auth", "presigned downloads carry no bearer key")
            if self.unavailable_downloads > 0:
                self.unavailable_downloads -= 1
                return self.error(503, "slow_down", "storage is briefly unavailable")
            job = self.jobs.get(job_id)
            data = job["_objects"].get(name) if job else None
            if data is None:
                return self.error(404, "not_found", f"no object {job_id}/{name}")
            if self.corrupt_downloads and name != "manifest.json":
                data = data[:-1] + bytes([data[-1] ^ 0xFF])  # always another byte (a "!" could be the same)
            return Response(data, mimetype="audio/mpeg")

        return app


@contextmanager
def serve_contract_api() -> Iterator[ContractApi]:
    """Serve a fresh `ContractApi` on 127.0.0.1 and a free port (its `base_url`)."""
    api = ContractApi()
    server = make_server("127.0.0.1", 0, api.app(), threaded=True)
    api.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        thread.join(timeout=5)
