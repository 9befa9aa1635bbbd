"""The ESP agent's body (pipeline.stream.esp.EspBatch) with Kafka faked: a webhook body keyed
by its provider becomes attempts on delivery.attempts and complaints on feedback.events;
anything else a dead letter with its reason. Against the real broker:
tests/integration/test_webhooks.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.core.messages import decode_engagement, decode_feedback
from pipeline.stream import esp
from tests.unit.test_no_address_in_logs import Event, Message, process
from tests.unit.test_normalize_restart import Topic

ESP = Path(__file__).resolve().parents[1] / "data" / "esp"


class KeyedTopic(Topic):
    """A fake topic that also records each message's key."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.keys: list[Any] = []

    async def send(self, *, value: bytes, key: Any = None, partition: int | None = None) -> Any:
        self.keys.append(key)
        return await super().send(value=value, key=key, partition=partition)


@dataclass
class Topics:
    esp: Topic = field(default_factory=lambda: Topic("esp.events.raw"))
    attempts: Topic = field(default_factory=lambda: Topic("delivery.attempts"))
    feedback: KeyedTopic = field(default_factory=lambda: KeyedTopic("feedback.events"))
    engagement: KeyedTopic = field(default_factory=lambda: KeyedTopic("engagement.events"))
    esp_deadletter: Topic = field(default_factory=lambda: Topic("esp.events.raw.deadletter"))


class Worker(esp.EspBatch):
    """The body with the attempts topic's partitions known (no producer metadata)."""

    async def _attempt_partitions(self) -> list[int]:
        return [0, 1]


def run(*messages: tuple[bytes | None, bytes]) -> Topics:
    topics = Topics()
    worker = Worker(None, topics, default_tenant="acme")  # type: ignore[arg-type]
    events = [
        Event(value, key=key, message=Message("esp.events.raw", 0, n))
        for n, (key, value) in enumerate(messages)
    ]
    asyncio.run(process(worker, events))
    return topics


def sample(name: str) -> bytes:
    return (ESP / name).read_bytes()


def test_attempts_and_complaints_go_to_their_topics() -> None:
    topics = run((b"sparkpost:0123456789abcdef", sample("sparkpost-events.json")))
    [bounce] = [a for value in topics.attempts.sent for a in orjson.loads(value)]
    assert (bounce["event_id"], bounce["tenant"]) == ("sparkpost:bounce:92356927693813856", "acme")
    assert bounce["smtp_phase"] == "esp:sparkpost:1"
    [complaint] = topics.feedback.sent
    assert topics.feedback.keys == [b"recipient@example.com"]
    [event] = decode_feedback(complaint, received=datetime.now(UTC))
    assert (event.event_id, event.kind.value, event.tenant) == (
        "sparkpost:spam_complaint:92356927693813856",
        "complaint",
        "acme",
    )
    assert topics.esp_deadletter.sent == []


def test_opens_and_clicks_go_to_the_engagement_topic_keyed_by_recipient() -> None:
    at = 1772442000
    body = orjson.dumps([
        {"email": "ann@example.com", "timestamp": at, "event": "open", "sg_event_id": "o1"},
        {"email": "bob@example.com", "timestamp": at, "event": "click", "sg_event_id": "c1"},
    ])  # fmt: skip
    topics = run((b"sendgrid:0123", body))
    assert topics.engagement.keys == [b"ann@example.com", b"bob@example.com"]
    events = [e for value in topics.engagement.sent for e in decode_engagement(value)]
    assert [(e.event_id, e.action.value, e.tenant) for e in events] == [
        ("sendgrid:open:o1", "open", "acme"),
        ("sendgrid:click:c1", "click", "acme"),
    ]
    assert topics.attempts.sent == topics.feedback.sent == topics.esp_deadletter.sent == []


def test_the_same_body_twice_gives_the_same_event_ids() -> None:
    body = sample("sendgrid-events.json")
    topics = run((b"sendgrid", body), (b"sendgrid", body))
    ids = [a["event_id"] for value in topics.attempts.sent for a in orjson.loads(value)]
    assert len(ids) == 6
    assert sorted(ids[:3]) == sorted(ids[3:])


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"mailchimp", b"{}", "wrong_type"),
        (None, sample("postmark-bounce.json"), "wrong_type"),
        (b"postmark", b"", "missing_field"),
        (b"sendgrid", b"{not json", "bad_json"),
        (b"sendgrid", b'[{"event":"bounce","email":"nope","timestamp":1}]', "bad_address"),
    ],
)
def test_what_cannot_be_mapped_is_dead_lettered_and_the_next_body_still_read(
    key: bytes | None, value: bytes, reason: str
) -> None:
    topics = run((key, value), (b"postmark", sample("postmark-bounce.json")))
    [dead] = [orjson.loads(v) for v in topics.esp_deadletter.sent]
    assert (dead["reason"], dead["source"]["topic"], dead["source"]["offset"]) == (
        reason,
        "esp.events.raw",
        0,
    )
    [attempt] = [a for value in topics.attempts.sent for a in orjson.loads(value)]
    assert attempt["recipient"] == "john@example.com"
