"""One rule for an empty message on every input topic: a value of zero bytes, only whitespace
or null (a tombstone) is dead-lettered with reason missing_field, on `mta.log.raw` as on the
three policy topics (README, "Bad input never stops the worker")."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.core.decode import check_not_empty
from pipeline.core.errors import InvalidInput, Reason
from pipeline.stream import agents, normalize
from tests.unit.fakes import FakeStore, Journal, Message, Record
from tests.unit.test_event_batch import Worker

EMPTY: list[Any] = [b"", b" \r\n\t", None]
DECODERS = {
    "delivery.attempts": agents._attempts,
    "engagement.events": agents._engagement,
    "feedback.events": agents._feedback,
}


@pytest.mark.parametrize("value", EMPTY, ids=repr)
def test_an_empty_value_is_missing_field(value: Any) -> None:
    """Catches: the rule itself accepting an empty or blank value."""
    with pytest.raises(InvalidInput) as caught:
        check_not_empty(value or b"")
    assert caught.value.reason is Reason.MISSING_FIELD


@pytest.mark.parametrize("value", [b"x", b" {} ", b"\x00"])
def test_a_value_with_content_passes_the_rule(value: bytes) -> None:
    """Catches: a rule so wide it refuses real input (a NUL byte is content: its own decoder
    judges it)."""
    check_not_empty(value)


@pytest.mark.parametrize("value", EMPTY, ids=repr)
@pytest.mark.parametrize("topic", sorted(DECODERS))
def test_an_empty_message_on_a_policy_topic_is_dead_lettered_as_missing_field(
    topic: str, value: Any
) -> None:
    """Catches: each topic's decoder giving its own reason (bad_json, bad_arf) for the same
    empty message."""
    journal = Journal()
    worker = Worker(journal, FakeStore(journal), decoder=DECODERS[topic])
    worker.process([Record(value, None, Message(topic, 0, 0))])
    assert worker.dead() == [("missing_field", 0)]


@pytest.mark.parametrize("value", EMPTY, ids=repr)
def test_an_empty_message_on_the_raw_topic_is_rejected_as_missing_field(value: Any) -> None:
    """Catches: the normalize agent skipping an empty message silently (no dead letter)
    while the other topics dead-letter it."""
    batch = normalize.NormalizeBatch(None, topics=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as caught:
        batch.parse(Record(value, b"mx1", Message("mta.log.raw", 0, 0)))
    assert caught.value.reason is Reason.MISSING_FIELD
