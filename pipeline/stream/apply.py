"""One batch of one input topic through the policy engine: the agents' shared body.

The order of the steps is the durability contract (STYLE.md; quix's Checkpoint.commit):

  1. Decode and validate. Anything invalid goes to the topic's dead-letter topic; await it.
  2. `Store.apply`: one Redis round trip; the Lua scripts dedupe by event id, so processing
     a batch again after a crash counts nothing twice.
  3. Send the suppression events (deterministic ids) and tenant alerts; await delivery.
  4. Mark the suppressions as emitted and add them to the tenants' histories (a crash before
     this re-emits the same events, never loses one).
  5. Return, and only then does faust ack the batch and let the offset move.

A transient Redis or Kafka error is retried with backoff inside the loop, never acked. No
exception escapes (faust would restart the agent and can skip the failing offset, faust
#315): an unexpected error falls back to one event at a time, and the one event that causes
it is dead-lettered with reason internal_error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.events import Event, Feedback
from pipeline.core.models import Attempt, SenderAlert, Suppression
from pipeline.state import history
from pipeline.state.store import Applied, Store
from pipeline.stream import deadletter, faults, metrics
from pipeline.stream.retry import retry_transient

log = logging.getLogger(__name__)

Decoder = Callable[[bytes, datetime], Sequence[Event]]
"""Turns one message (value bytes, Kafka timestamp) into events; raises InvalidInput."""


class Emitter:
    """Sends what the engine decided to Kafka, then records it in Redis (steps 3 and 4)."""

    def __init__(
        self, store: Store, suppressions: Any, alerts: Any, *, fault_point: str | None = None
    ) -> None:
        self.store = store
        self.suppressions = suppressions
        self.alerts = alerts
        self.fault_point = fault_point

    async def emit(self, applied: Applied) -> None:
        """Deliver `applied` to Kafka (acks awaited) and mark it emitted; retries transient
        errors forever, so returning means it is durable."""
        if not applied.suppressions and not applied.alerts:
            return
        faults.reach(self.fault_point, "after_redis")
        await retry_transient("emit", lambda: self._send(applied))
        faults.reach(self.fault_point, "after_emit")
        await retry_transient("mark", lambda: self._mark(applied.suppressions))

    async def _send(self, applied: Applied) -> None:
        futures = [await self._send_suppression(s) for s in applied.suppressions]
        futures += [await self._send_alert(a) for a in applied.alerts]
        await asyncio.gather(*futures)
        for s in applied.suppressions:
            metrics.count_suppression(s)
            log.info(
                "%s rule=%s reason=%s tenant=%s id=%s",
                s.action.value,
                s.rule,
                s.reason,
                s.tenant,
                s.event_id,
            )
        for a in applied.alerts:
            metrics.count_sender_alert(a)
            log.warning("sender alert rule=%s tenant=%s rate=%.4f", a.rule, a.tenant, a.rate)

    async def _send_suppression(self, s: Suppression) -> Any:
        return await self.suppressions.send(key=s.address.encode(), value=orjson.dumps(s.to_json()))

    async def _send_alert(self, a: SenderAlert) -> Any:
        return await self.alerts.send(key=a.tenant.encode(), value=orjson.dumps(a.to_json()))

    async def _mark(self, suppressions: Sequence[Suppression]) -> None:
        await history.mark_emitted_and_record(self.store, suppressions)


class EventBatch:
    """Processes one batch of events of one topic (an agent's loop body)."""

    def __init__(
        self, store: Store, emitter: Emitter, *, decode: Decoder, deadletter_topic: Any
    ) -> None:
        self.store = store
        self.emitter = emitter
        self.decode = decode
        self.deadletter_topic = deadletter_topic

    async def process(self, events: Sequence[Any]) -> None:
        """Run steps 1-4 for faust `events`; returns only when all of them are durably
        handled (so faust may ack them)."""
        metrics.BATCH_SIZE.observe(len(events))
        try:
            await metrics.timed(metrics.BATCH_SECONDS, self._process(events))
        except Exception as exc:
            # The exception's text may quote the input (an address): type at ERROR, the
            # traceback only at DEBUG (no address at INFO or above, STYLE.md habit 10).
            log.debug("internal error", exc_info=True)
            if len(events) == 1:
                error = InvalidInput(Reason.INTERNAL, "internal error")
                await deadletter.send_dead_letter(self.deadletter_topic, events[0], error)
                log.error("event dead-lettered reason=internal_error error=%s", type(exc).__name__)
                return
            log.error("batch failed error=%s; processing its events one by one", type(exc).__name__)
            for event in events:
                await self.process([event])

    async def _process(self, events: Sequence[Any]) -> None:
        decoded: list[Event] = []
        dead = []
        if events:  # one agent, one topic: count the batch once, not per event
            metrics.EVENTS_CONSUMED.labels(events[0].message.topic).inc(len(events))
        for event in events:
            try:
                decoded.extend(self.decode(_value(event), _received(event)))
            except InvalidInput as exc:
                dead.append(deadletter.send_dead_letter(self.deadletter_topic, event, exc))
        await asyncio.gather(*dead)
        metrics.count_attempts(e for e in decoded if isinstance(e, Attempt))
        metrics.count_feedback(e for e in decoded if isinstance(e, Feedback))
        applied = await retry_transient(
            "redis", lambda: metrics.timed(metrics.REDIS_SECONDS, self.store.apply(decoded))
        )
        metrics.observe_decision_lag(decoded)
        await self.emitter.emit(applied)


def _value(event: Any) -> bytes:
    value = event.value
    return value if isinstance(value, bytes) else bytes(value or b"")


def _received(event: Any) -> datetime:
    """The Kafka timestamp of the message (the event time of last resort)."""
    stamp = event.message.timestamp
    return datetime.fromtimestamp(stamp, UTC) if stamp else datetime.now(UTC)
