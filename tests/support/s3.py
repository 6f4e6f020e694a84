"""A real S3-compatible HTTP server for tests: moto in server mode on a free local port.

Storage code is exercised over HTTP exactly as against MinIO or AWS (signing, multipart, presigned
URLs), with nothing leaving the machine. Use `start_s3_server()` directly, or the `s3_server`
(session) and `s3_storage_url` (fresh bucket per test) fixtures by importing them into a test module
or conftest.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

ACCESS_KEY = "narrate-test"
SECRET_KEY = "narrate-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    @property
    def env(self) -> dict[str, str]:
        """Environment a child process (API, worker) needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "NARRATE_S3_ENDPOINT_URL": self.endpoint_url,
            "NARRATE_S3_REGION": REGION,
        }

    def client(self) -> Any:
        """A boto3 S3 client with the server's credentials (for setting up and inspecting buckets)."""
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"narrate-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def start_s3_server() -> tuple[S3Server, Callable[[], None]]:
    """Start moto's S3 server on 127.0.0.1 and a free port; returns the server and its stop function."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return S3Server(endpoint_url=f"http://{host}:{port}"), server.stop


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3 server for the session, with its credentials in this process's environment."""
    server, stop = start_s3_server()
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update({k: v for k, v in server.env.items() if k.startswith("AWS_")})
    try:
        yield server
    finally:
        stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_storage_url(s3_server: S3Server) -> str:
    """`s3://` storage URL of a fresh bucket (with a prefix) on the session's server."""
    return f"s3://{s3_server.create_bucket()}/results"
