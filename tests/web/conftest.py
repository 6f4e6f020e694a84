"""Fixtures of the browser tests: the real stack (gunicorn API, a Celery worker on the tiny KaniTTS2
models, which clone) and headless Chromium driven by Selenium."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from tests.api.test_voices import speech  # noqa: F401 - session fixture: real speech for a reference clip
from tests.conftest import ServiceEnv
from tests.worker.conftest import tiny_kanitts2_env  # noqa: F401 - session fixture


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def web_stack(
    redis_url: str,
    key_prefix: str,
    tiny_kanitts2_env: dict[str, str],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalStack]:
    prefix = f"{key_prefix}-{uuid.uuid4().hex[:6]}"
    root = tmp_path_factory.mktemp("web")
    env = ServiceEnv(redis_url, prefix, f"{prefix}-q", f"file://{root / 'storage'}", extra=dict(tiny_kanitts2_env))
    with LocalStack(port=free_port(), api_workers=1, env=env.env(), log_dir=root / "logs", echo=False) as stack:
        yield stack


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where the screenshots go: NARRATE_TEST_ARTIFACTS (CI keeps it), else a folder beside the tests' temp."""
    path = Path(os.environ.get("NARRATE_TEST_ARTIFACTS", "test-artifacts")) / "web"
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nweb page screenshots: {path.resolve()}")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's chromium and chromium-driver (scripts/setup_test_tools.sh installs them), headless."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("The browser tests need Debian's chromium and chromium-driver: bash scripts/setup_test_tools.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,1100",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield browser
    finally:
        browser.quit()
