"""retry_transient: transient errors are retried until the step succeeds, permanent Kafka
errors are raised at once (no partition stalls forever on a record that can never be sent)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from pipeline.core.errors import Transient
from pipeline.stream import retry


def run_flaky(failures: list[BaseException]) -> tuple[str, int]:
    calls = 0

    async def step() -> str:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)
        return "done"

    result = asyncio.run(retry.retry_transient("test", step))
    return result, calls


def test_transient_errors_are_retried_until_the_step_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retry, "MAX_BACKOFF", 0.0)
    errors: list[BaseException] = [Transient("redis down"), KafkaConnectionError(), TimeoutError()]
    assert run_flaky(errors) == ("done", 4)


def test_a_record_too_large_for_kafka_is_raised_not_retried() -> None:
    with pytest.raises(MessageSizeTooLargeError):
        run_flaky([MessageSizeTooLargeError()])
