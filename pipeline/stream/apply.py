"""One unit of one input topic through the policy engine: the policy agents' batch body.

The order of the steps is the durability contract (STYLE.md; quix's Checkpoint.commit):

  1. Decode and validate (`units`, while the previous unit is in Redis). Anything invalid
     goes to the topic's dead-letter topic; await it. An empty message (decode.check_not_empty,
     the rule of every input topic) is invalid: missing_field.
  2. Plan in the core, run the plan in Redis (one round trip), read the replies in the core.
     The functions remember what they counted, so a unit processed again after a crash
     counts nothing twice. An event the functions could not process is dead-lettered alone.
  3. (the unit's tail, which runs while the next unit is in Redis) Send the suppression
     events (deterministic ids) and tenant alerts; await delivery.
  4. Mark them emitted and add them to the tenants' histories (a crash before this
     re-emits the same events, never loses one).
  5. Return; only then does the loop (pipeline.stream.batch) ack the unit's messages.

Steps 3-4 of unit k overlap steps 1-2 of unit k+1; the loop still runs tails in unit order
and acks in unit order. A replay of an event of unit k inside unit k+1 (the same message
produced twice, close together) may then see k's suppression still pending and send it again:
the same event id, as after a crash, never a second decision.

A transient Redis or Kafka error is retried with backoff, never acked. No exception escapes
(faust would restart the agent and can skip the failing offset, faust #315): an unexpected
error falls back to one message at a time, and the one message that causes it is
dead-lettered with reason internal_error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.core.decode import check_not_empty
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.events import Event
from pipeline.core.models import SenderAlert, Suppression
from pipeline.core.outage import OutageAlert
from pipeline.core.plan import BatchPlan, Outcome
from pipeline.state.store import Store
from pipeline.stream import deadletter, faults, metrics
from pipeline.stream.batch import Tail
from pipeline.stream.retry import retry_transient

log = logging.getLogger(__name__)

SENT_MEMORY = 20_000
"""Event ids the emitter remembers having sent: four units of suppressions (~2 MB)."""

Decoder = Callable[[bytes, datetime], Sequence[Event]]
"""Turns one message (value bytes, Kafka timestamp) into events; raises InvalidInput."""


class Emitter:
    """Sends what the engine decided to Kafka, then confirms it in Redis (steps 3 and 4)."""

    def __init__(
        self, store: Store, suppressions: Any, alerts: Any, *, fault_point: str | None = None
    ) -> None:
        self.store = store
        self.suppressions = suppressions
        self.alerts = alerts
        self.fault_point = fault_point
        self._sent: OrderedDict[str, None] = OrderedDict()
        """Ids this process sent (acked) lately: a unit whose Redis half ran while the unit
        before it was still in its Kafka half can get that unit's events back as pending;
        they are not sent twice (after a crash they are, with the same ids)."""

    async def emit(self, outcome: Outcome) -> None:
        """Deliver `outcome`'s suppressions and alerts to Kafka (acks awaited) and mark them
        emitted; retries transient errors forever, so returning means it is durable."""
        if not outcome.suppressions and not outcome.alerts and not outcome.acks:
            return
        faults.reach(self.fault_point, "after_redis")
        await retry_transient("emit", lambda: self._send(outcome))
        faults.reach(self.fault_point, "after_emit")
        await retry_transient(
            "mark",
            lambda: self.store.mark_emitted(outcome.suppressions, outcome.alerts, **_acks(outcome)),
        )

    async def _send(self, outcome: Outcome) -> None:
        suppressions = [s for s in outcome.suppressions if s.event_id not in self._sent]
        alerts = [a for a in outcome.alerts if a.event_id not in self._sent]
        outages = [a for a in outcome.outage_alerts if a.event_id not in self._sent]
        futures = [await self._send_suppression(s) for s in suppressions]
        futures += [await self._send_alert(a) for a in alerts]
        futures += [await self._send_outage(a) for a in outages]
        await asyncio.gather(*futures)
        self._remember([e.event_id for e in suppressions])
        self._remember([e.event_id for e in alerts] + [e.event_id for e in outages])
        for s in suppressions:
            metrics.count_suppression(s)
        _log_suppressions(suppressions)
        for a in alerts:
            metrics.count_sender_alert(a)
            log.warning("sender alert rule=%s tenant=%s rate=%.4f", a.rule, a.tenant, a.rate)
        for o in outages:
            metrics.OUTAGE_ALERTS.labels(o.phase, o.group).inc()
            log.warning("provider outage %s group=%s share=%.4f held=%d", o.phase, o.group,
                        o.share, o.held)  # fmt: skip

    def _remember(self, ids: Sequence[str]) -> None:
        for event_id in ids:
            self._sent[event_id] = None
        while len(self._sent) > SENT_MEMORY:
            self._sent.popitem(last=False)

    async def _send_suppression(self, s: Suppression) -> Any:
        return await self.suppressions.send(key=s.address.encode(), value=orjson.dumps(s.to_json()))

    async def _send_outage(self, a: OutageAlert) -> Any:
        return await self.alerts.send(key=a.key.encode(), value=orjson.dumps(a.to_json()))

    async def _send_alert(self, a: SenderAlert) -> Any:
        return await self.alerts.send(key=a.tenant.encode(), value=orjson.dumps(a.to_json()))


def _acks(outcome: Outcome) -> dict[str, Any]:
    """The outage guard's acks as mark_emitted's keyword, only when there are some."""
    return {"acks": outcome.acks} if outcome.acks else {}


def _log_suppressions(suppressions: Sequence[Suppression]) -> None:
    """One INFO line per emitted batch (counts per rule and reason), one DEBUG line per event.

    Not one INFO line per suppression: at volume that was ~6 % of the worker's CPU (py-spy,
    arrays bench), and the events themselves are on the suppressions topic."""
    if not suppressions:
        return
    tally = Counter((s.action.value, s.rule, s.reason) for s in suppressions)
    log.info(
        "emitted %d suppression events: %s",
        len(suppressions),
        " ".join(f"{a}/{rule}/{reason}={n}" for (a, rule, reason), n in sorted(tally.items())),
    )
    if log.isEnabledFor(logging.DEBUG):
        for s in suppressions:
            log.debug(
                "%s rule=%s reason=%s tenant=%s id=%s",
                s.action.value,
                s.rule,
                s.reason,
                s.tenant,
                s.event_id,
            )


@dataclass
class Unit:
    """Some consecutive messages of one topic, decoded and planned."""

    messages: list[Any]
    events: list[Event] = field(default_factory=list)
    origin: list[Any] = field(default_factory=list)
    """Per event of `events`, the message it came from."""
    dead: list[tuple[Any, InvalidInput]] = field(default_factory=list)
    plan: BatchPlan | None = None
    failure: Exception | None = None
    """An unexpected error while decoding or planning (the unit falls back)."""


class EventBatch:
    """The body of one policy agent (see pipeline.stream.batch.BatchBody)."""

    def __init__(
        self,
        store: Store,
        emitter: Emitter,
        *,
        decode: Decoder,
        deadletter_topic: Any,
        max_events: int = 5000,
    ) -> None:
        self.store = store
        self.emitter = emitter
        self.decode = decode
        self.deadletter_topic = deadletter_topic
        self.max_events = max_events

    def units(self, messages: Sequence[Any]) -> Iterator[Unit]:
        """Cut `messages` into units of at most `max_events` events (a message is never
        split), each decoded and planned when it is asked for."""
        if messages:  # one agent, one topic: count the batch once, not per event
            metrics.EVENTS_CONSUMED.labels(messages[0].message.topic).inc(len(messages))
        unit = Unit([])
        for message in messages:
            unit.messages.append(message)
            try:
                value = _value(message)
                check_not_empty(value)
                decoded = self.decode(value, _received(message))
            except InvalidInput as exc:
                unit.dead.append((message, exc))
            except Exception as exc:
                unit.failure = unit.failure or exc
            else:
                unit.events.extend(decoded)
                unit.origin.extend([message] * len(decoded))
            if len(unit.events) >= self.max_events:
                yield self._planned(unit)
                unit = Unit([])
        if unit.messages:
            yield self._planned(unit)

    def _planned(self, unit: Unit) -> Unit:
        if unit.failure is None:
            try:
                unit.plan = self.store.plan(unit.events)
            except Exception as exc:
                unit.failure = exc
        return unit

    def messages_of(self, unit: Unit) -> Sequence[Any]:
        """The faust events of `unit`."""
        return unit.messages

    async def finish(self, unit: Unit) -> Tail | None:
        """Run steps 1-2 for `unit` and return the tail that runs steps 3-4 (None when the
        unit fell back to one message at a time, which did all of it)."""
        metrics.BATCH_SIZE.observe(len(unit.events))
        started = time.perf_counter()
        try:
            if unit.failure is not None:
                raise unit.failure
            outcome = await self._apply(unit)
        except Exception as exc:
            await self._fell_back(unit, exc)
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
            return None

        async def tail() -> None:
            try:
                await self._dead_letter_failed(unit, outcome)
                await self.emitter.emit(outcome)
            except Exception as exc:
                # Redis applied the unit already: doing it again message by message changes
                # nothing there (the functions remember it) and sends what is still owed.
                await self._fell_back(unit, exc)
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

        return tail

    async def _fell_back(self, unit: Unit, exc: Exception) -> None:
        # The exception's text may quote the input (an address): type at ERROR, the
        # traceback only at DEBUG (no address at INFO or above, STYLE.md habit 10).
        log.debug("internal error", exc_info=True)
        await self._fallback(unit.messages, exc)

    async def _apply(self, unit: Unit) -> Outcome:
        assert unit.plan is not None
        plan = unit.plan
        await asyncio.gather(
            *(deadletter.send_dead_letter(self.deadletter_topic, m, e) for m, e in unit.dead)
        )
        metrics.count_planned(plan.events, plan.verdicts)
        replies = await retry_transient(
            "redis", lambda: metrics.timed(metrics.REDIS_SECONDS, self.store.run(plan.calls))
        )
        outcome = self.store.read(plan, replies)
        if outcome.skipped:  # Redis Cluster: groups a node did not serve (a slot moved)
            skipped = outcome
            outcome = await retry_transient("redis", lambda: self.store.resend(plan, skipped))
        metrics.observe_decision_lag(plan.events)
        metrics.observe_held(outcome.held)
        return outcome

    async def _dead_letter_failed(self, unit: Unit, outcome: Outcome) -> None:
        """An event the functions failed on goes to the dead-letter topic on its own (the
        rest of its message was applied)."""
        for event, error in outcome.failed:
            message = unit.origin[unit.events.index(event)]
            log.error("event dead-lettered reason=internal_error error=%s", error[:80])
            raw = orjson.dumps(_event_json(event))
            invalid = InvalidInput(Reason.INTERNAL, "internal error")
            await deadletter.send_dead_letter(self.deadletter_topic, message, invalid, raw=raw)

    async def _fallback(self, messages: Sequence[Any], exc: Exception) -> None:
        if len(messages) == 1:
            error = InvalidInput(Reason.INTERNAL, "internal error")
            await deadletter.send_dead_letter(self.deadletter_topic, messages[0], error)
            log.error("event dead-lettered reason=internal_error error=%s", type(exc).__name__)
            return
        log.error("batch failed error=%s; processing its messages one by one", type(exc).__name__)
        for message in messages:
            for unit in self.units([message]):
                tail = await self.finish(unit)
                if tail is not None:
                    await tail()


def _event_json(event: Event) -> dict[str, Any]:
    """The event as a replay line (`bounceguard replay` reads the dead letter back)."""
    return {"type": "attempt", **event.to_json()}


def _value(event: Any) -> bytes:
    value = event.value
    return value if isinstance(value, bytes) else bytes(value or b"")


def _received(event: Any) -> datetime:
    """The Kafka timestamp of the message (the event time of last resort)."""
    stamp = event.message.timestamp
    return datetime.fromtimestamp(stamp, UTC) if stamp else datetime.now(UTC)
