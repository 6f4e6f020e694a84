"""The compose stack's Prometheus rules and config, checked by Prometheus's own promtool (Debian's
`prometheus` package; scripts/setup_test_tools.sh installs it): the rules parse, each alert fires on the
series that should raise it and not on a healthy stack (alerts_test.yml), and prometheus.yml loads them
from where compose mounts them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yml")
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing (Debian package prometheus): bash scripts/setup_test_tools.sh")
    return found


def run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_rules_are_valid(promtool: str) -> None:
    checked = run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_alert_fires_when_it_should_and_only_then(promtool: str) -> None:
    tested = run(promtool, "test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tested_alerts = {
        case["alertname"]
        for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    defined = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert tested_alerts == defined  # every alert has a case where it fires


def test_the_config_loads_the_rules_where_compose_mounts_them(promtool: str, tmp_path: Path) -> None:
    """The container's /etc/prometheus rebuilt from compose's bind mounts, then `promtool check config`."""
    root = tmp_path / "etc-prometheus"
    for volume in COMPOSE["services"]["prometheus"]["volumes"]:
        source, target, *_ = str(volume).split(":")
        if not source.startswith("./") or not target.startswith("/etc/prometheus"):
            continue
        inside = root / Path(target).relative_to("/etc/prometheus")
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, inside)
        else:
            inside.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / source, inside)
    checked = run(promtool, "check", "config", str(root / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(yaml.safe_load(RULES.read_text())['groups'][0]['rules'])} rules found" in checked.stdout
