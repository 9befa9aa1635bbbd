"""Two workers on both real clusters (3 Redis primaries + 3 replicas, 3 Kafka brokers) while,
in separate tests, (a) a Redis primary is killed with kill -9 and its replica promoted, (b)
slots move between primaries as `redis-cli --cluster reshard` moves them, (d) a worker is
killed with kill -9 (issue 10, item 4; (c), a broker killed, is test_cluster_kafka.py).

The stream's outcome is known twice over: by construction (which addresses must be
suppressed), and event for event (rule, count, event id) from `bounceguard replay` of the
same input into the single test Redis. Its addresses get their events in three parts (before
the fault, in flight at it, after it), many of them in every part, so a decision in the
last part needs the state the first parts left where the fault struck:
- `hard`: one hard bounce (suppressed at once), in one of the parts;
- `ok`: one delivery (never suppressed), in one of the parts;
- `counted`: 10 soft bounces, 3 + 3 + 4 (suppressed at the 10th, in part 3: a lost or a
  doubled count moves the decision to another event, so another event id, or none);
- `reset`: 5 soft bounces, a delivery, 5 more (never suppressed: a lost or reordered delivery
  would suppress at the 10th).
Each time: the suppressions equal the expected ones exactly, no address has two different
event ids, nothing is dead-lettered, and the workers carry on by themselves.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.cluster import RedisCluster

from pipeline.cli import main
from pipeline.config import Settings
from pipeline.state import keys
from tests.integration.clusters import (
    REDIS_PORTS,
    Decided,
    Message,
    SlotMove,
    address,
    alive_port,
    check_outcome,
    decided,
    group_ready,
    kill_redis,
    owner,
    primaries,
    produce,
    promoted,
    replica_of,
    since,
    slot_of,
)
from tests.integration.conftest import (
    WorkerProcess,
    free_port,
    isolated_settings,
    read_topic,
    redis_cluster_ctl,
    wait_for,
)
from tests.integration.test_worker import attempt

pytestmark = pytest.mark.integration

PARTITIONS = 6
N = 240  # addresses user0..user239; kind n % 4: hard, ok, counted, reset
KINDS = ("hard", "ok", "counted", "reset")
SOFT = {"smtp_code": 452, "enhanced_code": "4.2.2", "diagnostic": "452 4.2.2 mailbox full"}
OK = {"smtp_code": 250, "enhanced_code": "2.0.0", "diagnostic": "250 OK"}


def who(n: int) -> str:
    return address(n)


def kind(n: int) -> str:
    return KINDS[n % 4]


def _events(n: int) -> list[list[dict[str, Any]]]:
    """Address n's attempts in the three parts (one minute apart, one campaign each)."""
    seq = iter(range(20))

    def one(outcome: str, fields: dict[str, Any]) -> dict[str, Any]:
        i = next(seq)
        ts = f"2026-03-02T09:{i:02d}:00Z"
        return attempt(who(n), outcome, ts=ts, campaign_id=f"c{i}", **fields)

    def soft(k: int) -> list[dict[str, Any]]:
        return [one("deferred", SOFT) for _ in range(k)]

    if kind(n) in ("hard", "ok"):
        single = one("bounced", {}) if kind(n) == "hard" else one("delivered", OK)
        return [[single] if part == n // 4 % 3 else [] for part in range(3)]
    if kind(n) == "counted":
        return [soft(3), soft(3), soft(4)]
    return [soft(5), [one("delivered", OK), *soft(2)], soft(3)]


@dataclasses.dataclass
class Known:
    """A stream of known outcome: its three parts and the suppressions it must give."""

    parts: list[list[Message]]
    suppressed: set[str]
    events: set[Decided]
    in_part_1: int  # suppressions that part 1 alone gives


@pytest.fixture
def known(redis_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Known:
    """The stream, and its suppressions as `bounceguard replay` into one Redis prints them."""
    per_address = [_events(n) for n in range(N)]
    parts = [[(who(n), e) for n in range(N) for e in per_address[n][p]] for p in range(3)]
    file = tmp_path / "stream.jsonl"
    file.write_bytes(b"".join(orjson.dumps(v) + b"\n" for part in parts for _, v in part))
    namespace = f"cfx{uuid.uuid4().hex[:8]}"
    argv = ["replay", "--policy", "default", "--redis", redis_server, "--namespace", namespace]
    assert main([*argv, str(file)]) == 0
    events = set(decided(capsys.readouterr().out.splitlines()))
    suppressed = {who(n) for n in range(N) if kind(n) in ("hard", "counted")}
    assert {e.address for e in events} == suppressed and len(events) == len(suppressed)
    counted = {who(n) for n in range(N) if kind(n) == "counted"}
    assert {e.count for e in events if e.address in counted} == {10}
    first = sum(1 for n in range(N) if kind(n) == "hard" and n // 4 % 3 == 0)
    return Known(parts, suppressed, events, first)


@pytest.fixture
def fault_settings(kafka_cluster: str, redis_cluster: str) -> Settings:
    """Settings for one test on both clusters: own topics (RF 3), group and namespace."""
    return isolated_settings(
        kafka_cluster, redis_cluster, app="cf", ns="cf", partitions=PARTITIONS, replication=3
    )


def two_workers(factory: Callable[..., WorkerProcess], settings: Settings) -> list[WorkerProcess]:
    """Two workers of one group, once the group is stable with both."""
    workers = [factory(settings), factory(dataclasses.replace(settings, web_port=free_port()))]
    wait_for(lambda: group_ready(settings.kafka, settings.app_id, 2), 30, workers[0].tail)
    return workers


def state_docs(settings: Settings, addresses: set[str]) -> str:
    """The tenant state documents of `addresses` on the Redis Cluster (failure messages)."""
    client = RedisCluster(host="127.0.0.1", port=alive_port())
    try:
        docs = {a: client.get(keys.state(settings.namespace, a, "acme")) for a in sorted(addresses)}
    finally:
        client.close()
    return "\n".join(f"{a}: {d!r}" for a, d in docs.items())


def run_through_fault(
    settings: Settings, known: Known, workers: list[WorkerProcess], fault: Callable[[], None]
) -> float:
    """Part 1 through, part 2 produced, `fault()`, part 3 produced; then check the outcome
    with the workers still alive (`workers`). Returns seconds from the fault to the last
    suppression out."""
    topics = settings.topics
    produce(settings.kafka, topics.attempts, known.parts[0])
    first = read_topic(settings.kafka, topics.suppressions, known.in_part_1, 30)
    assert len(first) >= known.in_part_1, "\n---\n".join(w.tail() for w in workers)
    produce(settings.kafka, topics.attempts, known.parts[1])
    started = time.monotonic()
    fault()  # while the workers are busy with part 2 (how far they are is not controlled)
    produce(settings.kafka, topics.attempts, known.parts[2])
    dead = topics.deadletter(topics.attempts)
    explain = functools.partial(state_docs, settings)
    check_outcome(settings.kafka, topics.suppressions, dead, known.events, workers, explain=explain)
    return since(started)


def key_of(settings: Settings, n: int) -> str:
    return f"{settings.namespace}:{{{who(n)}}}"


def test_a_primary_killed_and_its_replica_promoted_mid_stream(
    fault_settings: Settings, known: Known, worker_factory: Any
) -> None:
    settings = fault_settings
    workers = two_workers(worker_factory, settings)
    # the primary of the first `counted` address: its state of parts 1-2 must survive
    victim = owner(slot_of(key_of(settings, 2)))[1]
    held = [
        n
        for n in range(N)
        if kind(n) == "counted" and owner(slot_of(key_of(settings, n)))[1] == victim
    ]
    replica = replica_of(victim)
    others = [p for p in REDIS_PORTS if p not in (victim, replica)]
    promoted_in: list[float] = []

    def watch(started: float) -> None:  # how long the cluster takes to promote the replica
        deadline = started + 30
        while not promoted(replica, others) and time.monotonic() < deadline:
            time.sleep(0.1)
        promoted_in.append(since(started))

    watcher = threading.Thread(target=watch, args=(time.monotonic(),))

    def kill_primary() -> None:
        kill_redis(victim)
        watcher.start()

    try:
        out_in = run_through_fault(settings, known, workers, kill_primary)
    finally:
        if watcher.ident is not None:  # started
            watcher.join()
        redis_cluster_ctl("start-node", str(victim))  # back, as a replica of its successor
    assert len(held) > 5  # a third of the counted addresses lived on the killed primary
    assert promoted(replica, others) and owner(slot_of(key_of(settings, 2)))[1] == replica
    print(
        f"primary {victim} killed: replica {replica} promoted after {promoted_in[0]:.1f} s, "
        f"every suppression out {out_in:.1f} s after the kill"
    )


def test_slots_moved_between_primaries_mid_stream(
    fault_settings: Settings, known: Known, worker_factory: Any
) -> None:
    settings = fault_settings
    workers = two_workers(worker_factory, settings)
    src = owner(slot_of(key_of(settings, 2)))[1]
    dst = next(p for p, _ in primaries().values() if p != src)
    slots = sorted({slot_of(key_of(settings, n)) for n in range(N)} & set(_slots_of(src)))
    moved_keys: list[int] = []
    errors: list[BaseException] = []

    def reshard() -> None:  # slot by slot, as redis-cli --cluster reshard; some left MIGRATING
        try:
            for i, slot in enumerate(slots):
                move = SlotMove(slot, to_port=dst)
                moved_keys.append(move.begin())
                time.sleep(0.2 if i % 8 == 0 else 0.01)
                move.finish()
        except BaseException as exc:  # re-raised in the test
            errors.append(exc)

    mover = threading.Thread(target=reshard)
    try:
        out_in = run_through_fault(settings, known, workers, mover.start)
    finally:
        mover.join()
    assert not errors, errors
    assert len(slots) > 50 and all(owner(s)[1] == dst for s in slots)
    assert sum(moved_keys) > 0  # state moved with its slots, and later parts needed it
    print(
        f"{len(slots)} slots ({sum(moved_keys)} keys) moved: all out {out_in:.1f} s after the first"
    )


def _slots_of(port: int) -> list[int]:
    [ranges] = [r for p, r in primaries().values() if p == port]
    return [s for lo, hi in ranges for s in range(lo, hi + 1)]


def test_a_worker_killed_mid_stream(
    fault_settings: Settings, known: Known, worker_factory: Any
) -> None:
    settings = fault_settings
    victim, survivor = two_workers(worker_factory, settings)
    # the survivor takes the victim's partitions once the group's session times out (6 s)
    out_in = run_through_fault(settings, known, [survivor], lambda: victim.stop(kill=True))
    assert victim.proc.returncode == -9
    print(f"worker killed: every suppression out {out_in:.1f} s after the kill")
