"""The worker and `bounceguard replay` decide identically (issue 9): the same attempts, once
through Kafka in arrays of whatever size the partitions give, once through `replay` in
batches of 5,000, trip the same suppressions with the same ids. Bench data: real reply
texts, soft runs across campaigns, hard bounces, blocks, deliveries between them."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from bench.worker_data import generate
from pipeline.cli import main
from pipeline.config import Settings
from pipeline.stream.shipper import PartitionBatcher, partition_for
from tests.integration.conftest import read_topic

pytestmark = pytest.mark.integration


def decided(events: list[dict[str, Any]]) -> set[tuple[str, str, str, int, str]]:
    return {(e["address"], e["tenant"], e["rule"], e["count"], e["event_id"]) for e in events}


def test_worker_and_replay_trip_the_same_suppressions(
    settings: Settings,
    worker_factory: Any,
    producer: KafkaProducer,
    redis_server: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = generate(6000, addresses=900, seed=11)
    values = [v for _, v in data.messages]
    file = tmp_path / "attempts.jsonl"
    file.write_bytes(b"\n".join(values) + b"\n")
    namespace = f"parity{uuid.uuid4().hex[:8]}"
    code = main(["replay", "--policy", "default", "--redis", redis_server, "--namespace",
                 namespace, str(file)])  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0
    replayed = [orjson.loads(x) for x in out.splitlines() if x]
    assert len(replayed) >= len(data.hard_pairs) > 100  # soft runs trip too

    worker = worker_factory(settings)
    partitions = list(range(settings.partitions))
    batcher = PartitionBatcher()
    ready: list[tuple[int, bytes]] = []
    for key, value in data.messages:
        ready += batcher.add(partition_for(key, partitions), value)
    ready += batcher.drain()
    for partition, body in ready:
        producer.send(settings.topics.attempts, value=body, partition=partition)
    producer.flush(timeout=60)
    live = [orjson.loads(v) for v in read_topic(settings.kafka, settings.topics.suppressions,
                                                len(replayed), timeout=90)]  # fmt: skip
    assert decided(live) == decided(replayed), worker.tail()
    assert len(live) == len(replayed)
