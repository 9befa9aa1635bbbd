"""The bounce-mail agent's body (pipeline.stream.mail.MailBatch) with Kafka faked: a DSN's
failed recipients become attempts on delivery.attempts, anything else a dead letter on
bounce.mail.raw.deadletter with the DSN parser's reason. The agent against the real broker
is tests/integration/test_mail.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY

from pipeline.core.dsn import DEFAULT_JOIN_HEADER
from pipeline.stream import mail
from tests.unit.test_no_address_in_logs import Event, Message, process
from tests.unit.test_normalize_restart import Topic

DSN = Path(__file__).resolve().parents[1] / "data" / "dsn"


@dataclass
class Topics:
    mail: Topic = field(default_factory=lambda: Topic("bounce.mail.raw"))
    attempts: Topic = field(default_factory=lambda: Topic("delivery.attempts"))
    mail_deadletter: Topic = field(default_factory=lambda: Topic("bounce.mail.raw.deadletter"))


class Worker(mail.MailBatch):
    """The body with the attempts topic's partitions known (no producer metadata)."""

    async def _attempt_partitions(self) -> list[int]:
        return [0, 1]


def run(*values: bytes, join_header: str = DEFAULT_JOIN_HEADER) -> Topics:
    topics = Topics()
    worker = Worker(None, topics, join_header=join_header)  # type: ignore[arg-type]
    events = [Event(v, message=Message("bounce.mail.raw", 0, n)) for n, v in enumerate(values)]
    asyncio.run(process(worker, events))
    return topics


def mails(result: str) -> float:
    """bounceguard_raw_mails_total{result} so far."""
    return REGISTRY.get_sample_value("bounceguard_raw_mails_total", {"result": result}) or 0.0


def sample(name: str) -> bytes:
    return (DSN / name).read_bytes()


def test_a_dsn_becomes_its_failed_recipients_attempts() -> None:
    topics = run(sample("postfix-5.1.1.eml"), sample("rfc3464-multi.eml"))
    attempts = [a for value in topics.attempts.sent for a in orjson.loads(value)]
    jane = next(a for a in attempts if a["recipient"] == "jane.doe@example.com")
    assert jane["event_id"].startswith("dsn:")
    assert (jane["outcome"], jane["tenant"], jane["message_id"]) == (
        "bounced",
        "acme",
        "send-7f3c2a9e01",
    )
    assert len(attempts) == 4  # postfix: one failed (one delivered); multi: three
    assert topics.mail_deadletter.sent == []


def test_the_same_dsn_twice_gives_the_same_event_ids() -> None:
    topics = run(sample("postfix-5.1.1.eml"), sample("postfix-5.1.1.eml"))
    ids = [a["event_id"] for value in topics.attempts.sent for a in orjson.loads(value)]
    assert len(ids) == 2
    assert ids[0] == ids[1]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (sample("not-a-dsn.eml"), "bad_dsn"),
        (sample("rfc3464-simple.eml"), "unattributed"),
        (b"", "missing_field"),
        (b"\xff\xfe garbage", "bad_dsn"),
    ],
)
def test_what_is_not_a_usable_dsn_is_dead_lettered_with_its_reason(
    value: bytes, reason: str
) -> None:
    before = mails("dead_letter")
    topics = run(value, sample("postfix-5.1.1.eml"))
    [dead] = [orjson.loads(v) for v in topics.mail_deadletter.sent]
    assert (dead["reason"], dead["source"]["topic"], dead["source"]["offset"]) == (
        reason,
        "bounce.mail.raw",
        0,
    )
    assert len(topics.attempts.sent) == 1  # the next mail is still read
    assert mails("dead_letter") == before + 1


def test_a_mail_where_every_recipient_was_relayed_is_skipped() -> None:
    before = mails("skipped")
    topics = run(sample("relayed-only.eml"))
    assert (topics.attempts.sent, topics.mail_deadletter.sent) == ([], [])
    assert mails("skipped") == before + 1


def test_the_join_header_is_the_configured_one() -> None:
    """With another header configured, the returned Message-ID names the send."""
    topics = run(sample("postfix-5.1.1.eml"), join_header="X-Our-Send-Id")
    [attempt] = [a for value in topics.attempts.sent for a in orjson.loads(value)]
    assert attempt["message_id"] == "c-2026-03.jane@acme.example"
