"""constraints.txt, the versions the images are built from, agrees with pyproject.toml.

A dependency added or bounded in pyproject.toml without regenerating constraints.txt
(scripts/update_constraints.sh) would make an image install something CI never tested, or fail to
resolve at build time on a GPU box; these tests say so here instead.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# The images pin torch themselves (none in the API image, the base image's CUDA build in the worker).
PINNED_BY_IMAGE = {"torch"}


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
        assert match, f"constraints.txt: {line!r} is not name==version"
        name = canonicalize_name(match.group(1))
        assert name not in found, f"constraints.txt pins {name} twice"
        found[name] = match.group(2)
    return found


def test_constraints_pin_neither_the_project_nor_what_an_image_pins() -> None:
    assert not {canonicalize_name(PROJECT["name"]), *PINNED_BY_IMAGE} & set(pins())


@pytest.mark.parametrize("group", ["dependencies", "kanitts2"])
def test_every_image_dependency_is_pinned_within_its_declared_range(group: str) -> None:
    declared = PROJECT["dependencies"] if group == "dependencies" else PROJECT["optional-dependencies"][group]
    pinned = pins()
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name in PINNED_BY_IMAGE:
            continue
        assert name in pinned, f"{name} is not in constraints.txt: run scripts/update_constraints.sh"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, outside {requirement.specifier}"
        )


@pytest.mark.parametrize("image", ["api", "worker"])
def test_images_install_with_the_constraints(image: str) -> None:
    dockerfile = REPO / "deploy" / f"{image}.Dockerfile"
    text = dockerfile.read_text()
    copies = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ")]
    assert any("constraints.txt" in sources for sources in copies)
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and all("--constraint constraints.txt" in line for line in installs)
    assert "!constraints.txt" in Path(f"{dockerfile}.dockerignore").read_text().splitlines()
