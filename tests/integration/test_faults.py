"""Real faults on the real servers (issue 14, item 2): a worker killed with SIGKILL at a chosen
step of a batch (BOUNCEGUARD_FAULT_POINT, pipeline/stream/faults.py), Kafka stopped while a
batch is in its emit step, and Redis killed with SIGKILL (AOF, appendfsync always).

What is promised (README, "Guarantees"): at-least-once in, exactly-once effect; a crash
between Redis and Kafka re-emits the same event (same id); after the emitted mark, a replay
emits nothing. So: no suppression lost, none invented, and a duplicate only ever carries the
id of the event it duplicates.
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaProducer

from pipeline.config import Settings
from pipeline.state import keys
from tests.integration.conftest import (
    REDIS_PORT,
    TEST_VAR,
    WorkerProcess,
    _server,
    kafka_ctl,
    read_topic,
    send,
    wait_for,
)
from tests.integration.test_feedback import soft_bounces
from tests.integration.test_worker import attempt

pytestmark = pytest.mark.integration

HARD = [f"hard{n}@example.com" for n in range(5)]
OWN_REDIS_PORT = REDIS_PORT + 1
"""A Redis of the Redis-kill test's own, so the session's shared one is never killed."""


def events(settings: Settings, expect: int) -> list[dict[str, Any]]:
    """The suppression events on the test's topic, decoded."""
    return [
        orjson.loads(v) for v in read_topic(settings.kafka, settings.topics.suppressions, expect)
    ]


