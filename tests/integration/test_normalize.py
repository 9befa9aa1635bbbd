"""The normalize agent end to end: raw MTA log lines on `mta.log.raw` -> attempts on
`delivery.attempts` -> suppression events (the count agent runs in the same worker), bad
lines -> `mta.log.raw.deadletter`; real Kafka and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.config import Settings
from pipeline.stream.shipper import partition_for
from tests.integration.conftest import WorkerProcess, read_topic, send
from tests.integration.test_ship import read_attempts

pytestmark = pytest.mark.integration

LOGS = Path(__file__).resolve().parents[1] / "data" / "logs"


def lines(name: str, *numbers: int) -> list[bytes]:
    """Lines `numbers` (1-based) of fixture `name`, as the bytes a shipper sends."""
    text = (LOGS / name).read_bytes().splitlines()
    return [text[n - 1] for n in numbers]


def produce(producer: KafkaProducer, topic: str, key: str, values: list[bytes]) -> None:
    """Send `values` in order with one key (a shipper keys by host or file)."""
    for value in values:
        send(producer, topic, value, key=key)


def flat(messages: list[tuple[int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """The attempts of (partition, array) messages, in order."""
    return [a for _, batch in messages for a in batch]


def by_address(raw: list[bytes]) -> dict[str, dict[str, Any]]:
    """Suppression events by address (one each expected)."""
    events = [orjson.loads(v) for v in raw]
    out = {e["address"]: e for e in events}
    assert len(out) == len(events), events
    return out


def test_raw_lines_of_four_mtas_become_attempts_and_suppressions(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    worker: WorkerProcess = worker_factory(settings)
    raw = settings.topics.raw
    # Postfix: a connect line (no attempt), then a Gmail 550 5.1.1 bounce.
    produce(producer, raw, "kedumba|/var/log/mail.log", lines("postfix.log", 3, 4))
    # Exim >= 4.97 ids: a Gmail 550-5.1.1 bounce after RCPT TO.
    produce(producer, raw, "mx2|/var/log/exim4/mainlog", lines("exim.log", 15))
    # PowerMTA: the header, then delivered, bounced (5.1.1), deferred (Yahoo TSS04) and f rows.
    produce(producer, raw, "pmta|acct.csv", lines("pmta-acct.csv", 1, 2, 3, 4, 5))
    # KumoMTA: a Bounce record with two recipients, tenant acme in its meta.
    produce(producer, raw, "kumo|log", lines("kumo.jsonl", 3))

    attempts = flat(read_attempts(settings.kafka, settings.topics.attempts, 7))
    assert sorted(a["recipient"] for a in attempts) == [
        "ace400@pb.example",
        "also-gone@example.net",
        "anincorrectemailaddress@openaustralia.org",
        "gone@example.net",
        "u1@gmail.com",
        "u2@gmail.com",
        "u3@yahoo.com",
    ], worker.tail()
    assert {a["tenant"] for a in attempts if "example.net" in a["recipient"]} == {"acme"}

    out = by_address(read_topic(settings.kafka, settings.topics.suppressions, 5))
    assert sorted(out) == [
        "ace400@pb.example",
        "also-gone@example.net",
        "anincorrectemailaddress@openaustralia.org",
        "gone@example.net",
        "u2@gmail.com",
    ], worker.tail()
    assert {e["reason"] for e in out.values()} == {"user_unknown"}
    assert out["gone@example.net"]["tenant"] == "acme"
    assert out["u2@gmail.com"]["tenant"] == "default"


def test_attempts_go_to_their_recipients_partition(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    """Attempts are produced as arrays, each on the partition its recipients' key picks (as
    `bounceguard ship` does), so one address's events stay in order on one partition."""
    worker_factory(settings)
    produce(producer, settings.topics.raw, "kumo", lines("kumo.jsonl", 3))
    messages = read_attempts(settings.kafka, settings.topics.attempts, 2)
    partitions = list(range(settings.partitions))
    placed = sorted((a["recipient"], p) for p, batch in messages for a in batch)
    assert [r for r, _ in placed] == ["also-gone@example.net", "gone@example.net"]
    for recipient, partition in placed:
        assert partition == partition_for(recipient.encode(), partitions)


