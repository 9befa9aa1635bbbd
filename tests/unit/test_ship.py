"""`bounceguard ship`'s batching and partitioning, without a broker."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner as AioPartitioner
from kafka.errors import KafkaTimeoutError
from kafka.partitioner.default import DefaultPartitioner as KafkaPythonPartitioner

from pipeline.config import Topics
from pipeline.core.decode import decode_attempts
from pipeline.core.parsing import make_parser
from pipeline.stream.shipper import Backoff, Line, PartitionBatcher, Shipper, partition_for

ADDRESSES = [f"user{i}@example.com" for i in range(200)] + ["Ünïcode@bücher.example", "a@b.io"]


class _Cluster:
    """The bits of kafka-python's ClusterMetadata its DefaultPartitioner reads."""

    def __init__(self, partitions: list[int]) -> None:
        self.partitions = partitions

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(self.partitions)

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(self.partitions)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 12, 50])
def test_partition_for_matches_kafka_python_and_aiokafka(count: int) -> None:
    partitions = list(range(count))
    kp = KafkaPythonPartitioner()
    for address in ADDRESSES:
        key = address.encode()
        ours = partition_for(key, partitions)
        assert ours == kp.partition("t", key, key, None, None, _Cluster(partitions))
        # faust's producer is aiokafka: the worker's own keyed sends agree too.
        assert ours == AioPartitioner()(key, partitions, partitions)


@pytest.mark.parametrize(
    ("key", "partition"),
    [(b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566), (b"\x00 ", 742)],
)
def test_partition_for_matches_the_java_client(key: bytes, partition: int) -> None:
    # Values of Kafka's Java partitioner over 1000 partitions, as kafka-python's and
    # aiokafka's test_murmur2_java_compatibility check them.
    assert partition_for(key, list(range(1000))) == partition


def test_batcher_sends_full_batches_in_order() -> None:
    batcher = PartitionBatcher(max_items=3)
    ready = []
    for i in range(7):
        ready += batcher.add(i % 2, b'"%d"' % i)
    assert ready == [(0, b'["0","2","4"]'), (1, b'["1","3","5"]')]
    assert batcher.drain() == [(0, b'["6"]')]
    assert batcher.drain() == []


def test_batcher_keeps_messages_under_max_bytes() -> None:
    batcher = PartitionBatcher(max_items=100, max_bytes=20)
    ready = []
    for i in range(6):
        ready += batcher.add(0, b'"%s"' % (b"x" * 4 + str(i).encode()))  # 7 bytes each
    ready += batcher.drain()
    assert [len(orjson.loads(m)) for _, m in ready] == [2, 2, 2]
    assert all(len(m) <= 20 for _, m in ready)
    assert [x for _, m in ready for x in orjson.loads(m)] == [f"xxxx{i}" for i in range(6)]


def test_batcher_sends_an_oversized_item_alone() -> None:
    batcher = PartitionBatcher(max_items=100, max_bytes=10)
    assert batcher.add(0, b'"small"') == []
    big = b'"' + b"y" * 50 + b'"'
    assert batcher.add(0, big) == [(0, b'["small"]')]
    assert batcher.drain() == [(0, b"[" + big + b"]")]


@dataclass
class _Future:
    ok: bool = True
    is_done: bool = True
    exception: Exception | None = None

    def failed(self) -> bool:
        return not self.ok


Sent = tuple[str, bytes, int | None]


@dataclass
class FakeProducer:
    """Records sends; `partitions_for` like kafka-python's (None for an unknown topic).

    `fail`: every send fails. `fail_first`: the first N sends fail (their futures, after the
    flush, as when the producer's delivery timeout ran out while the broker was away).
    `raise_first`: the first N calls of `send` raise (the buffer stayed full). `delivered`
    holds what the broker got, in the order it got it.
    """

    partitions: dict[str, set[int]]
    sent: list[Sent] = field(default_factory=list)
    fail: bool = False
    fail_first: int = 0
    raise_first: int = 0
    flushed: int = 0
    calls: int = 0
    delivered: list[Sent] = field(default_factory=list)

    def partitions_for(self, topic: str) -> set[int] | None:
        return self.partitions.get(topic)

    def send(self, topic: str, value: bytes, partition: int | None = None) -> _Future:
        self.calls += 1
        if self.calls <= self.raise_first:
            raise KafkaTimeoutError(
                "Failed to allocate memory within the configured max blocking time"
            )
        self.sent.append((topic, value, partition))
        ok = not self.fail and len(self.sent) > self.fail_first
        if ok:
            self.delivered.append((topic, value, partition))
        return _Future(ok=ok, exception=None if ok else KafkaTimeoutError("Batch expired"))

    def flush(self, timeout: float | None = None) -> None:
        self.flushed += 1


