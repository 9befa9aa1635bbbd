"""Retry of transient Redis and Kafka errors inside an agent's loop (never ack instead)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)

from pipeline.core.errors import Transient
from pipeline.stream import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BACKOFF = 5.0
# Kafka errors that no retry can cure (the record or the configuration is wrong): raised, so
# the batch falls back to one event at a time and the culprit is dead-lettered, instead of
# stalling its partition forever. Not aiokafka's `retriable` flag: the base KafkaError and
# several errors seen during a broker restart say retriable=False yet pass on their own.
PERMANENT_KAFKA_ERRORS = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)


async def retry_transient(what: str, step: Callable[[], Awaitable[T]]) -> T:
    """Run `step` until it succeeds, sleeping with exponential backoff (0.1 s doubling up to
    MAX_BACKOFF) after each transient Redis or Kafka error. Never gives up: the batch must not
    be acked unprocessed. Only worker shutdown ends it (CancelledError propagates), or one of
    PERMANENT_KAFKA_ERRORS, which is raised."""
    delay = 0.1
    while True:
        try:
            return await step()
        except PERMANENT_KAFKA_ERRORS:
            raise
        except (Transient, KafkaError, ConnectionError, TimeoutError) as exc:
            metrics.RETRIES.inc()
            log.warning("retrying step=%s error=%s backoff=%.1fs", what, type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
