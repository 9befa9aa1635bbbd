"""Two workers on a real 3-broker Kafka cluster (deploy/kafka-cluster.sh), one broker killed.

The worker's topics are created with replication factor 3 and min.insync.replicas=2, and it
produces with acks=all, so a broker lost mid-stream loses no acknowledged event: its
partitions get new leaders on the two brokers left, and the workers carry on by themselves.
Every suppression comes out, none is invented, none twice with different ids, and no good
input is dead-lettered (issue 10, item 4c).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from pipeline.config import Settings
from tests.integration.clusters import (
    BOOTSTRAP,
    Message,
    address,
    brokers_listed,
    check_outcome,
    kill_broker,
    produce,
)
from tests.integration.conftest import (
    WorkerProcess,
    free_port,
    isolated_settings,
    read_topic,
    wait_for,
)
from tests.integration.test_worker import attempt

pytestmark = pytest.mark.integration

PARTITIONS = 6  # two leaders per broker, so the killed broker leads partitions of every topic
# Addresses user0..user<N-1>: even ones hard-bounce (suppressed), odd ones are delivered (not).
# They come in three parts: before the kill, in flight at the kill, and after the kill.
N = 300
PARTS = [(0, N // 3), (N // 3, 2 * N // 3), (2 * N // 3, N)]


@pytest.fixture
def cluster_settings(kafka_cluster: str, redis_server: str) -> Settings:
    """Settings for one test on the cluster: own topics (RF 3), group and Redis namespace."""
    return isolated_settings(
        kafka_cluster, redis_server, app="kc", ns="kc", partitions=PARTITIONS, replication=3
    )


def stream(first: int, last: int) -> list[Message]:
    """user<first>..user<last-1>: even ones hard-bounce, odd ones are delivered."""
    out = []
    for n in range(first, last):
        who = address(n)
        out.append((who, attempt(who) if n % 2 == 0 else delivered(who)))
    return out


def delivered(who: str) -> dict[str, Any]:
    """A successful delivery to `who`."""
    return attempt(who, "delivered", smtp_code=250, enhanced_code="2.0.0", diagnostic="250 OK")


def describe(topics: list[str]) -> list[dict[str, Any]]:
    """The cluster's metadata for `topics` (partitions, leaders, replicas)."""
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        found: list[dict[str, Any]] = admin.describe_topics(topics)
        return found
    finally:
        admin.close()


def min_insync(topics: list[str]) -> set[str]:
    """The min.insync.replicas values of `topics`."""
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        res = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        found = admin.describe_configs(res)["topic"]
        return {found[t]["min.insync.replicas"]["value"] for t in topics}
    finally:
        admin.close()


def busiest_leader(topics: list[str]) -> int:
    """The node id that leads the most partitions of `topics`."""
    leaders = Counter(p["leader_id"] for t in describe(topics) for p in t["partitions"])
    return leaders.most_common(1)[0][0]


def replica_counts(topics: list[str]) -> dict[str, set[int]]:
    """Topic name -> the replica counts of its partitions (empty while it does not exist)."""
    return {t["name"]: {len(p["replica_nodes"]) for p in t["partitions"]} for t in describe(topics)}


def test_topics_are_replicated_on_three_brokers(
    cluster_settings: Settings, worker_factory: Any
) -> None:
    worker_factory(cluster_settings)
    # the worker's topics, faust's leader topic and the group offsets (made at the first join)
    topics = [
        *cluster_settings.topics.all(),
        f"{cluster_settings.app_id}-__assignor-__leader",
        "__consumer_offsets",
    ]
    expected = {name: {3} for name in topics}
    wait_for(lambda: replica_counts(topics) == expected, 30, lambda: str(replica_counts(topics)))
    assert min_insync(cluster_settings.topics.all()) == {"2"}


def test_broker_killed_mid_stream_loses_nothing_and_invents_nothing(
    cluster_settings: Settings, worker_factory: Any
) -> None:
    settings, topics = cluster_settings, cluster_settings.topics
    workers: list[WorkerProcess] = [
        worker_factory(settings),
        worker_factory(dataclasses.replace(settings, web_port=free_port())),
    ]
    produce(BOOTSTRAP, topics.attempts, stream(*PARTS[0]))
    read_topic(BOOTSTRAP, topics.suppressions, len(range(*PARTS[0], 2)))  # part 1 is through
    victim = busiest_leader([topics.attempts, topics.suppressions])
    produce(BOOTSTRAP, topics.attempts, stream(*PARTS[1]))
    killed_at = time.monotonic()
    left = kill_broker(victim)  # while the workers are busy with part 2
    # New leaders take over once the controller fences the dead broker (6 s without heartbeat)
    wait_for(lambda: brokers_listed(left) == 2, 30)
    fenced_in = time.monotonic() - killed_at
    produce(left, topics.attempts, stream(*PARTS[2]))  # acks=all: the two brokers left take it
    expected = {address(n) for n in range(0, N, 2)}
    # At-least-once may repeat an event after the kill, but never a second, different one.
    check_outcome(left, topics.suppressions, topics.deadletter(topics.attempts), expected, workers)
    recovered_in = time.monotonic() - killed_at
    print(
        f"broker {victim} killed: fenced after {fenced_in:.1f} s, "
        f"every suppression out {recovered_in:.1f} s after the kill"
    )
