"""Kafka chores of the benchmark, outside the measured processes: create topics, produce the
data sets, read offsets, read a topic back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition as AioTopicPartition
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

from bench.common import KAFKA, PARTITIONS

Message = tuple[bytes | None, bytes, int | None]
"""(key, value, partition): partition None lets the key pick it."""


def create_topics(names: Sequence[str]) -> None:
    """Create `names` with PARTITIONS partitions each (the broker auto-creates nothing)."""
    admin = KafkaAdminClient(bootstrap_servers=KAFKA, client_id="bench-admin")
    try:
        admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names], timeout_ms=30_000)
    finally:
        admin.close()


def produce(topic: str, messages: Sequence[Message], bootstrap: str = KAFKA) -> float:
    """Send every message (acks=1, linger, big batches) and wait until all are acked; return
    the seconds it took. Raises RuntimeError if any send failed."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=2 * 1024 * 1024,
    )
    try:
        start = time.perf_counter()
        futures = [producer.send(topic, key=k, value=v, partition=p) for k, v, p in messages]
        producer.flush(timeout=180)
        elapsed = time.perf_counter() - start
    finally:
        producer.close(timeout=10)
    failed = [f for f in futures if f.failed()]
    if failed:
        raise RuntimeError(f"{len(failed)} sends failed, first: {failed[0].exception!r}")
    return elapsed


def end_offsets(topic: str, bootstrap: str = KAFKA) -> dict[tuple[str, int], int]:
    """The end offset of every partition of `topic`, keyed by (topic, partition)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends: dict[TopicPartition, int] = consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}
    finally:
        consumer.close()


def count(topic: str, bootstrap: str = KAFKA) -> int:
    """Records in `topic` (the topics here are never compacted or trimmed)."""
    return sum(end_offsets(topic, bootstrap).values())


class GroupOffsets:
    """Reads a consumer group's committed offsets (an admin client kept open for polling)."""

    def __init__(self, bootstrap: str = KAFKA) -> None:
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-poll")

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        """(topic, partition) -> committed offset; empty before the group's first commit."""
        try:
            offsets = self._admin.list_group_offsets(group).get(group, {})
        except KafkaError:  # group or coordinator not there yet
            return {}
        return {(tp.topic, tp.partition): max(om.offset, 0) for tp, om in offsets.items()}

    def close(self) -> None:
        """Close the admin client."""
        self._admin.close()


async def _read(topic: str, expect: int, bootstrap: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, client_id="bench-read"
    )
    await consumer.start()
    try:
        tps = [AioTopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        values: list[Any] = []
        deadline = time.perf_counter() + 60
        while len(values) < expect:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                values.extend(orjson.loads(r.value) for r in records)
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{topic}: read {len(values)} of {expect} records in 60 s")
        return values
    finally:
        await consumer.stop()


def read_json(topic: str, bootstrap: str = KAFKA) -> list[Any]:
    """Every record of `topic` from the beginning, orjson-decoded."""
    return asyncio.run(_read(topic, count(topic, bootstrap), bootstrap))