BOUNCE = (
    "Mar  2 09:00:{s:02d} mx1 postfix/smtp[2500]: Q{n:05X}: to=<{rcpt}>, relay=mx.example.net"
    "[192.0.2.1]:25, delay=1, dsn=5.1.1, status=bounced (host mx.example.net[192.0.2.1] said: "
    "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown (in reply to RCPT TO command))"
)


def bounce(n: int, rcpt: str) -> bytes:
    return BOUNCE.format(s=n % 60, n=n, rcpt=rcpt).encode()


def make_shipper(
    producer: Any, batch_size: int = 500, sleeps: list[float] | None = None
) -> Shipper:
    parser = make_parser("auto", tenant="acme", year=2026)
    return Shipper(
        producer,
        Topics(),
        parser,
        source="mail.log",
        batch_size=batch_size,
        sleep=(sleeps if sleeps is not None else []).append,
    )


def test_shipper_groups_attempts_by_the_key_partition_in_file_order() -> None:
    producer = FakeProducer({"delivery.attempts": {0, 1, 2}})
    shipper = make_shipper(producer, batch_size=4)
    recipients = [f"r{i % 7}@example.com" for i in range(30)]
    for n, rcpt in enumerate(recipients, 1):
        shipper.ship(Line(n, bounce(n, rcpt)))
    assert shipper.flush() is True
    per_partition: dict[int, list[str]] = {}
    for topic, value, partition in producer.sent:
        assert topic == "delivery.attempts"
        assert partition is not None
        attempts = decode_attempts(value)  # the worker's decoder accepts the arrays
        assert 1 <= len(attempts) <= 4
        for attempt in attempts:
            assert partition_for(attempt.recipient.encode(), [0, 1, 2]) == partition
            assert attempt.tenant == "acme"
            per_partition.setdefault(partition, []).append(attempt.recipient)
    for partition, got in per_partition.items():
        assert got == [r for r in recipients if partition_for(r.encode(), [0, 1, 2]) == partition]
    assert shipper.stats.attempts == 30
    assert shipper.stats.lines == 30


def test_shipper_dead_letters_bad_lines_with_line_numbers() -> None:
    producer = FakeProducer({"delivery.attempts": {0}})
    shipper = make_shipper(producer)
    shipper.ship(Line(1, b"Mar  2 09:00:00 mx1 postfix/smtpd[1]: connect from x[192.0.2.9]"))
    shipper.ship(Line(2, b"\xff\xfe not utf-8"))
    shipper.ship(Line(3, b"neither a log line"))
    shipper.ship(Line(4, bounce(4, "ok@example.com")))
    assert shipper.flush()
    dead = [orjson.loads(v) for t, v, _ in producer.sent if t == "mta.log.raw.deadletter"]
    assert [(d["reason"], d["source"]) for d in dead] == [
        ("bad_encoding", {"topic": "mail.log", "partition": 0, "offset": 2}),
        ("unknown_format", {"topic": "mail.log", "partition": 0, "offset": 3}),
    ]
    assert dead[1]["raw"] == "neither a log line"
    stats = shipper.stats
    assert (stats.lines, stats.attempts, stats.skipped, stats.dead) == (4, 1, 1, 2)


def per_partition(sent: list[Sent]) -> dict[tuple[str, int | None], list[bytes]]:
    """What each (topic, partition) got, in order: Kafka's order is per partition."""
    got: dict[tuple[str, int | None], list[bytes]] = {}
    for topic, value, partition in sent:
        got.setdefault((topic, partition), []).append(value)
    return got


def attempts_per_partition(sent: list[Sent]) -> dict[tuple[str, int | None], list[str]]:
    """The event ids each (topic, partition) got, in order (message boundaries aside)."""
    return {
        key: [a.event_id for value in values for a in decode_attempts(value)]
        for key, values in per_partition(sent).items()
    }


def ship_all(shipper: Shipper, lines: list[bytes], flush_every: int) -> bool:
    """Ship `lines`, flushing every `flush_every` lines (as --follow does when it catches up)."""
    ok = True
    for n, data in enumerate(lines, 1):
        shipper.ship(Line(n, data))
        if n % flush_every == 0:
            ok = shipper.flush() and ok
    return shipper.flush() and ok


LINES = [bounce(n, f"r{n % 9}@example.com") for n in range(1, 41)]
PARTITIONS = {"delivery.attempts": {0, 1, 2}}


def addresses_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "@" in r.getMessage()]


