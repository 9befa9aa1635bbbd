"""Recording fakes of what the stream glue talks to (Kafka topics, the Store, faust's stream).

Every fake appends its calls to one shared `Journal`, in the order they happen, so a test can
assert the ORDER of the durability steps (dead letters acked before Redis, suppressions acked
before they are marked emitted, a unit acked after its finish returned) rather than only that
each step happened. Kafka deliveries complete a few loop turns after `send` returns, as
aiokafka's do, so code that forgets to await a delivery future is caught by the order.

They stop at this layer: the same steps against the real broker and Redis are in
tests/integration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.core.events import Event
from pipeline.core.models import Action, Scope, SenderAlert, Suppression
from pipeline.core.plan import BatchPlan, Call, Outcome

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Entry = tuple[Any, ...]


class Journal(list[Entry]):
    """What happened, in order: ("send", topic, key), ("acked", topic, key), ("run", ids)..."""

    def kinds(self, *names: str) -> list[Entry]:
        """The entries whose first item is one of `names`, in order."""
        return [e for e in self if e[0] in names]

    def position(self, entry: Entry) -> int:
        """Index of `entry` (fails the test when it never happened)."""
        assert entry in self, f"{entry} never happened: {list(self)}"
        return self.index(entry)


async def ticks(n: int) -> None:
    """Let the event loop turn `n` times."""
    for _ in range(n):
        await asyncio.sleep(0)


# -- faust's message and event ---------------------------------------------------------------


@dataclass
class Message:
    """The parts of a faust Message the glue reads."""

    topic: str = "delivery.attempts"
    partition: int = 0
    offset: int = 0
    timestamp: float = T0.timestamp()


@dataclass
class Record:
    """The parts of a faust Event the glue reads."""

    value: bytes
    key: bytes | None = None
    message: Message = field(default_factory=Message)


def records(values: Iterable[bytes], topic: str = "delivery.attempts") -> list[Record]:
    """One Record per value, at offsets 0, 1, 2... of partition 0."""
    return [Record(v, None, Message(topic, 0, n)) for n, v in enumerate(values)]


def attempt_json(event_id: str, address: str = "a@example.com", **extra: Any) -> dict[str, Any]:
    """A valid delivery.attempts element."""
    return {
        "event_id": event_id,
        "ts": "2026-03-02T09:00:00Z",
        "recipient": address,
        "outcome": "bounced",
        "smtp_code": 550,
        "diagnostic": "550 5.1.1 user unknown",
        **extra,
    }


def attempt_message(*event_ids: str) -> bytes:
    """A delivery.attempts message: one object, or an array when given several ids."""
    docs = [attempt_json(i, f"{i}@example.com") for i in event_ids]
    return orjson.dumps(docs[0] if len(docs) == 1 else docs)


# -- Kafka -----------------------------------------------------------------------------------


class FakeTopic:
    """A faust topic. `send` journals ("send", name, key) and returns a delivery future that
    the "broker" resolves `delay` loop turns later, journaling ("acked", name, key) then (or
    fails with `reject`). `fail` makes `send` itself raise (a full buffer, a closed producer)
    for its first `fail_times` calls."""

    def __init__(
        self,
        name: str,
        journal: Journal,
        *,
        delay: int = 3,
        fail: BaseException | None = None,
        fail_times: int = 1_000_000,
        reject: BaseException | None = None,
    ) -> None:
        self.name = name
        self.journal = journal
        self.delay = delay
        self.fail = fail
        self.fail_times = fail_times
        self.reject = reject
        self.sent: list[tuple[bytes | None, bytes]] = []
        self._brokers: set[asyncio.Task[None]] = set()

    def get_topic_name(self) -> str:
        return self.name

    async def send(
        self, *, key: bytes | None = None, value: bytes = b"", partition: int | None = None
    ) -> asyncio.Future[Any]:
        self.journal.append(("send", self.name, key))
        if self.fail is not None and self.fail_times > 0:
            self.fail_times -= 1
            raise self.fail
        self.sent.append((key, value))
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._deliver(delivery, key))
        self._brokers.add(task)
        task.add_done_callback(self._brokers.discard)
        return delivery

    async def _deliver(self, delivery: asyncio.Future[Any], key: bytes | None) -> None:
        await ticks(self.delay)
        if self.reject is not None:
            self.journal.append(("rejected", self.name, key))
            delivery.set_exception(self.reject)
            return
        self.journal.append(("acked", self.name, key))
        delivery.set_result(("metadata", self.name, key))

    def values(self) -> list[dict[str, Any]]:
        """The JSON values sent, decoded."""
        return [orjson.loads(v) for _, v in self.sent]


# -- the Store -------------------------------------------------------------------------------


def suppression_for(event: Event, rule: str = "immediate_hard") -> Suppression:
    """The suppression a fake store says `event` tripped (id derived from the event)."""
    return Suppression(
        event_id=f"s-{event.event_id}",
        action=Action.SUPPRESSED,
        address=event.recipient,
        tenant=event.tenant,
        scope=Scope.TENANT,
        list_id=None,
        reason="user_unknown",
        rule=rule,
        count=1,
        threshold=1,
        policy="default",
        tag=None,
        trigger_event_id=event.event_id,
        ts=event.ts,
    )


def alert_for(event: Event) -> SenderAlert:
    """A tenant alert a fake store says `event` tripped."""
    return SenderAlert(
        event_id=f"al-{event.event_id}",
        tenant=event.tenant,
        rule="complaint_rate",
        policy="default",
        count=3,
        sent=100,
        rate=0.03,
        max_rate=0.001,
        window_days=1.0,
        ts=event.ts,
    )


def ids(events: Sequence[Event]) -> list[str]:
    return [e.event_id for e in events]


class FakeStore:
    """pipeline.state.store.Store's batch half: `plan` (sync, pure), `run` (one round trip),
    `read` (sync, pure), `mark_emitted`. Journals ("plan", ids), ("run", ids),
    ("mark", suppression ids, alert ids).

    Behaviour by event id: `plan_fails` / `run_fails` make plan / run raise RuntimeError for
    any batch holding one of them (an unexpected bug, not a Transient); `trips` /
    `alerting` make read() report a suppression / alert for the event; `failed` makes the
    functions report the event as failed (outcome.failed); `mark_fail` is raised by the
    first `mark_fail_times` calls of mark_emitted."""

    def __init__(
        self,
        journal: Journal,
        *,
        trips: Iterable[str] = (),
        alerting: Iterable[str] = (),
        failed: Iterable[str] = (),
        plan_fails: Iterable[str] = (),
        run_fails: Iterable[str] = (),
        mark_fail: BaseException | None = None,
        mark_fail_times: int = 1_000_000,
    ) -> None:
        self.journal = journal
        self.trips = set(trips)
        self.alerting = set(alerting)
        self.failed = set(failed)
        self.plan_fails = set(plan_fails)
        self.run_fails = set(run_fails)
        self.mark_fail = mark_fail
        self.mark_fail_times = mark_fail_times

    def plan(self, events: Sequence[Event]) -> BatchPlan:
        self.journal.append(("plan", ids(events)))
        if self.plan_fails & set(ids(events)):
            raise RuntimeError("plan bug")
        calls = [Call("apply", list(ids(events)))] if events else []
        return BatchPlan(list(events), [None] * len(events), calls, [list(events)])

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        batch = [str(a) for call in calls for a in call.args]
        self.journal.append(("run", batch))
        await ticks(1)
        if self.run_fails & set(batch):
            raise RuntimeError("ERR a reply the code does not expect")
        self.journal.append(("ran", batch))
        return [b"[]" for _ in calls]

    def read(self, plan: BatchPlan, replies: Sequence[Any]) -> Outcome:
        return Outcome(
            suppressions=[suppression_for(e) for e in plan.events if e.event_id in self.trips],
            alerts=[alert_for(e) for e in plan.events if e.event_id in self.alerting],
            failed=[(e, "boom") for e in plan.events if e.event_id in self.failed],
        )

    async def mark_emitted(
        self, suppressions: Sequence[Suppression], alerts: Sequence[SenderAlert] = ()
    ) -> None:
        self.journal.append(
            ("mark", [s.event_id for s in suppressions], [a.event_id for a in alerts])
        )
        if self.mark_fail is not None and self.mark_fail_times > 0:
            self.mark_fail_times -= 1
            raise self.mark_fail


async def finish_whole(body: Any, unit: Any) -> None:
    """A unit through `body.finish` and then its tail, if it returned one (what
    pipeline.stream.batch.run_batches does for one unit, minus the acks and the overlap)."""
    tail = await body.finish(unit)
    if tail is not None:
        await tail()
