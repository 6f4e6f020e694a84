"""Pack what the GPU machine lacks into `.whl/` (git-ignored), to travel with the call as `carry`.

The GPU machine has its own Python 3.12 with torch and transformers 5.17 and cannot download
anything. The benchmark needs there: transformers >= 5.24 (our forward's cache argument), NeMo and the
packages NeMo's TTS collection imports when the codec loads, and for the reference a second set:
transformers 4.56 with its tokenizers and hub client and the `kani-tts-2` model code. Pure-Python
distributions are copied file by file (their RECORD) from this checkout's `.venv` and `.venv-ref`;
compiled or per-Python-version ones are downloaded as CPython 3.12 manylinux wheels in the versions
installed here. `wandb`, which NeMo's TTS models import at load but decoding never calls, is an
import-only stand-in (the real wheel alone is ~20 MB of the 64 MiB a call may carry).

The worker path (bench/gpu_units.py: Redis, Celery, the worker process) needs the service's own
pure-Python dependencies as well (`WORKER_COPY`; those this checkout lacks are skipped) and a Redis
server: this machine's `redis-server` with the shared libraries it links beyond glibc goes into
`.whl/redis/` (glibc 2.34 symbols at most on Debian 12, so it runs on the image's Ubuntu 22.04).

Run here, once per checkout:  .venv/bin/python bench/gpu_bundle.py
Result: .whl/site-main.tar.gz, .whl/site-ref.tar.gz, .whl/cp312-main/*.whl, .whl/cp312-ref/*.whl
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / ".whl"

MAIN_COPY = [
    "transformers",
    "nemo-toolkit",
    "lhotse",
    "librosa",
    "hydra-core",
    "omegaconf",
    "antlr4-python3-runtime",
    "datasets",
    "dill",
    "pydantic",
    "typing-inspection",
    "annotated-types",
    "strenum",
    "overrides",
    "toml",
    "soundfile",
    "intervaltree",
    "braceexpand",
    "webdataset",
    "httpx2",
    "httpcore2",
    "truststore",
    "nv-one-logger-core",
    "nv-one-logger-training-telemetry",
    "nv-one-logger-pytorch-lightning-integration",
    "platformdirs",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-proto",
    "opentelemetry-semantic-conventions",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-exporter-otlp-proto-common",
    "opentelemetry-exporter-otlp-common",
    "opentelemetry-exporter-http-transport",
    "decorator",
    "pooch",
    "pycparser",
    "pysbd",
    "num2words",
    "roman",
]
"""Pure-Python distributions the codec, our forward and the text planner (pysbd, num2words, roman)
import, found by running the CPU smoke run with every distribution the GPU image lacks blocked."""
WORKER_COPY = [
    "celery", "kombu", "billiard", "vine", "amqp", "click", "click-didyoumean", "click-repl", "click-plugins",
    "prompt-toolkit", "wcwidth", "python-dateutil", "six", "tzdata", "tzlocal", "redis", "pydantic-settings",
    "python-dotenv", "prometheus-client", "tenacity", "mutagen", "pyloudnorm", "urllib3", "requests", "certifi",
    "idna", "charset-normalizer", "standardwebhooks", "attrs", "Deprecated", "wrapt", "httpx", "sniffio", "anyio",
    "h11", "httpcore",
]  # fmt: skip
"""The worker process's own imports the GPU image lacks (PyAV is stood in by bench/gpu_units.py: its
jobs are WAV)."""
MAIN_WHEELS = ["pydantic-core", "cffi", "soxr", "cytoolz", "kaldialign", "multiprocess"]
"""Compiled, or built per Python version: downloaded for CPython 3.12."""
REF_COPY = ["transformers", "huggingface-hub", "kani-tts-2"]
REF_WHEELS = ["tokenizers"]
STUB = '"""Import-only stand-in for wandb on the benchmark machine: NeMo imports it; decoding never calls it."""\n'
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64"]
PLATFORMS += ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"]


def site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise SystemExit(f"no site-packages under {venv.name}: run scripts/setup.sh")
    return found[0]


def dist_info(site: Path, name: str) -> Path:
    wanted = re.sub(r"[-_.]+", "_", name).lower()
    for candidate in site.glob("*.dist-info"):
        if re.sub(r"[-_.]+", "_", candidate.name[: -len(".dist-info")].rsplit("-", 1)[0]).lower() == wanted:
            return candidate
    raise SystemExit(f"{name} is not installed in {site.parent.parent.parent.name}")


def version(site: Path, name: str) -> str:
    return dist_info(site, name).name[: -len(".dist-info")].rsplit("-", 1)[1]


def copy_distribution(site: Path, name: str, target: Path) -> int:
    """Every file the distribution's RECORD lists (bytecode left out); returns bytes copied."""
    info = dist_info(site, name)
    copied = 0
    for line in (info / "RECORD").read_text().splitlines():
        relative = line.split(",", 1)[0]
        if not relative or "__pycache__" in relative or relative.endswith(".pyc") or relative.startswith(".."):
            continue
        source = site / relative
        if source.is_file():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
            copied += source.stat().st_size
    return copied


def download(names: list[str], site: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}=={version(site, name)}" for name in names]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", "3.12", "--implementation", "cp", "-d", str(target)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + specs, check=True)


def pack(stage: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(stage.iterdir()):
            tar.add(path, arcname=path.name)


def pack_redis(target: Path) -> None:
    """This machine's redis-server and the shared libraries it needs beyond glibc and libstdc++."""
    binary = shutil.which("redis-server")
    if binary is None:
        print("no redis-server here: the worker path needs one on the GPU machine")
        return
    target.mkdir(parents=True)
    shutil.copy2(Path(binary).resolve(), target / "redis-server")  # it runs as the server by this name
    linked = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    for line in linked.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and parts[1].split() and parts[1].split()[0].startswith("/"):
            library = Path(parts[1].split()[0])
            if not library.name.startswith(("libc.so", "libm.so", "libstdc++", "libgcc_s", "ld-linux")):
                shutil.copy2(library, target / library.name)


def main() -> None:
    main_site = site_packages(ROOT / ".venv")
    ref_site = site_packages(ROOT / ".venv-ref")
    if BUNDLE.exists():
        shutil.rmtree(BUNDLE)
    BUNDLE.mkdir()
    with tempfile.TemporaryDirectory() as scratch:
        stage = Path(scratch) / "main"
        total = sum(copy_distribution(main_site, name, stage) for name in MAIN_COPY)
        for name in WORKER_COPY:
            try:
                total += copy_distribution(main_site, name, stage)
            except SystemExit as missing:  # not installed here: the image may have it
                print(f"worker path: {missing}")
        (stage / "wandb").mkdir()
        (stage / "wandb" / "__init__.py").write_text(STUB)
        pack(stage, BUNDLE / "site-main.tar.gz")
        ref_stage = Path(scratch) / "ref"
        total += sum(copy_distribution(ref_site, name, ref_stage) for name in REF_COPY)
        pack(ref_stage, BUNDLE / "site-ref.tar.gz")
    pack_redis(BUNDLE / "redis")
    download(MAIN_WHEELS, main_site, BUNDLE / "cp312-main")
    download(REF_WHEELS, ref_site, BUNDLE / "cp312-ref")
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    print(f"{total / 2**20:.0f} MiB of sources packed; .whl holds {size / 2**20:.1f} MiB (a call carries 64 MiB)")


if __name__ == "__main__":
    main()
