"""Static checks of docker-compose.sentinel.yml, the failover variant: every service that reaches Redis
does so through the sentinels, which watch the compose primary with a majority quorum."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shared.settings import Settings
from tests.deploy.test_compose import SERVICES, environment

REPO = Path(__file__).resolve().parents[2]
VARIANT: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.sentinel.yml").read_text())["services"]


def merged_env(service: str) -> dict[str, str]:
    """What `docker compose -f docker-compose.yml -f docker-compose.sentinel.yml` gives the service."""
    return {**environment(service), **VARIANT.get(service, {}).get("environment", {})}


def test_every_redis_client_goes_through_the_sentinels() -> None:
    clients = [name for name in SERVICES if "NARRATE_REDIS_URL" in environment(name)]
    assert {"api", "worker", "voices", "webhooks"} <= set(clients)
    sentinel_services = {name for name in VARIANT if name.startswith("sentinel-")}
    for name in clients:
        env = merged_env(name)
        settings = Settings(
            redis_url=env["NARRATE_REDIS_URL"], redis_sentinel_master=env["NARRATE_REDIS_SENTINEL_MASTER"]
        )
        assert settings.redis_sentinels is not None, name
        assert {host for host, _ in settings.redis_sentinels} == sentinel_services
        assert {port for _, port in settings.redis_sentinels} == {26379}


def test_sentinels_watch_the_compose_primary_with_a_majority_quorum() -> None:
    sentinels = [VARIANT[name] for name in VARIANT if name.startswith("sentinel-")]
    assert len(sentinels) == 3
    master = merged_env("api")["NARRATE_REDIS_SENTINEL_MASTER"]
    for sentinel in sentinels:
        script = sentinel["entrypoint"][-1]
        assert f"'sentinel monitor {master} redis 6379 2'" in script  # 2 of 3: one sentinel lost still fails over
        assert "--sentinel" in script
    replica = VARIANT["redis-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 : replica.index("--replicaof") + 3] == ["redis", "6379"]
    for name in ("redis", "redis-replica"):
        command = VARIANT[name]["command"]
        assert command[command.index("--appendonly") + 1] == "yes"
