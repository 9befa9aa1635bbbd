"""No suppression lost, none invented: worker crashes and Redis outages on the real servers.

A kill -9 between Redis and Kafka (and after Kafka) is in test_faults.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.config import Settings
from tests.integration.conftest import (
    WorkerProcess,
    kafka_ctl,
    read_topic,
    redis_ctl,
    send,
    wait_for,
)
from tests.integration.test_worker import attempt

pytestmark = pytest.mark.integration


def suppressed_addresses(settings: Settings, expect: int) -> list[str]:
    """Addresses of the suppression events on the test's topic."""
    out = read_topic(settings.kafka, settings.topics.suppressions, expect)
    return [orjson.loads(v)["address"] for v in out]


def _shutdown_blocked(worker: WorkerProcess) -> bool:
    """True when faust's consumer has logged that its shutdown still waits for an unacked
    message of the attempts topic (Consumer.wait_empty warns every tenth round)."""
    topic = f"topic='{worker.settings.topics.attempts}'"
    lines = worker.log.read_text(errors="replace").splitlines()
    return any("wait_empty: Waiting for tasks" in line and topic in line for line in lines)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_worker_stopped_during_a_redis_outage_loses_nothing(
    how: str, settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    first: WorkerProcess = worker_factory(settings)
    redis_ctl("stop")
    try:
        send(
            producer,
            settings.topics.attempts,
            attempt("outage@example.com"),
            key="outage@example.com",
        )
        wait_for(lambda: "retrying step=redis" in first.log.read_text(), 60, first.tail)
        if how == "sigterm":
            # faust's shutdown waits for the batch, and the batch retries Redis until it is
            # back, so the worker does not end by itself during the outage. Wait until it has
            # ended, or until faust's consumer reports it is still waiting for that very
            # message after ten rounds of committing what is acked (wait_empty, ~10 s): an
            # ack of the batch on shutdown would have been committed by then. Then kill -9,
            # as stop() does after its 30 s (the fixed 30 s cost 20 s for nothing).
            first.proc.terminate()
            wait_for(lambda: first.proc.poll() is not None or _shutdown_blocked(first), 60,
                     first.tail)  # fmt: skip
        first.stop(kill=True)
    finally:
        redis_ctl("start")
    # The batch was never counted, so it must not have been committed either: a new worker in
    # the same group reads it again and the suppression comes out exactly once.
    worker_factory(settings)
    assert suppressed_addresses(settings, 1) == ["outage@example.com"]


def test_redis_restart_keeps_counters(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    worker_factory(settings)
    dup = attempt("restart@example.com")
    send(producer, settings.topics.attempts, dup, key="restart@example.com")
    assert suppressed_addresses(settings, 1) == ["restart@example.com"]
    redis_ctl("stop")
    redis_ctl("start")
    # Re-sent after the restart: the dedupe record survived (AOF), so nothing new comes out.
    # A sentinel behind it on the same partition (same key) shows when the dup was handled.
    send(producer, settings.topics.attempts, dup, key="restart@example.com")
    send(
        producer,
        settings.topics.attempts,
        attempt("sentinel@example.com"),
        key="restart@example.com",
    )
    assert sorted(suppressed_addresses(settings, 2)) == [
        "restart@example.com",
        "sentinel@example.com",
    ]


def test_kafka_restart_loses_nothing_and_invents_nothing(
    settings: Settings, worker_factory: Any
) -> None:
    worker: WorkerProcess = worker_factory(settings)
    # A producer per broker lifetime: kafka-python leaks the socket of a connection the
    # broker dropped, which pytest (warnings are errors) would report at exit.
    for who in ("before@example.com", "after@example.com"):
        if who == "after@example.com":
            kafka_ctl("stop")
            kafka_ctl("start")  # the worker reconnects by itself
        producer = KafkaProducer(bootstrap_servers=settings.kafka, acks="all")
        try:
            send(producer, settings.topics.attempts, attempt(who), key=who)
        finally:
            producer.close(timeout=10)
        assert who in suppressed_addresses(settings, 1 if who.startswith("b") else 2)
    assert sorted(suppressed_addresses(settings, 2)) == [
        "after@example.com",
        "before@example.com",
    ], worker.tail()
    assert worker.proc.poll() is None, worker.tail()
    # The Kafka clients' reconnect errors (~60 ERROR lines a second while the broker is
    # down) come out as one line when the trouble starts and a summary now and then.
    errors = [line for line in worker.log.read_text().splitlines() if "[ERROR]" in line]
    assert len(errors) <= 3, "\n".join(errors[:20])
