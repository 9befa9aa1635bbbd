"""Worker-level gauges sampled on a timer: consumer lag per partition and Redis memory.

Responsibilities:
- at start, set `bounceguard_worker_info` and the tenant label cap from Settings;
- every `monitor_interval` seconds, on the consumer group's leader only (so the whole group
  reports each partition once, not once per worker): read the group's committed offsets and
  the partitions' end offsets with kafka-python's admin client, and publish end - committed
  per partition; read `INFO memory` from Redis.

Why kafka-python and not faust's consumer: faust knows only the partitions assigned to this
worker and its in-memory committed offsets; the broker's view covers the whole group and is
what an operator (or `kafka-consumer-groups.sh`) sees. The admin calls block, so they run in a
thread. Why a Redis client of its own: the state layer's Store is about counters; one INFO
call here keeps memory sampling out of it (the state layer stays the only code that touches
keys). A failed sample logs a warning and leaves the gauges as they were: monitoring must
never stop the worker. At shutdown (faust's `on_before_shutdown`) both clients are closed, after
a sample in progress, and the timer samples no more (`Monitor.close`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from typing import Any

import redis.asyncio as aioredis
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from redis.asyncio.cluster import RedisCluster

from pipeline import __version__
from pipeline.config import Settings
from pipeline.state.cluster import CLUSTER_SCHEME, cluster_client
from pipeline.stream import metrics

log = logging.getLogger(__name__)


def lag_per_partition(
    end: Mapping[TopicPartition, int],
    committed: Mapping[TopicPartition, int],
    earliest: Mapping[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """Return end - committed for each partition in `end`; a partition the group never
    committed is behind by everything still in it (end - earliest), since faust starts new
    groups at the earliest offset. Never negative."""
    lag = {}
    for tp, last in end.items():
        start = committed.get(tp, -1)
        if start < 0:
            start = earliest.get(tp, 0)
        lag[tp] = max(last - start, 0)
    return lag


class LagProbe:
    """Blocking lag reader for one consumer group (call from a thread); reuses its admin
    client and rebuilds it after an error."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin: KafkaAdminClient | None = None

    def admin(self) -> KafkaAdminClient:
        """Return the admin client, connecting on first use."""
        if self._admin is None:
            self._admin = KafkaAdminClient(
                bootstrap_servers=self.settings.kafka,
                client_id=f"{self.settings.app_id}-monitor",
                request_timeout_ms=10_000,
            )
        return self._admin

    def close(self) -> None:
        """Close the admin client (the next call reconnects)."""
        admin, self._admin = self._admin, None
        if admin is not None:
            admin.close()

    def read(self, topics: Collection[str]) -> dict[TopicPartition, int]:
        """Return the lag of every partition of `topics` for the group `settings.app_id`."""
        if not topics:  # describe_topics([]) would describe every topic of the cluster
            return {}
        admin = self.admin()
        tps = [
            TopicPartition(t["name"], p["partition_index"])
            for t in admin.describe_topics(sorted(topics))
            if not t.get("error_code")
            for p in t["partitions"]
        ]
        if not tps:
            return {}
        group = self.settings.app_id
        committed = {
            tp: meta.offset
            for tp, meta in admin.list_group_offsets({group: tps}).get(group, {}).items()
        }
        end = admin.list_partition_offsets(dict.fromkeys(tps, OffsetSpec.LATEST))
        earliest = admin.list_partition_offsets(dict.fromkeys(tps, OffsetSpec.EARLIEST))
        return lag_per_partition(
            {tp: o.offset for tp, o in end.items()},
            committed,
            {tp: o.offset for tp, o in earliest.items()},
        )


def consumed_topics(app: Any, settings: Settings) -> set[str]:
    """Names of our topics that `app`'s agents subscribe to (faust internals left out)."""
    ours = set(settings.topics.all())
    return {name for topic in app.topics for name in topic.topics} & ours


