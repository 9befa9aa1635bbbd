"""An unexpected error while handling an event must not put the event's address in a log line
at INFO or above (STYLE.md habit 10): exception messages often quote the input they choke on,
so the worker logs the exception's type there and keeps the traceback for DEBUG."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from pipeline.core.errors import InvalidInput
from pipeline.stream import apply, normalize
from tests.unit.fakes import finish_whole

ADDRESS = "secret.person@example.com"


@dataclass
class Message:
    topic: str = "mta.log.raw"
    partition: int = 0
    offset: int = 7
    timestamp: float = 1_772_442_000.0


@dataclass
class Event:
    value: bytes
    key: bytes | None = None
    message: Message = field(default_factory=Message)


class BrokenParser:
    def feed(self, line: Any) -> list[Any]:
        raise ValueError(f"cannot read recipient {ADDRESS!r}")


async def process(batch: Any, messages: list[Any]) -> None:
    """What pipeline.stream.batch.run_batches does with one take, minus the acks."""
    for unit in batch.units(messages):
        await finish_whole(batch, unit)


def leaked(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() + (r.exc_text or "") for r in caplog.records if r.levelno >= logging.INFO
    ]


def test_a_parser_bug_does_not_log_the_address(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(normalize, "make_parser", lambda *a, **k: BrokenParser())
    batch = normalize.NormalizeBatch(None, topics=None)  # type: ignore[arg-type]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InvalidInput):
        batch.parse(Event(f"to=<{ADDRESS}>".encode()))
    for record in caplog.records:  # format the tracebacks the handlers would print
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
    assert [m for m in leaked(caplog) if ADDRESS in m] == []


def test_an_internal_error_in_a_batch_does_not_log_the_address(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def decode(raw: bytes, received: datetime) -> list[Any]:
        raise KeyError(ADDRESS)

    sent: list[Any] = []

    async def dead_letter(topic: Any, event: Any, error: InvalidInput) -> None:
        sent.append(error.reason)

    monkeypatch.setattr(apply.deadletter, "send_dead_letter", dead_letter)
    batch = apply.EventBatch(None, None, decode=decode, deadletter_topic=None)  # type: ignore[arg-type]
    caplog.set_level(logging.DEBUG)
    asyncio.run(process(batch, [Event(b"{}"), Event(b"{}")]))
    for record in caplog.records:
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
    assert len(sent) == 2  # each event dead-lettered as internal_error
    assert [m for m in leaked(caplog) if ADDRESS in m] == []
