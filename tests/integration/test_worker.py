"""The walking skeleton end to end: Kafka -> faust agent -> Redis Lua -> Kafka, real servers."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaProducer

from pipeline.config import Settings
from pipeline.state import keys
from tests.integration.conftest import WorkerProcess, read_topic, send

pytestmark = pytest.mark.integration

GMAIL_UNKNOWN = (
    "550-5.1.1 The email account that you tried to reach does not exist. Please try "
    "double-checking the recipient's email address for typos or unnecessary spaces. - gsmtp"
)


def attempt(recipient: str, outcome: str = "bounced", **fields: Any) -> dict[str, Any]:
    """An attempt as a shipper would produce it."""
    base: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "ts": "2026-03-02T09:00:00Z",
        "recipient": recipient,
        "tenant": "acme",
        "outcome": outcome,
        "smtp_code": 550,
        "enhanced_code": "5.1.1",
        "diagnostic": GMAIL_UNKNOWN,
    }
    return {**base, **fields}


def test_hard_bounce_suppresses_and_delivery_does_not(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    worker: WorkerProcess = worker_factory(settings)
    topics = settings.topics
    send(
        producer,
        topics.attempts,
        attempt(
            "ok@example.com",
            "delivered",
            smtp_code=250,
            enhanced_code="2.0.0",
            diagnostic="250 2.0.0 OK",
        ),
        key="ok@example.com",
    )
    send(producer, topics.attempts, attempt("Gone@Example.com"), key="gone@example.com")
    out = [orjson.loads(v) for v in read_topic(settings.kafka, topics.suppressions, expect=1)]
    assert len(out) == 1, worker.tail()
    event = out[0]
    assert event["address"] == "gone@example.com"
    assert event["action"] == "suppressed"
    assert event["tenant"] == "acme"
    assert event["reason"] == "user_unknown"
    assert event["rule"] == "immediate_hard"


def test_same_attempt_twice_gives_one_event_id(
    settings: Settings, worker_factory: Any, producer: KafkaProducer, redis_client: redis.Redis
) -> None:
    worker_factory(settings)
    twice = attempt("dup@example.com")
    send(producer, settings.topics.attempts, twice, key="dup@example.com")
    send(producer, settings.topics.attempts, twice, key="dup@example.com")
    out = [orjson.loads(v) for v in read_topic(settings.kafka, settings.topics.suppressions, 1)]
    # At-least-once may re-emit, but never a second, different suppression.
    assert {e["event_id"] for e in out} == {out[0]["event_id"]}
    assert len(out) == 1
    state = keys.read_doc(redis_client.get(f"{settings.namespace}:{{dup@example.com}}:t:acme"))
    assert state.fields["s"]["rule"] == "immediate_hard"


def test_bad_input_goes_to_dead_letter_and_worker_keeps_going(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    worker: WorkerProcess = worker_factory(settings)
    topics = settings.topics
    send(producer, topics.attempts, b"this is not json")
    send(producer, topics.attempts, b"\xff\xfe garbage")
    send(
        producer,
        topics.attempts,
        {
            "event_id": "x",
            "ts": "2026-03-02T09:00:00Z",
            "recipient": "not-an-address",
            "outcome": "bounced",
        },
    )
    # A NUL inside the recipient (kcat sends it as JSON's \u0000): read as a C string, the
    # key would name another address.
    send(producer, topics.attempts, attempt("nul\x00x@example.com"))
    send(producer, topics.attempts, b"")  # an empty message: the rule of every input topic
    send(producer, topics.attempts, attempt("after@example.com"), key="after@example.com")
    dead = [
        orjson.loads(v) for v in read_topic(settings.kafka, topics.deadletter(topics.attempts), 5)
    ]
    assert sorted(d["reason"] for d in dead) == [
        "bad_address",
        "bad_address",
        "bad_encoding",
        "bad_json",
        "missing_field",
    ]
    assert any("\\u0000" in d.get("raw", "") for d in dead), dead
    assert any(d.get("raw") == "this is not json" for d in dead)
    out = [orjson.loads(v) for v in read_topic(settings.kafka, topics.suppressions, 1)]
    assert [e["address"] for e in out] == ["after@example.com"]
    assert worker.proc.poll() is None, worker.tail()
