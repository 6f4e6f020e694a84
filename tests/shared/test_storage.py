"""Storage backends against a real S3 HTTP server (moto) and a real directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from shared.settings import Settings
from shared.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    StorageError,
    StorageKeyMissing,
    StorageUnavailable,
    storage_from_settings,
)
from tests.support.s3 import S3Server, s3_server, s3_storage_url  # noqa: F401 - fixtures

MIB = 1024 * 1024


def s3_storage(server: S3Server, url: str, **overrides: object) -> Storage:
    settings = Settings(storage_url=url, s3_endpoint_url=server.endpoint_url, s3_region="us-east-1", **overrides)
    return storage_from_settings(settings)


@pytest.fixture
def s3(s3_server: S3Server, s3_storage_url: str) -> Storage:  # noqa: F811
    return s3_storage(s3_server, s3_storage_url)


@pytest.fixture
def local(tmp_path: Path) -> Storage:
    return storage_from_settings(Settings(storage_url=f"file://{tmp_path / 'store'}"))


@pytest.fixture(params=["s3", "local"])
def storage(request: pytest.FixtureRequest) -> Storage:
    return request.getfixturevalue(request.param)


# --- behaviour both backends share -------------------------------------------------------------


def test_round_trip_and_overwrite(storage: Storage) -> None:
    storage.put_bytes("jobs/j1/result.mp3", b"first", "audio/mpeg")
    assert storage.get_bytes("jobs/j1/result.mp3") == b"first"
    storage.put_bytes("jobs/j1/result.mp3", b"second", "audio/mpeg")
    assert storage.get_bytes("jobs/j1/result.mp3") == b"second"
    assert storage.exists("jobs/j1/result.mp3")


def test_put_file(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "in.wav"
    src.write_bytes(os.urandom(70_000))
    storage.put_file("jobs/j1/a.wav", src, "audio/wav")
    assert storage.get_bytes("jobs/j1/a.wav") == src.read_bytes()


def test_missing_key(storage: Storage) -> None:
    assert not storage.exists("jobs/nope/result.mp3")
    with pytest.raises(StorageKeyMissing) as info:
        storage.get_bytes("jobs/nope/result.mp3")
    assert isinstance(info.value, KeyError)
    storage.delete("jobs/nope/result.mp3")  # deleting nothing is fine


def test_copy_is_a_new_object_with_the_same_bytes_and_a_missing_source_is_named(storage: Storage) -> None:
    storage.put_bytes("a/src.wav", b"RIFF-bytes", "audio/wav")
    storage.put_bytes("b/dst.wav", b"old")
    storage.copy("a/src.wav", "b/dst.wav")
    assert storage.get_bytes("b/dst.wav") == b"RIFF-bytes" and storage.get_bytes("a/src.wav") == b"RIFF-bytes"
    storage.delete("a/src.wav")
    assert storage.get_bytes("b/dst.wav") == b"RIFF-bytes"  # a copy, not a reference
    with pytest.raises(StorageKeyMissing):
        storage.copy("a/src.wav", "c/never.wav")
    assert not storage.exists("c/never.wav")


def test_list_and_delete_prefix(storage: Storage) -> None:
    for key in ["jobs/a/1.mp3", "jobs/a/2.mp3", "jobs/a/sub/3.json", "jobs/ab/1.mp3", "voices/v/x.wav"]:
        storage.put_bytes(key, key.encode(), "application/octet-stream")
    assert storage.list_keys("jobs/a/") == ["jobs/a/1.mp3", "jobs/a/2.mp3", "jobs/a/sub/3.json"]
    assert storage.list_keys("jobs/a") == [
        "jobs/a/1.mp3",
        "jobs/a/2.mp3",
        "jobs/a/sub/3.json",
        "jobs/ab/1.mp3",
    ]
    assert len(storage.list_keys()) == 5

    assert storage.delete_prefix("jobs/a/") == 3
    assert storage.list_keys() == ["jobs/ab/1.mp3", "voices/v/x.wav"]
    assert storage.delete_prefix("jobs/a/") == 0
    storage.delete("jobs/ab/1.mp3")
    assert storage.list_keys("jobs/") == []
    with pytest.raises(ValueError):
        storage.delete_prefix("")


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../../b", "a//b", "a/./b", "a\\b"])
def test_keys_cannot_escape(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError):
        storage.put_bytes(key, b"x", "text/plain")


def test_check_passes_on_a_usable_backend(storage: Storage) -> None:
    storage.check()


# --- S3 -----------------------------------------------------------------------------------------


def test_s3_keys_live_under_the_url_prefix(s3_server: S3Server) -> None:  # noqa: F811
    bucket = s3_server.create_bucket()
    one = s3_storage(s3_server, f"s3://{bucket}/tenant-one/")
    two = s3_storage(s3_server, f"s3://{bucket}/tenant-two")
    one.put_bytes("jobs/x/result.wav", b"1", "audio/wav")
    two.put_bytes("jobs/x/result.wav", b"2", "audio/wav")

    raw = s3_server.client().list_objects_v2(Bucket=bucket)
    assert sorted(o["Key"] for o in raw["Contents"]) == [
        "tenant-one/jobs/x/result.wav",
        "tenant-two/jobs/x/result.wav",
    ]
    assert one.list_keys() == ["jobs/x/result.wav"]
    assert one.get_bytes("jobs/x/result.wav") == b"1"
    assert one.delete_prefix("jobs/") == 1
    assert two.get_bytes("jobs/x/result.wav") == b"2"
    head = s3_server.client().head_object(Bucket=bucket, Key="tenant-two/jobs/x/result.wav")
    assert head["ContentType"] == "audio/wav"


def test_s3_large_uploads_are_multipart(s3_server: S3Server, s3_storage_url: str, tmp_path: Path) -> None:  # noqa: F811
    storage = s3_storage(s3_server, s3_storage_url, s3_multipart_threshold_bytes=5 * MIB)
    data = os.urandom(11 * MIB)
    src = tmp_path / "book.mp3"
    src.write_bytes(data)
    storage.put_file("jobs/big/book.mp3", src, "audio/mpeg")
    storage.put_bytes("jobs/big/book2.mp3", data, "audio/mpeg")
    storage.put_bytes("jobs/big/small.mp3", data[:MIB], "audio/mpeg")

    bucket, prefix = urlsplit(s3_storage_url).netloc, urlsplit(s3_storage_url).path.strip("/")
    client = s3_server.client()
    for name in ("book.mp3", "book2.mp3"):
        etag = client.head_object(Bucket=bucket, Key=f"{prefix}/jobs/big/{name}")["ETag"].strip('"')
        assert etag.endswith("-3"), etag  # 11 MiB in 5 MiB parts: a three-part multipart upload
        assert storage.get_bytes(f"jobs/big/{name}") == data
    small = client.head_object(Bucket=bucket, Key=f"{prefix}/jobs/big/small.mp3")["ETag"]
    assert "-" not in small


def test_s3_presigned_url_downloads(s3_server: S3Server, s3_storage_url: str) -> None:  # noqa: F811
    storage = s3_storage(s3_server, s3_storage_url, s3_presign_expiry_seconds=900)
    payload = os.urandom(4096)
    storage.put_bytes("jobs/j/result.mp3", payload, "audio/mpeg")

    url = storage.url_for("jobs/j/result.mp3", filename="Chapter 1 – Bennet.mp3")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["900"]
    response = requests.get(url, timeout=10)  # no credentials: the signature is the permission
    assert response.status_code == 200
    assert response.content == payload
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Chapter 1 _ Bennet.mp3"')
    assert "filename*=utf-8''Chapter%201%20%E2%80%93%20Bennet.mp3" in disposition

    plain = requests.get(storage.url_for("jobs/j/result.mp3"), timeout=10)
    assert plain.content == payload
    assert "Content-Disposition" not in plain.headers


def test_s3_presigned_urls_can_name_a_public_endpoint(s3_server: S3Server, s3_storage_url: str) -> None:  # noqa: F811
    """Services reach the store under one name, clients under another (Docker's minio vs localhost)."""
    internal = s3_server.endpoint_url  # http://127.0.0.1:PORT
    public = internal.replace("127.0.0.1", "localhost")
    parts = urlsplit(s3_storage_url)
    storage = S3Storage(parts.netloc, parts.path, endpoint_url=internal, public_endpoint_url=public)
    storage.put_bytes("jobs/j/result.opus", b"OggS-data", "audio/ogg")
    url = storage.url_for("jobs/j/result.opus")
    assert url.startswith(f"{public}/{parts.netloc}/results/jobs/j/result.opus?")
    assert requests.get(url, timeout=10).content == b"OggS-data"


def test_s3_check_reports_missing_bucket_and_dead_endpoint(s3_server: S3Server) -> None:  # noqa: F811
    with pytest.raises(StorageUnavailable):
        s3_storage(s3_server, "s3://no-such-bucket/x").check()

    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    dead = S3Storage("bucket", endpoint_url=f"http://127.0.0.1:{dead_port}", region="us-east-1")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        dead.check()
    assert time.monotonic() - started < 10  # readiness probes must not hang on retries


def test_storage_from_settings_parses_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = storage_from_settings(Settings(storage_url="s3://results/narrate/prod/", s3_endpoint_url="http://minio:9000"))
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("results", "narrate/prod/", "http://minio:9000")
    assert storage_from_settings(Settings(storage_url="s3://results")).prefix == ""

    monkeypatch.chdir(tmp_path)
    relative = storage_from_settings(Settings(storage_url="file://./var/storage"))
    assert isinstance(relative, LocalStorage)
    assert relative.root == tmp_path.resolve() / "var" / "storage"
    absolute = storage_from_settings(Settings(storage_url=f"file://{tmp_path}/abs"))
    assert absolute.root == tmp_path.resolve() / "abs"


# --- local --------------------------------------------------------------------------------------


def test_local_url_is_a_readable_file_url(local: Storage) -> None:
    local.put_bytes("jobs/j/result.flac", b"fLaC-data", "audio/flac")
    url = local.url_for("jobs/j/result.flac", filename="x.flac")
    assert url.startswith("file:///")
    with urllib.request.urlopen(url) as fh:
        assert fh.read() == b"fLaC-data"


def test_local_delete_prunes_empty_directories(local: LocalStorage) -> None:
    local.put_bytes("jobs/j/chunks/0001.wav", b"x", "audio/wav")
    local.put_bytes("jobs/k/result.wav", b"y", "audio/wav")
    local.delete_prefix("jobs/j/")
    assert not (local.root / "jobs" / "j").exists()
    local.delete("jobs/k/result.wav")
    assert not (local.root / "jobs").exists()
    assert local.root.is_dir()


def test_local_check_fails_when_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageUnavailable):
        LocalStorage(blocker / "store").check()


