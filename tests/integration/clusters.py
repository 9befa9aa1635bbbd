"""The real clusters of the integration tests, and what their fault tests share.

- The Redis Cluster (deploy/redis-cluster.sh: 3 primaries + 3 replicas on
  BG_TEST_REDIS_CLUSTER_PORT..+5): its nodes, slot owners, a slot move done the way
  `redis-cli --cluster reshard` does it, and a primary killed and later revived.
- The 3-broker Kafka cluster (deploy/kafka-cluster.sh on BG_TEST_KAFKA_CLUSTER_PORT..+5): a
  broker killed, and how many brokers the metadata lists.
- Streams of known outcome fed to several workers: producing them in parts, and the checks
  every fault test makes (the suppressions equal the expected set, one event id per address,
  nothing dead-lettered, every worker alive and healthy).

The fixtures that start the clusters are in conftest.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from tests.integration.conftest import (
    KAFKA_CLUSTER_PORT,
    REDIS_CLUSTER_PORT,
    TEST_VAR,
    WorkerProcess,
    _healthy,
    read_topic,
    wait_for,
)

# --- Redis Cluster ----------------------------------------------------------------------------

REDIS_PORTS = [REDIS_CLUSTER_PORT + i for i in range(6)]


def node(port: int) -> redis.Redis:
    """A sync client on one node of the Redis Cluster."""
    return redis.Redis(host="127.0.0.1", port=port)


def primaries(via: int | None = None) -> dict[str, tuple[int, list[tuple[int, int]]]]:
    """node id -> (port, slot ranges) of every primary serving slots, from CLUSTER NODES
    asked of the node on `via` (default: the first node alive)."""
    out: dict[str, tuple[int, list[tuple[int, int]]]] = {}
    view: dict[str, Any] = node(via or alive_port()).execute_command("CLUSTER NODES")  # type: ignore[no-untyped-call]
    for address, info in view.items():
        # slotless "masters" are replicas a fresh cluster has not told this node about yet
        if "master" not in info["flags"] or "fail" in info["flags"] or not info["slots"]:
            continue
        ranges = [(int(r[0]), int(r[-1])) for r in info["slots"]]
        out[info["node_id"]] = (int(address.split("@")[0].rsplit(":", 1)[1]), ranges)
    return out


def alive_port() -> int:
    """The first node of the Redis Cluster that answers PING."""
    for port in REDIS_PORTS:
        try:
            if node(port).ping():
                return port
        except redis.ConnectionError:
            continue
    raise AssertionError("no node of the redis cluster answers")


def owner(slot: int) -> tuple[str, int]:
    """(node id, port) of the primary that serves `slot`."""
    for node_id, (port, ranges) in primaries().items():
        if any(lo <= slot <= hi for lo, hi in ranges):
            return node_id, port
    raise AssertionError(f"slot {slot} has no owner")


def slot_of(key: str) -> int:
    """The hash slot of `key`."""
    return int(node(alive_port()).execute_command("CLUSTER KEYSLOT", key))  # type: ignore[no-untyped-call]


class SlotMove:
    """Move one slot to another primary, in the order of redis/docs "live resharding"
    (research §8) and of `redis-cli --cluster reshard`: IMPORTING on the target, MIGRATING
    on the source, MIGRATE the keys, then SETSLOT NODE on the target, the source and the
    other primaries."""

    def __init__(self, slot: int, to_port: int | None = None) -> None:
        self.slot = slot
        self.src, self.src_port = owner(slot)
        others = [(i, p) for i, (p, _) in primaries().items() if i != self.src]
        self.dst, self.dst_port = next((o for o in others if o[1] == to_port), others[0])

    def begin(self) -> int:
        """Open the migration and move every key of the slot (the slot stays MIGRATING);
        return how many keys moved."""
        src, dst = node(self.src_port), node(self.dst_port)
        moved = 0
        dst.execute_command("CLUSTER SETSLOT", self.slot, "IMPORTING", self.src)  # type: ignore[no-untyped-call]
        src.execute_command("CLUSTER SETSLOT", self.slot, "MIGRATING", self.dst)  # type: ignore[no-untyped-call]
        while True:
            found = src.execute_command("CLUSTER GETKEYSINSLOT", self.slot, 100)  # type: ignore[no-untyped-call]
            if not found:
                return moved
            moved += len(found)
            src.execute_command(  # type: ignore[no-untyped-call]
                "MIGRATE", "127.0.0.1", self.dst_port, "", 0, 5000, "KEYS", *found
            )

    def finish(self) -> None:
        """Give the slot to the target on every primary (the move is over)."""
        node(self.dst_port).execute_command("CLUSTER SETSLOT", self.slot, "NODE", self.dst)  # type: ignore[no-untyped-call]
        node(self.src_port).execute_command("CLUSTER SETSLOT", self.slot, "NODE", self.dst)  # type: ignore[no-untyped-call]
        for node_id, (port, _) in primaries().items():
            if node_id not in (self.src, self.dst):
                node(port).execute_command("CLUSTER SETSLOT", self.slot, "NODE", self.dst)  # type: ignore[no-untyped-call]


def cluster_ok(ports: Sequence[int]) -> bool:
    """True when every node on `ports` answers `cluster_state:ok`."""
    try:
        return all(node(p).execute_command("CLUSTER INFO")["cluster_state"] == "ok" for p in ports)  # type: ignore[no-untyped-call]
    except redis.ConnectionError:
        return False


def replica_of(primary_port: int) -> int:
    """The port of a replica of the primary on `primary_port`."""
    info = node(primary_port).info("replication")
    return int(info["slave0"]["port"])


def kill_redis(port: int) -> None:
    """kill -9 the Redis node on `port` (its pid file is written by deploy/redis-cluster.sh)
    and wait until the process is gone."""
    pid = int((TEST_VAR / f"redis-cluster-{port}" / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _alive(pid), 10)


def _alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie (a zombie has let go of its port
    and files, and PID 1 may take a second or two to reap it; deploy/lib.sh `running`)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def promoted(replica_port: int, others: Sequence[int]) -> bool:
    """True when the node on `replica_port` is a primary and the nodes on `others` (and it)
    say the cluster is ok again."""
    try:
        role = node(replica_port).info("replication")["role"]
    except redis.ConnectionError:
        return False
    return role == "master" and cluster_ok([replica_port, *others])


# --- Kafka cluster ----------------------------------------------------------------------------

# Node n (1..3) serves clients on BASE + 2(n-1); its controller listens on the port above.
BROKER_PORTS = {n: KAFKA_CLUSTER_PORT + 2 * (n - 1) for n in (1, 2, 3)}
BOOTSTRAP = ",".join(f"127.0.0.1:{p}" for p in BROKER_PORTS.values())


def kill_broker(node_id: int) -> str:
    """kill -9 the JVM of broker `node_id` (its pid file is written by deploy/kafka-cluster.sh);
    return the bootstrap servers of the brokers left."""
    pid = int((TEST_VAR / f"kafka-cluster-{BROKER_PORTS[node_id]}" / "kafka.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    return ",".join(f"127.0.0.1:{p}" for n, p in BROKER_PORTS.items() if n != node_id)


def brokers_listed(bootstrap: str) -> int:
    """How many brokers the cluster's metadata lists, asked with kcat (not kafka-python: its
    metadata would point it at a dead broker, see `produce`); 0 when none answers."""
    out = subprocess.run(
        ["kcat", "-b", bootstrap, "-L", "-m", "3"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"^ *(\d+) brokers:", out, re.MULTILINE)
    return int(found.group(1)) if found else 0


# --- streams of known outcome -----------------------------------------------------------------

Message = tuple[str, dict[str, Any]]
"""One input message: its key (the recipient) and its value (an attempt)."""


def address(n: int) -> str:
    """Recipient n of a stream, on a domain of its own: the provider-outage guard (issue 12)
    holds the suppressions of a provider group whose hard bounces jump within minutes, and
    a stream of hundreds of hard bounces to one domain at one time is just that."""
    return f"user{n}@d{n}.example.com"


def produce(bootstrap: str, topic: str, messages: Sequence[Message]) -> None:
    """Produce `messages` in order (acks=all, one request in flight: a retried send never
    overtakes the next one of its partition) and wait for every ack.

    A producer per call, and after a broker kill only on the brokers left: kafka-python 3.0
    leaks the socket of a refused connection, which pytest (warnings are errors) reports."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_in_flight_requests_per_connection=1,
    )
    try:
        for key, value in messages:
            producer.send(topic, key=key.encode(), value=orjson.dumps(value))
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)


