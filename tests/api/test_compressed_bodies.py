"""Request bodies sent gzip-compressed (`Content-Encoding: gzip`, chunked or with a length), through the
real app on a real Redis and, for the 20,000-line sheet, the real gunicorn with the project's config:
the body limit holds after decompression, a corrupt or unknown encoding is refused, nothing is stored
when a body is refused, and the CLI's streamed sheet arrives compressed and whole."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from click.testing import CliRunner
from flask.testing import FlaskClient

from client.cli import cli
from devstack.stack import LocalStack
from shared.settings import DEV_KEY
from tests.conftest import AUTH, ServiceEnv
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.served_api import served_api

LIMIT = 4_000_000
"""NARRATE_MAX_BODY_BYTES of the gunicorn stack: room for a 20,000-line sheet (about 1.7 MB of JSON)."""


def _jobs_stored(env: ServiceEnv) -> set[str]:
    """The ids of the jobs with a record under the test's prefix."""
    keys = redis.Redis.from_url(env.redis_url).scan_iter(match=f"{env.key_prefix}:job:*")
    return {key.decode().split(":")[-1] for key in keys if key.decode().count(":") == env.key_prefix.count(":") + 2}


def _nothing_stored(env: ServiceEnv) -> bool:
    return not _jobs_stored(env) and redis.Redis.from_url(env.redis_url).llen(env.queue) == 0


def _job(lines: int = 1) -> dict[str, Any]:
    inputs = [{"id": f"line_{n:05d}", "text": f"Line {n}: the guard raises his lantern."} for n in range(lines)]
    return {"inputs": inputs, "format": "wav", "concatenate": lines == 1}


