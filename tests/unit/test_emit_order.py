"""Steps 3 and 4 of a unit (pipeline.stream.apply.Emitter): suppressions and alerts go to Kafka
and their deliveries are acknowledged BEFORE they are marked emitted in Redis.

Marked first, a crash (or a failed send) between the two loses the event for good: Redis says
it was emitted, so a replay of its trigger emits nothing. Kafka is faked with delivery futures
that complete a few loop turns after `send` returns (tests/unit/fakes.py), so the assertions
are about the order of "acked" and "mark" in one journal.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from pipeline.core.decode import decode_attempts
from pipeline.core.plan import Outcome
from pipeline.stream.apply import Emitter
from tests.unit.fakes import FakeStore, FakeTopic, Journal, alert_for, suppression_for

A, B = decode_attempts(b'[{"event_id": "e1", "ts": 0, "recipient": "a@example.com", '
                       b'"outcome": "bounced"}, {"event_id": "e2", "ts": 0, '
                       b'"recipient": "b@example.com", "outcome": "bounced"}]')  # fmt: skip


def emitter(journal: Journal, **topic: Any) -> tuple[Emitter, FakeTopic, FakeTopic]:
    suppressions = FakeTopic("suppression.events", journal, **topic)
    alerts = FakeTopic("sender.alerts", journal, **topic)
    store: Any = FakeStore(journal)
    return Emitter(store, suppressions, alerts), suppressions, alerts


def test_suppressions_and_alerts_are_marked_only_after_kafka_acked_every_one() -> None:
    """Catches: emit marking before sending (steps 3 and 4 swapped), and `_send` not awaiting
    the delivery futures (mark_emitted while the broker has not acked yet)."""
    journal = Journal()
    emit, suppressions, alerts = emitter(journal, delay=5)
    outcome = Outcome(suppressions=[suppression_for(A), suppression_for(B)], alerts=[alert_for(A)])

    asyncio.run(emit.emit(outcome))

    acked = journal.kinds("acked")
    assert acked == [
        ("acked", "suppression.events", b"a@example.com"),
        ("acked", "suppression.events", b"b@example.com"),
        ("acked", "sender.alerts", b"default"),
    ]
    mark = journal.position(("mark", ["s-e1", "s-e2"], ["al-e1"]))
    assert all(journal.position(a) < mark for a in acked)
    assert [v["event_id"] for v in suppressions.values()] == ["s-e1", "s-e2"]
    assert [v["event_id"] for v in alerts.values()] == ["al-e1"]
    assert len(journal.kinds("mark")) == 1


def test_a_send_that_raises_leaves_nothing_marked_emitted() -> None:
    """Catches: emit marking before sending. A permanent Kafka error is raised (the batch
    then falls back); whatever happens next, Redis must not say the event was emitted."""
    journal = Journal()
    emit, _, _ = emitter(journal, fail=MessageSizeTooLargeError())
    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(emit.emit(Outcome(suppressions=[suppression_for(A)])))
    assert journal.kinds("send") == [("send", "suppression.events", b"a@example.com")]
    assert journal.kinds("mark") == []


def test_a_delivery_the_broker_rejects_leaves_nothing_marked_emitted() -> None:
    """Catches: `_send` not awaiting the delivery futures: the send call returns fine, the
    broker refuses the record later, and only awaiting the future finds out."""
    journal = Journal()
    emit, _, _ = emitter(journal, reject=MessageSizeTooLargeError())
    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(emit.emit(Outcome(suppressions=[suppression_for(A), suppression_for(B)])))
    assert len(journal.kinds("rejected")) == 2
    assert journal.kinds("mark") == []


@pytest.mark.usefixtures("no_backoff")
def test_a_transient_send_error_is_retried_and_marked_once_after_the_acks() -> None:
    """Catches: a transient Kafka error treated as done (mark without a delivered send), or
    the mark retried/duplicated; the retried send is acked before the one mark."""
    journal = Journal()
    emit, suppressions, _ = emitter(journal, fail=KafkaConnectionError(), fail_times=1)
    asyncio.run(emit.emit(Outcome(suppressions=[suppression_for(A)])))
    assert journal.kinds("send", "acked", "mark") == [
        ("send", "suppression.events", b"a@example.com"),  # raised: retried
        ("send", "suppression.events", b"a@example.com"),
        ("acked", "suppression.events", b"a@example.com"),
        ("mark", ["s-e1"], []),
    ]
    assert [v["address"] for v in suppressions.values()] == ["a@example.com"]


@pytest.mark.usefixtures("no_backoff")
def test_a_transient_mark_error_is_retried_without_sending_again() -> None:
    """Catches: a failed mark_emitted escaping (the unit would fall back and re-plan) or
    re-running the sends with it; the mark alone is retried."""
    journal = Journal()
    suppressions = FakeTopic("suppression.events", journal)
    store = FakeStore(journal, mark_fail=ConnectionError("redis down"), mark_fail_times=3)
    emit = Emitter(store, suppressions, FakeTopic("sender.alerts", journal))  # type: ignore[arg-type]
    asyncio.run(emit.emit(Outcome(suppressions=[suppression_for(A)])))
    assert len(journal.kinds("send")) == 1
    assert len(journal.kinds("mark")) == 4


def test_an_empty_outcome_sends_and_marks_nothing() -> None:
    """Catches: an Emitter that calls Redis for nothing on every unit (most units trip no
    rule; an empty confirm is a wasted round trip)."""
    journal = Journal()
    emit, _, _ = emitter(journal)
    asyncio.run(emit.emit(Outcome()))
    assert journal == []


def test_an_event_sent_once_is_not_sent_again_when_a_later_unit_returns_it_pending() -> None:
    """Catches: the emitter sending again what it sent a moment ago (a unit's Redis half runs
    while the unit before is in its Kafka half, and can get that unit's events back as still
    pending): one message per event on the topic, while both outcomes are still marked."""
    journal = Journal()
    emit, suppressions, alerts = emitter(journal)
    first = Outcome(suppressions=[suppression_for(A)], alerts=[alert_for(A)])
    second = Outcome(suppressions=[suppression_for(A), suppression_for(B)], alerts=[alert_for(A)])

    async def both() -> None:
        await emit.emit(first)
        await emit.emit(second)

    asyncio.run(both())
    assert [v["event_id"] for v in suppressions.values()] == ["s-e1", "s-e2"]
    assert [v["event_id"] for v in alerts.values()] == ["al-e1"]
    assert journal.kinds("mark") == [
        ("mark", ["s-e1"], ["al-e1"]),
        ("mark", ["s-e1", "s-e2"], ["al-e1"]),
    ]