@dataclass(frozen=True)
class Decided:
    """A suppression event as the checks compare it."""

    address: str
    rule: str
    count: int
    event_id: str


def decided(raw: Sequence[bytes | str]) -> list[Decided]:
    """The suppression events of `raw` (JSON lines or Kafka values)."""
    events = [orjson.loads(x) for x in raw if x]
    return [Decided(e["address"], e["rule"], e["count"], e["event_id"]) for e in events]


def group_ready(bootstrap: str, group: str, members: int) -> bool:
    """True when consumer group `group` is Stable with `members` members (every worker has
    its partitions: a stream produced now is not cut by the group's first rebalances)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        info: dict[str, Any] = admin.describe_groups([group])[group]
    except KafkaError as exc:
        if not exc.retriable:
            raise
        # A cluster just started may have no coordinator for the group yet (seen in CI:
        # CoordinatorNotAvailable on the module's first test): not ready, ask again.
        return False
    finally:
        admin.close()
    return bool(info["group_state"] == "Stable" and len(info["members"]) == members)


def check_outcome(
    kafka: str,
    suppressions_topic: str,
    deadletter_topic: str,
    expected: set[str] | set[Decided],
    workers: Sequence[WorkerProcess],
    timeout: float = 75,
    explain: Callable[[set[str]], str] = lambda missing: "",
) -> list[Decided]:
    """Read the suppression events until the expected count is in, then assert what every
    fault test promises: the suppressions equal `expected` exactly (a set of addresses, or
    of whole events: address, rule, count, event id), no address has two different event
    ids (at-least-once may repeat an event, never decide twice), nothing is dead-lettered,
    and every worker of `workers` is alive and answers /health. `explain` tells more of the
    addresses missing, for the failure message. Returns the events read."""
    events = decided(read_topic(kafka, suppressions_topic, len(expected), timeout))
    tails = "\n---\n".join(w.tail() for w in workers)
    by_address: dict[str, set[str]] = {}
    for event in events:
        by_address.setdefault(event.address, set()).add(event.event_id)
    got: set[Any] = set(by_address) if all(isinstance(x, str) for x in expected) else set(events)
    if got != expected:
        missing = {x if isinstance(x, str) else x.address for x in expected - got}
        more = explain(missing)
        raise AssertionError(f"missing {expected - got}, extra {got - expected}\n{more}\n{tails}")
    assert all(len(ids) == 1 for ids in by_address.values()), tails
    assert read_topic(kafka, deadletter_topic, 0) == []
    for worker in workers:  # each carried on by itself: alive and answering /health
        assert worker.proc.poll() is None, worker.tail()
        wait_for(lambda w=worker: _healthy(w.settings.web_port), 10, worker.tail)
    return events


def since(start: float) -> float:
    """Seconds since `start` (time.monotonic)."""
    return time.monotonic() - start
