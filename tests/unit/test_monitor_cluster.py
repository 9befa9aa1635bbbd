"""The worker builds on a Redis Cluster URL: the monitor's own Redis client was a standalone
one, whose URL parser refused `redis+cluster://` and stopped `bounceguard worker` at start-up.
On a Cluster its memory gauges are the sums over the primaries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from pipeline.config import Settings
from pipeline.stream import monitor
from pipeline.stream.app import create_app


def test_the_worker_app_builds_on_a_cluster_url_with_a_cluster_monitor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[Any] = []
    real = monitor.Monitor.__init__

    def spy(self: monitor.Monitor, app: Any, settings: Settings, probe: Any, client: Any) -> None:
        built.append(client)
        real(self, app, settings, probe, client)

    monkeypatch.setattr(monitor.Monitor, "__init__", spy)
    url = "redis+cluster://127.0.0.1:7101,127.0.0.1:7102"
    runtime = create_app(Settings.from_env({"BOUNCEGUARD_REDIS_URL": url}))
    assert runtime.store.cluster is not None
    [client] = built
    assert isinstance(client, RedisCluster)
    asyncio.run(client.aclose())


def test_memory_of_one_node_and_of_several_primaries() -> None:
    assert monitor.memory_of({"used_memory": 5, "maxmemory": 0}) == (5.0, 0.0)
    per_node = {
        "127.0.0.1:7101": {"used_memory": 5, "maxmemory": 10},
        "127.0.0.1:7102": {"used_memory": 7, "maxmemory": 10},
    }
    assert monitor.memory_of(per_node) == (12.0, 20.0)
