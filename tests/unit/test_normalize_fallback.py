"""The normalize agent's batch body: when producing a batch fails for good (a Kafka error no
retry cures), it retries its lines one by one, so only the line at fault is dead-lettered and
the good lines still reach delivery.attempts. Kafka is faked here; the agent against the real
broker is tests/integration/test_normalize.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from pipeline.core.errors import InvalidInput
from pipeline.core.models import Attempt
from pipeline.stream import normalize
from tests.unit.test_no_address_in_logs import Event, process

LINE = (
    "2026-03-02T09:00:0{n}+00:00 mx1 postfix/smtp[4321]: 3F2A1C0B1{n}: to=<{who}@example.com>, "
    "relay=mx.example.com[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=5.1.1, status=bounced "
    "(host mx.example.com[192.0.2.1] said: 550 5.1.1 user unknown (in reply to RCPT TO command))"
)


def test_a_batch_that_cannot_be_produced_is_retried_line_by_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    produced: list[str] = []
    dead: list[str] = []

    async def produce(self: Any, attempts: Sequence[Attempt]) -> None:
        if any(a.recipient.startswith("huge") for a in attempts):
            raise MessageSizeTooLargeError()
        produced.extend(a.recipient for a in attempts)

    async def dead_letter(self: Any, event: Any, error: InvalidInput) -> None:
        dead.append(event.value.decode())

    monkeypatch.setattr(normalize.NormalizeBatch, "_produce", produce)
    monkeypatch.setattr(normalize.NormalizeBatch, "_dead_letter", dead_letter)

    class Topics:
        class raw:  # stands in for a faust topic
            @staticmethod
            def get_topic_name() -> str:
                return "mta.log.raw"

    batch = normalize.NormalizeBatch(None, Topics())  # type: ignore[arg-type]
    lines = [LINE.format(n=n, who=who) for n, who in enumerate(["a", "huge", "b"])]
    asyncio.run(process(batch, [Event(line.encode()) for line in lines]))
    assert produced == ["a@example.com", "b@example.com"]
    assert dead == [lines[1]]
