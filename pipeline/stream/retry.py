"""Retry of transient Redis and Kafka errors inside an agent's loop (never ack instead)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError

from pipeline.core.errors import Transient
from pipeline.stream import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BACKOFF = 5.0


async def retry_transient(what: str, step: Callable[[], Awaitable[T]]) -> T:
    """Run `step` until it succeeds, sleeping with exponential backoff (0.1 s doubling up to
    MAX_BACKOFF) after each transient Redis or Kafka error. Never gives up: the batch must not
    be acked unprocessed. Only worker shutdown ends it (CancelledError propagates)."""
    delay = 0.1
    while True:
        try:
            return await step()
        except (Transient, KafkaError, ConnectionError, TimeoutError) as exc:
            metrics.RETRIES.inc()
            log.warning("retrying step=%s error=%s backoff=%.1fs", what, type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
