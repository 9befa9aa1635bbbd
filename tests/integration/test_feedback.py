"""engagement.events and feedback.events end to end on the real broker and Redis: opens
raise a contact's soft-bounce threshold, JSON and ARF complaints suppress, a tenant over its
complaint rate gets a sender.alerts event, bad feedback is dead-lettered."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaProducer

from pipeline.config import Settings
from pipeline.state import keys
from tests.integration.conftest import WorkerProcess, read_topic, send, wait_for
from tests.integration.test_worker import attempt

pytestmark = pytest.mark.integration
ARF = Path(__file__).resolve().parents[1] / "data" / "arf"


def events_on(settings: Settings, topic: str, expect: int) -> list[dict[str, Any]]:
    """Decoded JSON messages of `topic`."""
    return [orjson.loads(v) for v in read_topic(settings.kafka, topic, expect)]


def soft_bounces(recipient: str, campaigns: int) -> list[dict[str, Any]]:
    """One mailbox-full soft bounce per campaign, a day apart (default preset counts sends)."""
    return [
        attempt(
            recipient,
            "deferred",
            smtp_code=452,
            enhanced_code="4.2.2",
            diagnostic="452 4.2.2 Mailbox full",
            campaign_id=f"c{n}",
            ts=f"2026-03-{n + 1:02d}T10:00:00Z",
        )
        for n in range(1, campaigns + 1)
    ]


def test_an_open_raises_the_soft_bounce_threshold_of_the_default_preset(
    settings: Settings, worker_factory: Any, producer: KafkaProducer, redis_client: redis.Redis
) -> None:
    worker: WorkerProcess = worker_factory(settings)
    topics = settings.topics
    # engaged@ opened first: 10 soft bounces are under its threshold of 20.
    send(
        producer,
        topics.engagement,
        {
            "event_id": uuid.uuid4().hex,
            "ts": "2026-03-01T08:00:00Z",
            "recipient": "engaged@example.com",
            "tenant": "acme",
            "action": "open",
        },
        key="engaged@example.com",
    )
    # Topics are consumed independently, so wait until the open is recorded before the
    # bounces come (in production opens arrive live, long before the tenth bounce).
    state = f"{settings.namespace}:{{engaged@example.com}}:t:acme"
    wait_for(lambda: "e" in keys.read_doc(redis_client.get(state)).fields, 30, worker.tail)
    for who in ("engaged@example.com", "quiet@example.com"):
        for doc in soft_bounces(who, 10):
            send(producer, topics.attempts, doc, key=who)
    out = events_on(settings, topics.suppressions, 1)
    assert [(e["address"], e["rule"], e["count"]) for e in out] == [
        ("quiet@example.com", "consecutive_soft", 10)
    ], worker.tail()


def test_json_and_arf_complaints_suppress_and_bad_feedback_is_dead_lettered(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    worker_factory(settings)
    topics = settings.topics
    send(
        producer,
        topics.feedback,
        {
            "type": "complaint",
            "event_id": "fbl-1",
            "ts": "2026-03-02T09:00:00Z",
            "tenant": "acme",
            "recipient": "json.fbl@example.com",
        },
        key="json.fbl@example.com",
    )
    send(producer, topics.feedback, (ARF / "rfc5965-b2.eml").read_bytes())
    send(producer, topics.feedback, (ARF / "sisimai-arf-22.eml").read_bytes())
    out = events_on(settings, topics.suppressions, 2)
    assert sorted((e["address"], e["reason"]) for e in out) == [
        ("json.fbl@example.com", "complaint"),
        ("user@example.com", "complaint"),
    ]
    dead = events_on(settings, topics.deadletter(topics.feedback), 1)
    assert [d["reason"] for d in dead] == ["bad_arf"]


def test_complaints_over_the_tenant_limit_raise_one_sender_alert(
    settings: Settings, worker_factory: Any, producer: KafkaProducer, tmp_path: Path
) -> None:
    policies = tmp_path / "policies.toml"
    policies.write_text('preset = "default"\n[tenants.news]\npreset = "ecomail"\n')
    worker_factory(settings, BOUNCEGUARD_POLICY_FILE=str(policies))
    topics = settings.topics
    for n in range(4):  # ecomail: over 0.1 % of delivered mail, once there are 3 complaints
        who = f"c{n}@example.com"
        send(
            producer,
            topics.feedback,
            {
                "type": "complaint",
                "event_id": f"cmp-{n}",
                "ts": f"2026-03-02T09:0{n}:00Z",
                "tenant": "news",
                "recipient": who,
            },
            key=who,
        )
    alerts = events_on(settings, topics.alerts, 1)
    assert len(alerts) == 1
    assert (alerts[0]["tenant"], alerts[0]["rule"], alerts[0]["policy"]) == (
        "news",
        "complaint_rate",
        "ecomail",
    )
    assert alerts[0]["count"] >= 3