def test_local_writer_killed_mid_write_leaves_old_object(local: LocalStorage, tmp_path: Path) -> None:
    """A worker killed while uploading must leave the previous result intact and no partial key."""
    local.put_bytes("jobs/j/result.wav", b"old complete result", "audio/wav")
    fifo = tmp_path / "source.fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                from shared.storage import LocalStorage
                LocalStorage({str(local.root)!r}).put_file("jobs/j/result.wav", {str(fifo)!r}, "audio/wav")
                """
            ),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        with open(fifo, "wb") as source:
            source.write(b"N" * 3 * MIB)  # the writer is now blocked mid-copy, waiting for more
            source.flush()
            deadline = time.monotonic() + 20
            while not any(p.name.startswith(".narrate-tmp-") for p in (local.root / "jobs/j").iterdir()):
                assert time.monotonic() < deadline, "writer never started"
                time.sleep(0.02)
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=10)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert local.get_bytes("jobs/j/result.wav") == b"old complete result"
    assert local.list_keys() == ["jobs/j/result.wav"]


def test_s3_rides_out_an_outage_shorter_than_its_retry_budget(s3_server: S3Server, s3_storage_url: str) -> None:  # noqa: F811
    from tests.support.fault_proxy import Fault, FaultProxy

    with FaultProxy(s3_server.endpoint_url) as proxy:
        settings = Settings(
            storage_url=s3_storage_url, s3_endpoint_url=proxy.url, s3_region="us-east-1",
            s3_max_attempts=1, storage_retry_seconds=20,
        )  # fmt: skip
        storage = storage_from_settings(settings)
        storage.put_bytes("a/before", b"1")
        proxy.outage(Fault.REFUSE, 2.0)
        started = time.monotonic()
        storage.put_bytes("a/during", b"2")  # refused for 2 s, then through
        assert 1.5 < time.monotonic() - started < 15 and proxy.refused > 0
        assert storage.get_bytes("a/during") == b"2"


def test_s3_gives_up_after_its_budget_with_unavailable_and_at_once_on_a_refusal(
    s3_server: S3Server,  # noqa: F811
    s3_storage_url: str,  # noqa: F811
) -> None:
    from tests.support.fault_proxy import Fault, FaultProxy

    with FaultProxy(s3_server.endpoint_url) as proxy:
        settings = Settings(
            storage_url=s3_storage_url, s3_endpoint_url=proxy.url, s3_region="us-east-1", s3_max_attempts=1,
            storage_retry_seconds=1.5, s3_read_timeout_seconds=0.5, s3_connect_timeout_seconds=0.5,
        )  # fmt: skip
        storage = storage_from_settings(settings)
        for fault in (Fault.REFUSE, Fault.HOLD):
            proxy.set(fault)
            started = time.monotonic()
            with pytest.raises(StorageUnavailable, match=r"after 1\.5 s of retries"):
                storage.put_bytes("b/key", b"x")
            assert 1.5 <= time.monotonic() - started < 8
        proxy.set(Fault.PASS)
        missing = storage_from_settings(settings.model_copy(update={"storage_url": "s3://no-such-bucket-here/x"}))
        started = time.monotonic()
        with pytest.raises(StorageError) as refused:
            missing.put_bytes("c/key", b"x")
        assert not isinstance(refused.value, StorageUnavailable) and time.monotonic() - started < 1.0
