"""Redis refusing writes (maxmemory reached, a read-only replica) is a transient error for the
state layer: the agents retry it instead of dead-lettering good events as internal errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from pipeline.core.errors import Transient
from pipeline.core.policies import load_preset
from tests.integration.policies.conftest import T0, Engine, attempt

pytestmark = pytest.mark.integration


@pytest.fixture
def full_redis(redis_server: str, redis_client: redis.Redis) -> Iterator[Engine]:
    """An engine on a Redis whose maxmemory is already exceeded (noeviction); reset after."""
    eng = Engine(redis_server, load_preset("default"), f"m{uuid.uuid4().hex[:8]}")
    before = redis_client.config_get("maxmemory")["maxmemory"]
    policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", "1")
    try:
        yield eng
    finally:
        redis_client.config_set("maxmemory", before)
        redis_client.config_set("maxmemory-policy", policy)
        eng.close()


def test_a_full_redis_is_transient_so_the_batch_is_retried(full_redis: Engine) -> None:
    with pytest.raises(Transient):
        full_redis.send(attempt("user_unknown", T0, address="kept@example.com"))