@pytest.mark.parametrize("extra", [0, 2, 5])
def test_failed_sends_are_retried_with_backoff_each_delivered_once_in_order(
    extra: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker is away for the first flush's sends and `extra` more: every message is
    delivered exactly once, each partition's in its order, after 1 s, 2 s, ... waits, with
    WARNING lines that name no address."""
    reference = FakeProducer(PARTITIONS)
    assert ship_all(make_shipper(reference, batch_size=2), LINES[:20], flush_every=20)
    first_flush = len(reference.sent)
    # several messages per partition in the flush, so the retry has an order to keep
    assert max(len(v) for v in per_partition(reference.sent).values()) >= 3
    reference = FakeProducer(PARTITIONS)
    assert ship_all(make_shipper(reference, batch_size=2), LINES, flush_every=20)
    producer = FakeProducer(PARTITIONS, fail_first=first_flush + extra)
    sleeps: list[float] = []
    shipper = make_shipper(producer, batch_size=2, sleeps=sleeps)
    caplog.set_level(logging.DEBUG)
    assert ship_all(shipper, LINES, flush_every=20) is True
    assert sorted(producer.delivered) == sorted(reference.delivered)  # each once, none lost
    assert per_partition(producer.delivered) == per_partition(reference.delivered)  # in order
    assert shipper.stats.failed == 0
    assert shipper.stats.messages == len(reference.sent)
    assert sleeps == [Backoff().delay(r) for r in range(1, len(sleeps) + 1)]
    assert sleeps and sleeps[0] == 1.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(sleeps)
    assert "error=KafkaTimeoutError" in warnings[0].getMessage()
    assert addresses_in(caplog) == []


def test_a_send_that_raises_is_retried_at_once() -> None:
    """The producer's buffer stayed full (send raises after max_block_ms): ship flushes and
    retries before reading on, instead of stopping the process with the lines queued."""
    reference = FakeProducer(PARTITIONS)
    assert ship_all(make_shipper(reference, batch_size=2), LINES, flush_every=50)
    producer = FakeProducer(PARTITIONS, raise_first=3)
    sleeps: list[float] = []
    shipper = make_shipper(producer, batch_size=2, sleeps=sleeps)
    assert ship_all(shipper, LINES, flush_every=50) is True
    # the retry flushed early (other message boundaries): compare the attempts
    got = attempts_per_partition(producer.delivered)
    assert got == attempts_per_partition(reference.delivered)  # each once, in order
    assert sum(len(ids) for ids in got.values()) == len(LINES)
    assert sleeps  # retried after a wait, not dropped


def test_sends_failing_every_retry_are_dropped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = FakeProducer({"delivery.attempts": {0}}, fail=True)
    sleeps: list[float] = []
    shipper = make_shipper(producer, sleeps=sleeps)
    shipper.ship(Line(1, bounce(1, "x@example.com")))
    caplog.set_level(logging.DEBUG)
    assert shipper.flush() is False
    assert shipper.stats.failed == 1
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]  # bounded: about a minute
    assert len(producer.sent) == 7  # the send and its 6 retries
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "dropped" in error.getMessage()
    assert addresses_in(caplog) == []


def test_shipper_needs_the_topic() -> None:
    with pytest.raises(LookupError):
        make_shipper(FakeProducer({}))


@pytest.mark.parametrize(
    ("argv", "from_end"),
    [([], False), (["--from-start"], False), (["--from-end"], True)],
)
def test_cli_follow_starts_at_the_beginning_by_default(argv: list[str], from_end: bool) -> None:
    from pipeline.cli import build_parser

    args = build_parser().parse_args(["ship", "mail.log", "--follow", *argv])
    assert (args.follow, args.from_end, args.format) == (True, from_end, "auto")


def test_shipper_configs_key_raw_lines_by_host_or_file() -> None:
    """deploy/shippers: every config produces to mta.log.raw with a key (never round-robin)."""
    import re
    import tomllib
    from pathlib import Path

    shippers = Path(__file__).resolve().parents[2] / "deploy" / "shippers"
    vector = tomllib.loads((shippers / "vector.toml").read_text())
    sink = vector["sinks"]["bounceguard_raw"]
    assert (sink["topic"], sink["key_field"]) == ("mta.log.raw", "bg_key")
    assert ".bg_key =" in vector["transforms"]["bg_fields"]["source"]

    fluent = (shippers / "fluent-bit.conf").read_text()
    assert re.search(r"^\s+Topics\s+mta\.log\.raw$", fluent, re.M)
    assert re.search(r"^\s+Message_Key_Field\s+file$", fluent, re.M)
    assert re.search(r"^\s+Path_Key\s+file$", fluent, re.M)

    rsyslog = (shippers / "rsyslog-omkafka.conf").read_text()
    assert rsyslog.count('topic="mta.log.raw"') == 2
    assert rsyslog.count('dynaKey="on" partitions.auto="on"') == 2
