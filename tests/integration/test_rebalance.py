"""Two workers in one consumer group: partitions are shared, and when one worker is killed
(SIGKILL) mid-stream the other takes its partitions over. Every suppression comes out, none
is invented, and a re-emitted one carries the same event id."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.config import Settings
from tests.integration.conftest import WorkerProcess, free_port, read_topic
from tests.integration.test_worker import attempt

pytestmark = pytest.mark.integration
N = 120


def hard_bounces(producer: KafkaProducer, topic: str, first: int, last: int) -> None:
    """Produce hard bounces for user<first>..user<last-1>@example.com, keyed by address."""
    for n in range(first, last):
        who = f"user{n}@example.com"
        producer.send(topic, key=who.encode(), value=orjson.dumps(attempt(who)))
    producer.flush(timeout=30)


def test_killed_worker_hands_its_partitions_over_without_loss(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    first: WorkerProcess = worker_factory(settings)
    second: WorkerProcess = worker_factory(dataclasses.replace(settings, web_port=free_port()))
    hard_bounces(producer, settings.topics.attempts, 0, N // 2)
    read_topic(settings.kafka, settings.topics.suppressions, N // 2)
    first.stop(kill=True)
    hard_bounces(producer, settings.topics.attempts, N // 2, N)
    events = [
        orjson.loads(v)
        for v in read_topic(settings.kafka, settings.topics.suppressions, N, timeout=90)
    ]
    by_address: dict[str, set[str]] = {}
    for event in events:
        by_address.setdefault(event["address"], set()).add(event["event_id"])
    assert set(by_address) == {f"user{n}@example.com" for n in range(N)}, second.tail()
    # At-least-once may repeat an event after the kill, but never a second, different one.
    assert all(len(ids) == 1 for ids in by_address.values())
    assert second.proc.poll() is None, second.tail()
