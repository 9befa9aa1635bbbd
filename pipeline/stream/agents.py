"""The policy agents: `delivery.attempts`, `engagement.events` and `feedback.events` through
the engine, plus the scheduled count-threshold sweep.

Every agent runs with concurrency=1 (faust-streaming #606: with more, faust commits offsets
past events still in flight, which are lost after a crash) and consumes through
`pipeline.stream.batch.run_batches` (two units in flight, each acked once durable); the body
of every unit is `EventBatch` (pipeline.stream.apply), whose module docstring states the
order of the steps that makes a unit safe to ack.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pipeline.config import Settings
from pipeline.core.decode import decode_attempts
from pipeline.core.messages import decode_engagement, decode_feedback
from pipeline.core.plan import Outcome
from pipeline.core.policies import RuleKind
from pipeline.state import queries, schedule
from pipeline.state.store import Store
from pipeline.stream.apply import Decoder, Emitter, EventBatch
from pipeline.stream.batch import run_batches
from pipeline.stream.retry import retry_transient
from pipeline.stream.topics import AppTopics

log = logging.getLogger(__name__)
SWEEP_CHECK_SECONDS = 3600.0
"""How often the leader checks whether the current sweep period has run (see _sweep)."""


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
        batch = EventBatch(
            store,
            emitter,
            decode=decode,
            deadletter_topic=deadletter,
            max_events=settings.batch_attempts,
        )
        _agent(app, settings, name, source, batch)
    if settings.sweep_interval_days > 0 and any(
        p.has_kind(RuleKind.COUNT_THRESHOLD) for p in store.book.policies()
    ):
        _sweep_timer(app, settings, store, emitter)


def _agent(app: Any, settings: Settings, name: str, source: Any, batch: EventBatch) -> None:
    async def agent(stream: Any) -> None:
        await run_batches(stream, batch, take=settings.batch_size, within=settings.batch_within)

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
    found = await retry_transient("sweep", lambda: queries.sweep(store, at, run=run))
    await emitter.emit(Outcome(suppressions=found))
    await retry_transient("sweep", lambda: schedule.mark_done(store, run, interval * 2))
    log.info("sweep done run=%s suppressed=%d", run, len(found))