async def sample_lag(probe: LagProbe, topics: set[str]) -> None:
    """Publish consumer lag per partition of `topics`; on error log and keep the old values."""
    try:
        lag = await asyncio.to_thread(probe.read, topics)
    except Exception as exc:  # any failure: monitoring must not stop the worker
        probe.close()
        log.warning("consumer lag sample failed error=%s", type(exc).__name__)
        return
    for tp, value in lag.items():
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(value)


async def sample_redis(client: aioredis.Redis | RedisCluster) -> None:
    """Publish Redis used_memory and maxmemory (on a Cluster, the sums over its primaries);
    on error log and keep the old values."""
    try:
        if isinstance(client, RedisCluster):
            info = await client.info("memory", target_nodes=RedisCluster.PRIMARIES)
        else:
            info = await client.info("memory")
    except Exception as exc:  # any failure: monitoring must not stop the worker
        log.warning("redis memory sample failed error=%s", type(exc).__name__)
        return
    used, most = memory_of(info)
    metrics.REDIS_MEMORY.set(used)
    metrics.REDIS_MAXMEMORY.set(most)


def memory_of(info: Mapping[str, Any]) -> tuple[float, float]:
    """(used_memory, maxmemory) of an INFO memory reply: one node's fields, or redis-py's
    cluster reply {node name: fields} of several primaries, summed."""
    nodes = [info] if "used_memory" in info else list(info.values())
    used = sum(float(n.get("used_memory", 0)) for n in nodes)
    return used, sum(float(n.get("maxmemory", 0)) for n in nodes)


class Monitor:
    """The sampling timer's body and the clients it owns, until `close`."""

    def __init__(self, app: Any, settings: Settings, probe: LagProbe, client: Any) -> None:
        self.app = app
        self.settings = settings
        self.probe = probe
        self.client: aioredis.Redis | RedisCluster = client
        self.closed = False
        self._lock = asyncio.Lock()  # a sample and the close never overlap

    async def sample(self) -> None:
        """One tick: publish consumer lag, then Redis memory. Does nothing once closed."""
        async with self._lock:
            if self.closed:
                return
            await sample_lag(self.probe, consumed_topics(self.app, self.settings))
            await sample_redis(self.client)

    async def close(self) -> None:
        """Close the Kafka admin client and the Redis client, once, after a sample in
        progress; later ticks do nothing. Never raises: a failed close logs a warning."""
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                await asyncio.to_thread(self.probe.close)
            except Exception as exc:  # shutting down: report, carry on with the rest
                log.warning("monitor kafka admin close failed error=%s", type(exc).__name__)
            try:
                await self.client.aclose()
            except Exception as exc:
                log.warning("monitor redis close failed error=%s", type(exc).__name__)


def attach(
    app: Any, settings: Settings, *, probe: LagProbe | None = None, client: Any = None
) -> Monitor:
    """Set worker info and the tenant cap, add the leader-only sampling timer to `app`, and
    close its clients when the app shuts down (no I/O until the worker runs). `probe` and
    `client` replace the Kafka admin and Redis clients (tests); return the Monitor."""
    metrics.WORKER_INFO.info({"version": __version__, "app_id": settings.app_id})
    metrics.TENANTS.limit = settings.metrics_tenant_cap
    if client is None and settings.redis_url.startswith(CLUSTER_SCHEME):
        client = cluster_client(settings.redis_url)  # a Redis Cluster's seed nodes
    elif client is None:
        client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5.0)
    sampler = Monitor(app, settings, probe or LagProbe(settings), client)

    @app.timer(interval=settings.monitor_interval, on_leader=True)  # type: ignore[untyped-decorator]
    async def monitor() -> None:
        await sampler.sample()

    @app.on_before_shutdown.connect  # type: ignore[untyped-decorator]
    async def close_monitor(sender: Any, **kwargs: Any) -> None:
        await sampler.close()

    return sampler
