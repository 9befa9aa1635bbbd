"""The policy agents: `delivery.attempts`, `engagement.events` and `feedback.events` through
the engine, plus the scheduled count-threshold sweep.

Every agent runs with concurrency=1 (faust-streaming #606: with more, faust commits offsets
past events still in flight, which are lost after a crash) and reads in batches with
`take_events`; the body of every batch is `EventBatch.process` (pipeline.stream.apply), whose
module docstring states the order of the steps that makes a batch safe to ack.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pipeline.config import Settings
from pipeline.core.decode import decode_attempts
from pipeline.core.messages import decode_engagement, decode_feedback
from pipeline.core.policies import RuleKind
from pipeline.state import inspect as state_inspect
from pipeline.state import schedule
from pipeline.state.store import Applied, Store
from pipeline.stream.apply import Decoder, Emitter, EventBatch
from pipeline.stream.retry import retry_transient
from pipeline.stream.topics import AppTopics

log = logging.getLogger(__name__)
SWEEP_CHECK_SECONDS = 3600.0
"""How often the leader checks whether the current sweep period has run (see _sweep)."""


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


def _attempts(raw: bytes, received: datetime) -> Sequence[Any]:
    return decode_attempts(raw)


def _engagement(raw: bytes, received: datetime) -> Sequence[Any]:
    return decode_engagement(raw)


def _feedback(raw: bytes, received: datetime) -> Sequence[Any]:
    return decode_feedback(raw, received=received)


def attach(app: Any, settings: Settings, topics: AppTopics, store: Store, emitter: Emitter) -> None:
    """Attach the three policy agents and the sweep timer to `app`."""
    inputs: list[tuple[str, Any, Any, Decoder]] = [
        ("count", topics.attempts, topics.attempts_deadletter, _attempts),
        ("engagement", topics.engagement, topics.engagement_deadletter, _engagement),
        ("feedback", topics.feedback, topics.feedback_deadletter, _feedback),
    ]
    for name, source, deadletter, decode in inputs:
        batch = EventBatch(store, emitter, decode=decode, deadletter_topic=deadletter)
        _agent(app, settings, name, source, batch)
    if settings.sweep_interval_days > 0 and any(
        p.has_kind(RuleKind.COUNT_THRESHOLD) for p in store.book.policies()
    ):
        _sweep_timer(app, settings, store, emitter)


def _agent(app: Any, settings: Settings, name: str, source: Any, batch: EventBatch) -> None:
    async def agent(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
            with unacked_on_cancel(events):
                await batch.process(events)

    agent.__name__ = agent.__qualname__ = name  # faust names the agent after the function
    app.agent(source, name=name, concurrency=1)(agent)


def _sweep_timer(app: Any, settings: Settings, store: Store, emitter: Emitter) -> None:
    interval = settings.sweep_interval_days * 86_400

    # A 90-day timer would never fire in a worker restarted more often than that, so the
    # leader checks hourly whether the current period's sweep is done and runs it if not.
    @app.timer(interval=min(interval, SWEEP_CHECK_SECONDS), on_leader=True)  # type: ignore[untyped-decorator]
    async def sweep_counts() -> None:
        # An exception escaping a faust timer crashes the whole worker (mode's task runner),
        # so a failed run is logged and left unmarked: the next hourly check runs it again.
        try:
            await _sweep_once(store, emitter, interval)
        except Exception as exc:
            log.error("sweep failed error=%s; retried at the next check", type(exc).__name__)
            log.debug("sweep failure", exc_info=True)


async def _sweep_once(store: Store, emitter: Emitter, interval: float) -> None:
    """Run the current period's sweep unless it is marked done; emit, then mark it done."""
    at = datetime.now(UTC)
    # Named by its period: a sweep retried after a crash between Redis and Kafka has the
    # same trigger ids and re-emits the same events.
    run = f"every{interval:.0f}s:{at.timestamp() // interval:.0f}"
    if await retry_transient("sweep", lambda: schedule.is_done(store, run)):
        return
    found = await retry_transient("sweep", lambda: state_inspect.sweep(store, at, run=run))
    await emitter.emit(Applied(suppressions=found))
    await retry_transient("sweep", lambda: schedule.mark_done(store, run, interval * 2))
    log.info("sweep done run=%s suppressed=%d", run, len(found))
