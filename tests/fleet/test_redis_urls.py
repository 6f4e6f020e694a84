"""One setting names Redis for every client: plain URLs, or Sentinel in kombu's notation, which the job
store (redis-py's Sentinel), the rate limits (`limits`' redis+sentinel) and the broker (kombu's
sentinel transport) all follow."""

from __future__ import annotations

import pydantic
import pytest

from shared.queue import make_celery
from shared.services import limits_storage, redis_client
from shared.settings import Settings

SENTINELS = "sentinel://:s3cret@10.0.0.1:26379;sentinel://10.0.0.2:26380;sentinel://10.0.0.3/2"


def test_a_sentinel_url_reaches_every_client_with_its_primary_name_and_database() -> None:
    settings = Settings(redis_url=SENTINELS, redis_sentinel_master="narrate")
    assert settings.redis_sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379)]
    pool = redis_client(settings).connection_pool
    assert pool.service_name == "narrate"
    assert pool.connection_kwargs["db"] == 2 and pool.connection_kwargs["password"] == "s3cret"
    assert limits_storage(settings) == (
        "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,10.0.0.3:26379/narrate",
        {"db": 2, "password": "s3cret"},
    )
    app = make_celery(settings, "t")
    assert app.conf.broker_url == SENTINELS
    assert app.conf.broker_transport_options["master_name"] == "narrate"


def test_a_plain_url_is_used_as_it_is() -> None:
    settings = Settings(redis_url="redis://cache:6379/1")
    assert settings.redis_sentinels is None
    assert limits_storage(settings) == ("redis://cache:6379/1", {})
    assert "master_name" not in make_celery(settings, "t").conf.broker_transport_options


@pytest.mark.parametrize("url", ["http://redis:6379", "sentinel://;sentinel://h:1", "sentinel://h:1;redis://h:2"])
def test_a_url_no_client_can_use_is_refused_at_start(url: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="redis_url"):
        Settings(redis_url=url)
