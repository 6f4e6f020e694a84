"""The file backend's download route `GET /v1/files/{token}` on the real app and Redis: no key needed,
byte ranges for players, and tokens that only this deployment's key signs."""

from __future__ import annotations

import os

from api import create_app
from shared.downloads import FILES_ROUTE
from tests.conftest import ServiceEnv

KEY = "results/dev/job_1/job_1.mp3"
DATA = os.urandom(5000)


def _app(env: ServiceEnv, **settings: str):
    env.extra.update({f"NARRATE_{name.upper()}": value for name, value in settings.items()})
    app = create_app(env.settings())
    app.testing = True
    return app


def _link(app, key: str = KEY, filename: str = "Chapter 1.mp3") -> str:
    services = app.extensions["narrate"]
    services.storage.put_bytes(key, DATA, "audio/mpeg")
    url, _ = services.links.link(key, filename, base_url="")
    assert url.startswith(FILES_ROUTE)
    return url


def test_a_link_downloads_without_a_key_with_its_name_and_type(service_env):
    app = _app(service_env)
    response = app.test_client().get(_link(app))  # no Authorization header
    assert response.status_code == 200 and response.get_data() == DATA
    assert response.mimetype == "audio/mpeg"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="Chapter 1.mp3"')


def test_a_byte_range_is_206_with_exactly_those_bytes_and_a_range_outside_is_416(service_env):
    app = _app(service_env)
    client, url = app.test_client(), _link(app)
    part = client.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.get_data() == DATA[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(DATA)}"
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.get_data() == DATA[-10:]
    outside = client.get(url, headers={"Range": f"bytes={len(DATA) + 10}-"})
    assert outside.status_code == 416 and outside.get_json()["error"]["code"] == "range_not_satisfiable"
    assert outside.headers["Content-Range"] == f"bytes */{len(DATA)}"


def test_every_api_process_accepts_the_links_of_the_others_and_nobody_elses(service_env):
    """The random key is created once in Redis, so gunicorn workers and restarts share it."""
    first = _app(service_env)
    url = _link(first)
    restarted = create_app(service_env.settings()).test_client()
    assert restarted.get(url).get_data() == DATA
    token = url.removeprefix(FILES_ROUTE)
    payload, signature = token.rsplit(".", 1)
    forged = f"{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"  # one character of the signature
    for bad in (forged, "not-a-token", token.split(".")[0]):
        response = restarted.get(FILES_ROUTE + bad)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    other_key = create_app(
        ServiceEnv(**{**vars(service_env), "extra": {"NARRATE_DOWNLOAD_SIGNING_KEY": "x" * 32}}).settings()
    )
    assert other_key.test_client().get(url).status_code == 404


def test_a_configured_signing_key_signs_links_for_every_process_that_has_it(service_env):
    app = _app(service_env, download_signing_key="k" * 40)
    url = _link(app)
    elsewhere = ServiceEnv(**{**vars(service_env), "key_prefix": service_env.key_prefix + "-b"})
    elsewhere.extra = {"NARRATE_DOWNLOAD_SIGNING_KEY": "k" * 40}
    assert create_app(elsewhere.settings()).test_client().get(url).get_data() == DATA


def test_a_deleted_file_is_404(service_env):
    app = _app(service_env)
    url = _link(app)
    app.extensions["narrate"].storage.delete(KEY)
    assert app.test_client().get(url).status_code == 404