def ids_by_address(out: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Every event id seen per address."""
    ids: dict[str, set[str]] = defaultdict(set)
    for e in out:
        ids[e["address"]].add(e["event_id"])
    return dict(ids)


def send_hard_bounces(producer: KafkaProducer, settings: Settings) -> None:
    """One user-unknown hard bounce per address of HARD (each suppresses at once)."""
    for who in HARD:
        send(producer, settings.topics.attempts, attempt(who), key=who)


def killed_at(worker: WorkerProcess, point: str) -> None:
    """Wait until the armed worker reached `point` and died of its own SIGKILL."""
    wait_for(lambda: worker.proc.poll() is not None, 60, worker.tail)
    assert worker.proc.returncode == -9, worker.tail()
    assert f"fault point reached point={point}" in worker.log.read_text(), worker.tail()


def test_kill_after_redis_emits_each_suppression_once(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    """SIGKILL after the Redis write, before any send: the batch was never acked, so a fresh
    worker in the same group reads it again and the pending decisions come out, each once.

    Catches: marking the suppressions emitted before sending them (Emitter.emit with the
    `mark` step ahead of `emit`): the replay then finds them confirmed and emits nothing, a
    lost suppression. Also any replay that re-decides with a new id."""
    armed: WorkerProcess = worker_factory(settings, BOUNCEGUARD_FAULT_POINT="after_redis")
    send_hard_bounces(producer, settings)
    killed_at(armed, "after_redis")
    fresh: WorkerProcess = worker_factory(settings)
    out = events(settings, len(HARD))
    assert sorted(e["address"] for e in out) == sorted(HARD), fresh.tail()
    assert all(len(ids) == 1 for ids in ids_by_address(out).values()), out


def test_kill_after_emit_re_emits_only_the_same_event_ids(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    """SIGKILL after the events reached Kafka, before they were marked emitted: the replay
    may send them again (at-least-once), but a duplicate carries the id of the first.

    Catches: suppression event ids that are not deterministic (e.g. uuid4 in
    pipeline.core.ids): the re-emitted event then has a second, different id, and a consumer
    that drops duplicates by id would apply the suppression twice."""
    armed: WorkerProcess = worker_factory(settings, BOUNCEGUARD_FAULT_POINT="after_emit")
    send_hard_bounces(producer, settings)
    killed_at(armed, "after_emit")
    fresh: WorkerProcess = worker_factory(settings)
    out = events(settings, len(HARD) + 1)
    ids = ids_by_address(out)
    assert sorted(ids) == sorted(HARD), fresh.tail()
    assert all(len(one) == 1 for one in ids.values()), ids
    # The batch the worker died in was sent before the crash and never acked, so it was
    # re-emitted: without a duplicate this test would not have exercised the replay.
    assert len(out) > len(HARD), out


def fcall_blocked(client: redis.Redis) -> bool:
    """True when some client (the worker) waits in a paused FCALL: a batch is held in step 2."""
    return any("b" in c["flags"] and c["cmd"] == "fcall" for c in client.client_list())


def decided_in_redis(client: redis.Redis, settings: Settings) -> bool:
    """True when the Redis step recorded a suppression for every address of HARD."""
    docs = [keys.read_doc(client.get(keys.state(settings.namespace, a, "acme"))) for a in HARD]
    return all("s" in doc.fields for doc in docs)


def test_kafka_down_in_the_emit_step_loses_nothing(
    settings: Settings, worker_factory: Any, redis_client: redis.Redis
) -> None:
    """Kafka stopped while a batch is between its Redis write and its sends: the worker rides
    the outage out by itself (aiokafka keeps the records and retries the produce requests; a
    timeout would reach retry_transient) and once the broker is back every suppression comes
    out, one id per address, with no restart of the worker.

    Catches: a worker that dies or wedges when the broker goes away in the middle of a batch
    (the process must still run and the batch finish without a restart).
    Does not catch an emit step that gives up and acks while the records are still buffered:
    aiokafka delivers them anyway once Kafka is back; test_kill_after_redis_... covers the
    emitted mark written ahead of the send."""
    worker: WorkerProcess = worker_factory(settings)
    # Hold the batch before its Redis write (CLIENT PAUSE WRITE blocks FCALL), stop Kafka
    # under it, then let it go: the Redis step succeeds and the emit step meets no broker.
    redis_client.client_pause(60_000, all=False)
    try:
        # A producer of its own, closed before the broker goes (see test_crash.py). One
        # message holding every attempt, so that they are one batch.
        producer = KafkaProducer(bootstrap_servers=settings.kafka, acks="all")
        try:
            send(producer, settings.topics.attempts, orjson.dumps([attempt(a) for a in HARD]))
        finally:
            producer.close(timeout=10)
        wait_for(lambda: fcall_blocked(redis_client), 30, worker.tail)
        kafka_ctl("stop")
        redis_client.client_unpause()
        wait_for(lambda: decided_in_redis(redis_client, settings), 30, worker.tail)
        # The decisions are in Redis, so the emit step runs now, against no broker. Keep
        # Kafka down a while (its client errors are summarised by pipeline.stream.logfilters,
        # so no produce-error line can be waited for).
        time.sleep(5)
    finally:
        redis_client.client_unpause()
        kafka_ctl("start")
    out = events(settings, len(HARD))
    ids = ids_by_address(out)
    assert sorted(ids) == sorted(HARD), worker.tail()
    assert all(len(one) == 1 for one in ids.values()), ids
    assert worker.proc.poll() is None, worker.tail()


def own_redis_ctl(action: str) -> None:
    """start, stop or kill (SIGKILL) the Redis of test_redis_kill_... (deploy/redis.sh)."""
    _server("redis.sh", action, {"REDIS_PORT": str(OWN_REDIS_PORT)})


@pytest.fixture
def own_redis() -> Iterator[redis.Redis]:
    """A fresh Redis on OWN_REDIS_PORT started by deploy/redis.sh (AOF, appendfsync always)."""
    data = TEST_VAR / f"redis-{OWN_REDIS_PORT}"
    own_redis_ctl("stop")
    shutil.rmtree(data, ignore_errors=True)
    own_redis_ctl("start")
    client = redis.Redis(host="127.0.0.1", port=OWN_REDIS_PORT)
    try:
        yield client
    finally:
        client.close()
        own_redis_ctl("stop")
        shutil.rmtree(data, ignore_errors=True)


def test_redis_kill_with_appendfsync_always_loses_no_count_and_doubles_nothing(
    settings: Settings, worker_factory: Any, producer: KafkaProducer, own_redis: redis.Redis
) -> None:
    """SIGKILL of Redis after a batch was counted, then a re-ship of part of it plus the
    attempts that complete a count: the suppression that needs the counts from before the
    kill comes out, and nothing suppressed before the kill comes out again.

    Catches: Redis run without a durable AOF (e.g. `--appendonly no` in deploy/redis.sh):
    the kill then forgets the counts (the soft-bounce run restarts, no suppression) and the
    replay guard (the re-shipped hard bounce is suppressed a second time)."""
    config = own_redis.config_get("append*")
    assert (config["appendonly"], config["appendfsync"]) == ("yes", "always")
    settings = replace(settings, redis_url=f"redis://127.0.0.1:{OWN_REDIS_PORT}/0")
    worker: WorkerProcess = worker_factory(settings)
    soft = soft_bounces("soft@example.com", 10)
    first, again = attempt("hard0@example.com"), attempt("hard1@example.com")
    # One key for all: one partition, in order, so a sentinel's suppression shows that every
    # attempt before it was counted.
    for doc in [*soft[:9], first]:
        send(producer, settings.topics.attempts, doc, key="reship")
    assert [e["address"] for e in events(settings, 1)] == ["hard0@example.com"], worker.tail()
    own_redis_ctl("kill")
    own_redis_ctl("start")
    # The re-ship: the tail of the soft run and the hard bounce again (same event ids), then
    # the tenth soft bounce and a new sentinel.
    for doc in [*soft[4:9], first, soft[9], again]:
        send(producer, settings.topics.attempts, doc, key="reship")
    out = events(settings, 3)
    assert sorted((e["address"], e["rule"], e["count"]) for e in out) == [
        ("hard0@example.com", "immediate_hard", 1),
        ("hard1@example.com", "immediate_hard", 1),
        ("soft@example.com", "consecutive_soft", 10),
    ], worker.tail()
    assert worker.proc.poll() is None, worker.tail()
