"""Static checks of the images the fleet runs (no Docker engine here): the GPU worker's torch is a CUDA
12.8+ build (Blackwell needs 12.8, Hopper runs it too), the CPU worker carries no torch, and every image
the Kubernetes manifests name is built by a Dockerfile in deploy/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.test_k8s import BASE, GPU

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
IMAGES = {
    "narrate-api": DEPLOY / "api.Dockerfile",
    "narrate-worker": DEPLOY / "worker.Dockerfile",
    "narrate-worker-cpu": DEPLOY / "worker-cpu.Dockerfile",
}
"""Image name in the manifests -> the Dockerfile that builds it (README "Deploy")."""


def copied(path: Path) -> list[str]:
    return [src for line in path.read_text().splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]]


def test_every_image_the_manifests_run_has_its_dockerfile() -> None:
    named = {
        c["image"].split(":")[0]
        for docs in (BASE, GPU)
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert named - {"redis"} <= set(IMAGES), named
    assert {"narrate-api", "narrate-worker", "narrate-worker-cpu"} <= named


def test_gpu_worker_torch_is_a_cuda_12_8_or_later_build() -> None:
    base = re.search(r"^FROM (\S+)", IMAGES["narrate-worker"].read_text(), re.MULTILINE).group(1)
    match = re.fullmatch(r"pytorch/pytorch:(\d+)\.(\d+)\.\d+-cuda(\d+)\.(\d+)-cudnn\d+-runtime", base)
    assert match, base
    torch_version, cuda = tuple(map(int, match.group(1, 2))), tuple(map(int, match.group(3, 4)))
    assert cuda >= (12, 8)  # sm_100/sm_120 (B200, RTX 50xx) kernels first ship in CUDA 12.8 builds
    assert torch_version >= (2, 7)  # the first torch release with CUDA 12.8 wheels


def test_cpu_worker_image_runs_the_preview_voice_without_torch() -> None:
    path = IMAGES["narrate-worker-cpu"]
    text = path.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r'pip install (--constraint \S+ )+"\.\[cpu\]"', text)
    instructions = "\n".join(line for line in text.lower().splitlines() if not line.lstrip().startswith("#"))
    assert not any(word in instructions for word in ("torch", "cuda", "kanitts2"))
    assert "ENV NARRATE_ENGINE=piper" in text
    ignore = Path(f"{path}.dockerignore").read_text().splitlines()
    for source in copied(path):
        assert (REPO / source).exists(), source
        assert f"!{source.rstrip('/')}/" in ignore or f"!{source}" in ignore, source


def test_the_cpu_worker_process_imports_no_torch(tmp_path: Path) -> None:
    """torch is blocked outright: the piper worker's modules must load without it."""
    code = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'nemo'): sys.modules[name] = None\n"
        "import worker.celery_app, worker.webhook_app, worker.engines.piper_engine\n"
    )
    env = {**os.environ, "NARRATE_STORAGE_URL": f"file://{tmp_path}", "NARRATE_ENGINE": "piper"}
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_images_run_as_an_unprivileged_user(name: str) -> None:
    assert re.search(r"^USER narrate$", IMAGES[name].read_text(), re.MULTILINE)
