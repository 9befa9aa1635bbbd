"""Real faults on the real servers (issue 14, item 2): a worker killed with SIGKILL at a chosen
step of a batch (BOUNCEGUARD_FAULT_POINT, pipeline/stream/faults.py), Kafka stopped while a
batch is in its emit step, and Redis killed with SIGKILL (AOF, appendfsync always).

What is promised (README, "Guarantees"): at-least-once in, exactly-once effect; a crash
between Redis and Kafka re-emits the same event (same id); after the emitted mark, a replay
emits nothing. So: no suppression lost, none invented, and a duplicate only ever carries the
id of the event it duplicates.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaProducer

from pipeline.config import Settings
from pipeline.state import keys
from tests.integration.conftest import WorkerProcess, kafka_ctl, read_topic, send, wait_for
from tests.integration.test_worker import attempt

pytestmark = pytest.mark.integration

HARD = [f"hard{n}@example.com" for n in range(5)]


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
    """Kafka stopped while a batch is between its Redis write and its sends: the emit step
    waits (aiokafka retries the produce requests; retry_transient would catch a timeout)
    until the broker is back, and every suppression comes out, one id per address.

    Catches: an emit step that gives up on a Kafka error (logs it and returns, or treats it as
    permanent) while the loop acks the batch anyway: the suppressions are then counted and
    pending in Redis but never sent, and nothing reads the batch again."""
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
        wait_for(lambda: "Got error produce response" in worker.log.read_text(), 30, worker.tail)
    finally:
        redis_client.client_unpause()
        kafka_ctl("start")
    out = events(settings, len(HARD))
    ids = ids_by_address(out)
    assert sorted(ids) == sorted(HARD), worker.tail()
    assert all(len(one) == 1 for one in ids.values()), ids
    assert worker.proc.poll() is None, worker.tail()
