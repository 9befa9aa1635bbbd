"""The bounce-mail agent end to end on the real stack: raw bounce mails on `bounce.mail.raw`
-> attempts on `delivery.attempts` -> suppression events (the count agent runs in the same
worker); a mail that is not a DSN -> `bounce.mail.raw.deadletter`. Real Kafka and Redis.

The case of tests/integration/test_dsn.py (a 250 logged for the send, then an asynchronous
5.1.1 DSN for it), here through the live worker instead of `parse` and `replay`."""

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
from tests.integration.test_worker import attempt

pytestmark = pytest.mark.integration
DSN = Path(__file__).resolve().parents[1] / "data" / "dsn"
ADDRESS = "jane.doe@example.com"
SENTINEL = "sentinel@example.com"
DELIVERED = {
    "event_id": "pmta-1",
    "ts": "2026-03-02T08:59:59Z",
    "recipient": ADDRESS,
    "tenant": "acme",
    "outcome": "delivered",
    "smtp_code": 250,
    "message_id": "send-7f3c2a9e01",
}


def mail(name: str) -> bytes:
    """A sample bounce mail, as the bytes a mailbox fetcher sends."""
    return (DSN / name).read_bytes()


def suppressions(settings: Settings, expect: int) -> list[dict[str, Any]]:
    return [
        orjson.loads(v) for v in read_topic(settings.kafka, settings.topics.suppressions, expect)
    ]


def test_an_asynchronous_bounce_after_a_250_suppresses_once(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    worker: WorkerProcess = worker_factory(settings)
    # The MTA log said "delivered": acked on the address's partition before any DSN exists,
    # so the count agent reads it first.
    send(producer, settings.topics.attempts, DELIVERED, key=ADDRESS)
    dsn = mail("postfix-5.1.1.eml")
    send(producer, settings.topics.mail, dsn, key="<20260302090005.4Qk7Tn0v3Jz9sQ@mx1.example.net>")

    [event] = suppressions(settings, 1)
    assert (event["address"], event["tenant"], event["rule"], event["reason"]) == (
        ADDRESS,
        "acme",
        "immediate_hard",
        "user_unknown",
    ), worker.tail()

    for _ in range(2):  # the same DSN delivered twice more (a fetcher re-reading its mailbox)
        send(producer, settings.topics.mail, dsn)
    produced = read_attempts(settings.kafka, settings.topics.attempts, 4)
    bounces = [(p, a) for p, batch in produced for a in batch if a["outcome"] == "bounced"]
    assert len(bounces) == 3, worker.tail()
    assert {a["event_id"] for _, a in bounces} == {bounces[0][1]["event_id"]}
    assert bounces[0][1]["event_id"].startswith("dsn:")
    # Each copy on the address's partition, behind the 250 (the key's partitioner).
    partition = partition_for(ADDRESS.encode(), list(range(settings.partitions)))
    assert {p for p, _ in produced} == {partition}
    # Still one: counted once. A sentinel hard bounce to another address, on the address's
    # partition (same key) behind the copies: the count agent takes a partition in order and
    # sends each unit's suppressions in unit order, so once the sentinel's is out, a second
    # one for the copies would be out before it. (This waited 10 s for a second one before.)
    send(producer, settings.topics.attempts, attempt(SENTINEL), key=ADDRESS)
    again = suppressions(settings, 2)
    assert sorted(e["address"] for e in again) == sorted([ADDRESS, SENTINEL]), worker.tail()
    assert worker.proc.poll() is None, worker.tail()


def test_a_mail_that_is_not_a_dsn_is_dead_lettered_and_the_worker_keeps_going(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    worker: WorkerProcess = worker_factory(settings)
    topic = settings.topics.mail
    send(producer, topic, mail("not-a-dsn.eml"))  # an out-of-office reply to the bounce address
    send(producer, topic, mail("rfc3464-simple.eml"))  # a DSN that names no send
    send(producer, topic, mail("postfix-5.1.1.eml"))

    dead = [
        orjson.loads(v) for v in read_topic(settings.kafka, settings.topics.deadletter(topic), 2)
    ]
    # sent together (awaited before the ack), so in either order
    reasons = {d["reason"]: d for d in dead}
    assert sorted(reasons) == ["bad_dsn", "unattributed"], worker.tail()
    assert reasons["bad_dsn"]["source"]["topic"] == topic
    assert reasons["bad_dsn"]["raw"] == mail("not-a-dsn.eml").decode()  # kept whole, for a replay
    [event] = suppressions(settings, 1)
    assert (event["address"], event["rule"]) == (ADDRESS, "immediate_hard"), worker.tail()
    assert worker.proc.poll() is None, worker.tail()
    # No address in the worker's INFO log (STYLE.md habit 10).
    assert ADDRESS not in worker.log.read_text(errors="replace")


NOTICES = Path(__file__).resolve().parents[1] / "data" / "notices"


def test_plain_text_notices_suppress_and_verp_attributes_one_that_quotes_nothing(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    """An Exim notice (joined by its returned Message-ID) and a qmail notice that quotes no
    message (joined only by the VERP id in the address it was mailed to), on the live worker
    with BOUNCEGUARD_DSN_VERP set: all four recipients are suppressed as hard bounces."""
    verp = r"^bounces-(?P<tenant>[a-z0-9]+)-(?P<id>[A-Za-z0-9.]+)@bounce\.example\.org$"
    worker: WorkerProcess = worker_factory(settings, BOUNCEGUARD_DSN_VERP=verp)
    qmail = (NOTICES / "lhost-qmail-02.eml").read_bytes()
    qmail = qmail.replace(
        b"\nTo: kijitora@example.jp\n", b"\nTo: bounces-acme-send.42@bounce.example.org\n"
    )
    assert b"bounces-acme-send.42" in qmail
    send(producer, settings.topics.mail, (NOTICES / "lhost-exim-02.eml").read_bytes())
    send(producer, settings.topics.mail, qmail)

    found = {(e["address"], e["tenant"], e["rule"]) for e in suppressions(settings, 4)}
    assert found == {
        ("kijitora@example.jp", "default", "immediate_hard"),
        ("sabatora@example.jp", "default", "immediate_hard"),
        ("userunknown@example.jp", "acme", "immediate_hard"),
        ("filtered@example.jp", "acme", "immediate_hard"),
    }, worker.tail()
    produced = [
        a for _, batch in read_attempts(settings.kafka, settings.topics.attempts, 2) for a in batch
    ]
    assert {a["asynchronous"] for a in produced} == {True}
    assert {a["message_id"] for a in produced if a["tenant"] == "acme"} == {"send.42"}
    assert worker.proc.poll() is None, worker.tail()