def test_json_wrapper_with_tenant_and_host(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    worker: WorkerProcess = worker_factory(settings)
    (line,) = lines("postfix.log", 4)
    wrapped = {"message": line.decode(), "tenant": "acme", "host": "kedumba", "file": "mail.log"}
    send(producer, settings.topics.raw, wrapped, key="kedumba")
    # Fluent Bit's tail record names the line `log`; the tenant may sit under Filebeat's fields.
    (exim,) = lines("exim.log", 15)
    send(producer, settings.topics.raw, {"log": exim.decode(), "fields": {"tenant": "beta"}})

    attempts = flat(read_attempts(settings.kafka, settings.topics.attempts, 2))
    assert {(a["recipient"], a["tenant"]) for a in attempts} == {
        ("anincorrectemailaddress@openaustralia.org", "acme"),
        ("ace400@pb.example", "beta"),
    }, worker.tail()
    out = by_address(read_topic(settings.kafka, settings.topics.suppressions, 2))
    assert out["anincorrectemailaddress@openaustralia.org"]["tenant"] == "acme"
    assert out["ace400@pb.example"]["tenant"] == "beta"


POSTFIX_BAD_ADDRESS = (
    b"Apr  5 14:21:51 kedumba postfix/smtp[2500]: 39D9336AFA81: to=<not-an-address>, "
    b"relay=none, delay=1, dsn=5.1.1, status=bounced (user unknown)"
)


def test_bad_lines_are_dead_lettered_and_the_worker_keeps_going(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    worker: WorkerProcess = worker_factory(settings)
    raw = settings.topics.raw
    bad = {
        "too_large": b"Apr  5 14:21:51 kedumba postfix/smtp[1]: " + b"x" * 1_000_000,
        "bad_encoding": b"Apr  5 14:21:51 kedumba postfix/smtp[1]: \xff\xfe\xfd",
        "unknown_format": b"GET /index.html HTTP/1.1 200 512",
        "bad_json": b'{"message": "Apr  5 14:21:51 kedumba postfix/smtp[1]: QID: to=<a@b.c>',
        "bad_address": POSTFIX_BAD_ADDRESS,
        "missing_field": b"",  # an empty message: dead-lettered as on the other topics
    }
    for value in bad.values():
        send(producer, raw, value, key="mx1")
    produce(producer, raw, "mx1", lines("postfix.log", 4))

    dead = [orjson.loads(v) for v in read_topic(settings.kafka, settings.topics.deadletter(raw), 6)]
    assert sorted(d["reason"] for d in dead) == sorted(bad), worker.tail()
    for d in dead:
        assert d["source"]["topic"] == raw
        if d["reason"] == "too_large":
            assert d["truncated"] is True
            assert d["size"] == len(bad["too_large"])
        if d["reason"] == "bad_encoding":
            assert "raw_base64" in d
        if d["reason"] == "unknown_format":
            assert d["raw"] == bad["unknown_format"].decode()

    out = by_address(read_topic(settings.kafka, settings.topics.suppressions, 1))
    assert list(out) == ["anincorrectemailaddress@openaustralia.org"]
    assert worker.proc.poll() is None, worker.tail()


def test_postfix_expired_needs_the_stream_state(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    """The recipient-less `status=expired` line gets its recipient from earlier deferrals
    of the same stream (same key, same partition, same parser)."""
    worker: WorkerProcess = worker_factory(settings)
    text = (LOGS / "postfix.log").read_bytes().splitlines()
    stream = text[6:15]
    produce(producer, settings.topics.raw, "vps|mail.log", stream)
    attempts = flat(read_attempts(settings.kafka, settings.topics.attempts, 3))
    assert sorted(a["outcome"] for a in attempts) == ["deferred", "deferred", "expired"], (
        worker.tail()
    )
