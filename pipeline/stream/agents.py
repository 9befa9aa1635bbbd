"""The agents: decode -> dead letters -> Redis -> suppression events -> ack.

Every agent runs with concurrency=1 (faust-streaming #606: with more, faust commits offsets
past events still in flight, which are lost after a crash) and reads in batches with
`take_events`. A batch is acked by faust only after the loop body returns, so the order of
the steps inside `CountBatch.process` is the durability contract:

  1. Decode and validate. Anything invalid goes to the dead-letter topic; await delivery.
  2. Count in Redis (`Store.apply_attempts`): one round trip; the Lua script dedupes by event
     id, so re-processing a batch after a crash counts nothing twice.
  3. Send the suppression events (deterministic ids) and await delivery, then mark them as
     emitted in Redis (a crash before the mark re-emits the same event, never loses it).
  4. Return, and only then does faust ack the batch and let the offset move.

A transient Redis or Kafka error in steps 1-3 is retried with backoff inside the loop, never
acked. No exception may escape the agent (faust restarts it and the failing offset can be
skipped: faust-streaming #315); an unexpected error falls back to one event at a time so the
one event that causes it is dead-lettered (reason internal_error) and the rest go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.core.decode import decode_attempts
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt, Suppression
from pipeline.core.policies import RuleKind, load_book
from pipeline.state import inspect as state_inspect
from pipeline.state.store import Store
from pipeline.stream import deadletter, metrics
from pipeline.stream.retry import retry_transient
from pipeline.stream.topics import AppTopics

log = logging.getLogger(__name__)


class CountBatch:
    """Processes one batch of `delivery.attempts` events (the count agent's body)."""

    def __init__(self, store: Store, topics: AppTopics) -> None:
        self.store = store
        self.topics = topics

    async def process(self, events: Sequence[Any]) -> None:
        """Run steps 1-3 for `events`; returns only when all of them are durably handled."""
        metrics.BATCH_SIZE.observe(len(events))
        try:
            await metrics.timed(metrics.BATCH_SECONDS, self._process(events))
        except Exception:
            if len(events) == 1:
                await self._dead_letter(events[0], InvalidInput(Reason.INTERNAL, "internal error"))
                log.exception("event dead-lettered after an internal error")
                return
            log.exception("batch failed; processing its events one by one")
            for event in events:
                await self.process([event])

    async def _process(self, events: Sequence[Any]) -> None:
        attempts: list[Attempt] = []
        dead: list[Awaitable[Any]] = []
        for event in events:
            metrics.EVENTS_CONSUMED.labels(self.topics.attempts.get_topic_name()).inc()
            try:
                attempts.extend(decode_attempts(event.value))
            except InvalidInput as exc:
                dead.append(self._dead_letter(event, exc))
        await asyncio.gather(*dead)  # step 1
        metrics.count_attempts(attempts)
        suppressions = await retry_transient(  # step 2
            "redis",
            lambda: metrics.timed(metrics.REDIS_SECONDS, self.store.apply_attempts(attempts)),
        )
        metrics.observe_decision_lag(attempts)
        await retry_transient("emit", lambda: self._emit(suppressions))  # step 3
        await retry_transient("mark", lambda: self.store.mark_emitted(suppressions))

    async def _emit(self, suppressions: Sequence[Suppression]) -> None:
        futures = []
        for s in suppressions:
            futures.append(
                await self.topics.suppressions.send(
                    key=s.address.encode(), value=orjson.dumps(s.to_json())
                )
            )
        await asyncio.gather(*futures)
        for s in suppressions:
            metrics.count_suppression(s)
            log.info(
                "suppressed rule=%s reason=%s tenant=%s id=%s",
                s.rule,
                s.reason,
                s.tenant,
                s.event_id,
            )

    async def _dead_letter(self, event: Any, error: InvalidInput) -> None:
        await deadletter.send_dead_letter(self.topics.attempts_deadletter, event, error)


@contextmanager
def unacked_on_cancel(events: Sequence[Any]) -> Iterator[None]:
    """Keep a batch unacked when its processing is cancelled (worker shutdown mid-retry).

    faust's take_events acks the buffered events in a `finally:` after the yield, so closing
    the generator on shutdown would ack, and then commit, a batch that never reached Redis or
    Kafka. Marking the messages as already acked makes that final ack a no-op (faust's
    Message.ack returns early for acked messages), so their offsets are never committed and
    the next worker reads them again. Only the BaseException path does this: a normal return
    leaves the ack to faust. (With faust-streaming 0.15.3 our SIGTERM-during-outage test also
    passes without this guard, since the consumer stops before the generator is closed; the
    guard stays because the finally-ack is in faust's code and nothing promises that order.)
    """
    try:
        yield
    except BaseException:
        for event in events:
            event.message.acked = True
        raise


def attach(app: Any, settings: Settings, topics: AppTopics) -> None:
    """Attach the agents to `app`; the Redis store is created lazily on first use. Tenants are
    judged by the policy file (BOUNCEGUARD_POLICY_FILE) or else the default preset; the
    count-threshold sweep runs every `sweep_interval_days` on the leader."""
    store = Store.from_url(
        settings.redis_url,
        load_book(settings.default_policy, settings.policy_file),
        namespace=settings.namespace,
        state_ttl_days=settings.state_ttl_days,
        dedupe_ttl_days=settings.dedupe_ttl_days,
        bounce_log_size=settings.bounce_log_size,
        delivered_log_hours=settings.delivered_log_hours,
    )
    batch = CountBatch(store, topics)

    @app.agent(topics.attempts, concurrency=1)  # type: ignore[untyped-decorator]
    async def count(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
            with unacked_on_cancel(events):
                await batch.process(events)

    if settings.sweep_interval_days > 0 and any(
        p.has_kind(RuleKind.COUNT_THRESHOLD) for p in store.book.policies()
    ):
        interval = settings.sweep_interval_days * 86_400

        @app.timer(interval=interval, on_leader=True)  # type: ignore[untyped-decorator]
        async def sweep_counts() -> None:
            # The run is named by its period, so a sweep retried after a crash between Redis
            # and Kafka has the same trigger ids and re-emits the same events.
            at = datetime.now(UTC)
            run = f"every{interval:.0f}s:{at.timestamp() // interval:.0f}"
            found = await retry_transient("sweep", lambda: state_inspect.sweep(store, at, run=run))
            await retry_transient("emit", lambda: batch._emit(found))
            await retry_transient("mark", lambda: store.mark_emitted(found))
            log.info("sweep done run=%s suppressed=%d", run, len(found))