def _post(client: FlaskClient, data: bytes, encoding: str | None = "gzip", *, chunked: bool = False) -> Any:
    headers = {**AUTH, **({"Content-Encoding": encoding} if encoding else {})}
    if not chunked:
        return client.post("/v1/jobs", data=data, content_type="application/json", headers=headers)
    # No Content-Length: what gunicorn and werkzeug's server pass on for Transfer-Encoding: chunked.
    return client.post(
        "/v1/jobs",
        input_stream=io.BytesIO(data),
        content_type="application/json",
        headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


# --- the app (Flask's test client, real Redis) ------------------------------------------------------
@pytest.mark.parametrize("chunked", [False, True], ids=["with a length", "chunked"])
def test_a_gzip_body_is_taken_as_the_json_it_holds(api_client: FlaskClient, chunked: bool) -> None:
    body = _job(300)
    answer = _post(api_client, gzip.compress(json.dumps(body).encode()), chunked=chunked)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    job = api_client.get(f"/v1/jobs/{answer.get_json()['id']}", headers=AUTH).get_json()
    assert [item["id"] for item in job["inputs"]] == [item["id"] for item in body["inputs"]]
    assert [item["chars"] for item in job["inputs"]] == [len(item["text"]) for item in body["inputs"]]


def test_identity_and_concatenated_gzip_members_are_read(api_client: FlaskClient) -> None:
    text = json.dumps(_job()).encode()
    assert _post(api_client, text, "identity").status_code == 202
    halves = gzip.compress(text[:10]) + gzip.compress(text[10:])  # RFC 1952: a stream of members
    assert _post(api_client, halves, "gzip").status_code == 202


def test_the_estimate_takes_a_gzip_body(api_client: FlaskClient) -> None:
    answer = api_client.post(
        "/v1/estimate",
        data=gzip.compress(json.dumps(_job(50)).encode()),
        content_type="application/json",
        headers={**AUTH, "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["characters"] == sum(len(item["text"]) for item in _job(50)["inputs"])


@pytest.mark.parametrize("chunked", [False, True], ids=["with a length", "chunked"])
def test_a_gzip_bomb_over_the_limit_is_413_and_nothing_is_stored(
    api_client: FlaskClient, service_env: ServiceEnv, chunked: bool
) -> None:
    """40 MB of JSON in 40 kB of gzip: the 32 MiB limit applies to the decompressed body."""
    bomb = gzip.compress(b'{"inputs":[{"text":"' + b"a" * 40_000_000 + b'"}]}', compresslevel=9)
    assert len(bomb) < 100_000
    error = _error(_post(api_client, bomb, chunked=chunked), 413)
    assert error["code"] == "payload_too_large"
    assert "once decompressed" in error["message"] and str(32 * 1024 * 1024) in error["message"]
    assert _nothing_stored(service_env)


CORRUPT = [
    ("not gzip at all", json.dumps(_job()).encode(), "incorrect header check"),
    ("cut short", gzip.compress(json.dumps(_job()).encode())[:-12], "ends before its gzip stream does"),
    ("empty", b"", "ends before its gzip stream does"),
    ("a damaged checksum", gzip.compress(json.dumps(_job()).encode())[:-8] + b"\0" * 8, "incorrect data check"),
    ("garbage after the stream", gzip.compress(json.dumps(_job()).encode()) + b"trailing", "incorrect header check"),
]


@pytest.mark.parametrize(("what", "data", "problem"), CORRUPT, ids=[c[0] for c in CORRUPT])
def test_a_corrupt_gzip_body_is_400_naming_the_problem(
    api_client: FlaskClient, service_env: ServiceEnv, what: str, data: bytes, problem: str
) -> None:
    error = _error(_post(api_client, data), 400)
    assert error["code"] == "invalid_encoding"
    assert error["message"].startswith("The body is not valid gzip (Content-Encoding: gzip): ")
    assert problem in error["message"]
    assert _nothing_stored(service_env)


@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd", "gzip, gzip"])
def test_another_content_encoding_is_415_naming_it(
    api_client: FlaskClient, service_env: ServiceEnv, encoding: str
) -> None:
    answer = _post(api_client, json.dumps(_job()).encode(), encoding)
    error = _error(answer, 415)
    assert error["code"] == "unsupported_media_type"
    assert f"Content-Encoding {encoding!r} is not supported" in error["message"]
    assert answer.headers["Accept-Encoding"] == "gzip"  # RFC 7694
    assert _nothing_stored(service_env)


def test_the_speech_route_refuses_a_corrupt_body_in_openais_shape(api_client: FlaskClient) -> None:
    answer = api_client.post(
        "/v1/audio/speech",
        data=b"not gzip",
        content_type="application/json",
        headers={**AUTH, "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "invalid_encoding"
    assert answer.get_json()["error"]["type"] == "invalid_request_error"


# --- the real gunicorn, the CLI through a recording proxy -------------------------------------------
@dataclass
class Served:
    stack: LocalStack
    env: ServiceEnv

    @property
    def url(self) -> str:
        return f"http://{self.stack.host}:{self.stack.port}"


@pytest.fixture(scope="module")
def served(redis_url: str, key_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("compressed")
    with served_api(redis_url, key_prefix, root, {"NARRATE_MAX_BODY_BYTES": str(LIMIT)}) as (running, env):
        yield Served(running, env)


def _sheet(path: Path, lines: int) -> list[dict[str, str]]:
    rows = [
        {"id": f"guard_{n:05d}", "text": f"Halt! Line {n} of the night watch: who goes there, at {n % 24:02d}:00?"}
        for n in range(lines)
    ]
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, ["id", "text"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _dechunk(data: bytes) -> bytes:
    body = bytearray()
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(body)
        body += data[:size]
        data = data[size + 2 :]


def _posts(recorded: bytes) -> list[tuple[str, bytes]]:
    """The `POST /v1/jobs` requests in the bytes a proxy forwarded: their heads and (chunked) bodies."""
    found = []
    for match in re.finditer(rb"POST /v1/jobs HTTP/1\.1\r\n", recorded):
        head, _, rest = recorded[match.start() :].partition(b"\r\n\r\n")
        found.append((head.decode("latin-1"), rest))
    return found


@pytest.mark.slow
def test_a_20000_line_sheet_goes_gzip_and_chunked_and_the_job_lists_every_line(served: Served, tmp_path: Path) -> None:
    rows = _sheet(tmp_path / "lines.csv", 20_000)
    with FaultProxy(served.url, record=True) as proxy:
        result = CliRunner().invoke(
            cli, ["--url", proxy.url, "--key", DEV_KEY, "submit", str(tmp_path / "lines.csv"), "--format", "wav"]
        )
        recorded = bytes(proxy.upstream_bytes)
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()

    [(head, rest)] = _posts(recorded)
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in head.split("\r\n"))}
    assert headers["content-encoding"] == "gzip" and headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    compressed = _dechunk(rest)
    sent = json.loads(gzip.decompress(compressed))
    assert [(item["id"], item["text"]) for item in sent["inputs"]] == [(row["id"], row["text"]) for row in rows]
    raw = len(gzip.decompress(compressed))
    assert len(compressed) < raw / 4
    shown = re.search(r"sent 20000 lines \((\d+\.\d) MB JSON as (\d+\.\d) MB gzip\)", result.stderr)
    assert shown, result.stderr
    assert float(shown.group(1)) == round(raw / 1e6, 1) and float(shown.group(2)) == round(len(compressed) / 1e6, 1)

    url = f"{served.url}/v1/jobs/{job_id}"
    job = requests.get(url, headers=AUTH, timeout=30).json()
    assert job["status"] == "queued" and not job["concatenate"]
    assert [item["id"] for item in job["inputs"]] == [row["id"] for row in rows]
    assert requests.delete(url, headers=AUTH, timeout=30).json()["status"] == "canceled"  # no worker: never run


@pytest.mark.slow
def test_under_gunicorn_a_chunked_gzip_bomb_is_413_and_nothing_is_stored(served: Served) -> None:
    before = _jobs_stored(served.env)
    bomb = gzip.compress(b'{"inputs":[{"text":"' + b"a" * (3 * LIMIT) + b'"}]}', compresslevel=9)
    pieces = (bomb[at : at + 4096] for at in range(0, len(bomb), 4096))  # a generator: chunked
    answer = requests.post(
        f"{served.url}/v1/jobs",
        data=pieces,
        headers={**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=30,
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert f"({LIMIT} bytes) once decompressed" in answer.json()["error"]["message"]
    assert _jobs_stored(served.env) == before


@pytest.mark.slow
def test_a_streamed_submit_cut_off_in_transit_is_sent_again_whole_and_makes_one_job(
    served: Served, tmp_path: Path
) -> None:
    """The connection drops while the first try's body is on its way: the retry encodes the sheet
    again (a generator can be sent once) and the API keeps one job of every line."""
    before = _jobs_stored(served.env)
    rows = _sheet(tmp_path / "lines.tsv", 3000)
    with (tmp_path / "lines.tsv").open("w", encoding="utf-8", newline="") as out:  # the same rows, as TSV
        out.write("id\ttext\n" + "".join(f"{row['id']}\t{row['text']}\n" for row in rows))
    with FaultProxy(served.url) as proxy:
        cut = proxy.on_request(r"^POST /v1/jobs ", Fault.CUT, 0.2)
        result = CliRunner().invoke(cli, ["--url", proxy.url, "--key", DEV_KEY, "submit", str(tmp_path / "lines.tsv")])
    assert cut.fired.is_set()
    assert result.exit_code == 0, result.output
    assert "sent 3000 lines" in result.stderr and "try 2)" in result.stderr
    job_id = result.stdout.strip()
    assert _jobs_stored(served.env) - before == {job_id}
    url = f"{served.url}/v1/jobs/{job_id}"
    job = requests.get(url, headers=AUTH, timeout=30).json()
    assert [item["id"] for item in job["inputs"]] == [row["id"] for row in rows]
    requests.delete(url, headers=AUTH, timeout=30)
