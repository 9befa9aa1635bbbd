"""EventBatch and Emitter details the order tests do not pin: the log lines operators read,
the fault points and retry step names, unit cutting at max_events, what a message's value and
timestamp become, and the exact dead letter of an internal error (written against
`make mutants` survivors; see docs/mutants.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import pytest

from pipeline.core.decode import decode_attempts
from pipeline.core.events import Event
from pipeline.core.plan import BatchPlan, Outcome
from pipeline.stream import apply, metrics
from pipeline.stream.apply import Emitter, EventBatch
from tests.unit.fakes import (
    FakeStore,
    FakeTopic,
    Journal,
    Message,
    Record,
    attempt_message,
    finish_whole,
    records,
)

T = TypeVar("T")
DLQ = "delivery.attempts.deadletter"


def decode(raw: bytes, received: datetime) -> Sequence[Any]:
    return decode_attempts(raw)


class Rig:
    def __init__(
        self,
        store: FakeStore,
        *,
        decoder: Callable[[bytes, datetime], Sequence[Any]] = decode,
        max_events: int = 100,
        fault_point: str | None = None,
    ) -> None:
        self.journal = store.journal
        self.deadletter = FakeTopic(DLQ, self.journal, delay=1)
        self.suppressions = FakeTopic("suppression.events", self.journal, delay=1)
        self.alerts = FakeTopic("sender.alerts", self.journal, delay=1)
        self.emitter = Emitter(
            store,  # type: ignore[arg-type]
            self.suppressions,
            self.alerts,
            fault_point=fault_point,
        )
        self.batch = EventBatch(
            store,  # type: ignore[arg-type]
            self.emitter,
            decode=decoder,
            deadletter_topic=self.deadletter,
            max_events=max_events,
        )

    def process(self, messages: list[Record]) -> list[list[int]]:
        units: list[list[int]] = []

        async def take() -> None:
            for unit in self.batch.units(messages):
                units.append([m.message.offset for m in unit.messages])
                await finish_whole(self.batch, unit)

        asyncio.run(take())
        return units

    def dead(self) -> list[dict[str, Any]]:
        return self.deadletter.values()


def test_the_default_unit_size() -> None:
    batch = EventBatch(None, None, decode=decode, deadletter_topic=None)  # type: ignore[arg-type]
    assert batch.max_events == 5000


def test_a_unit_closes_when_it_reaches_max_events() -> None:
    rig = Rig(FakeStore(Journal()), max_events=2)
    units = rig.process(records([attempt_message(f"e{i}") for i in range(5)]))
    assert units == [[0, 1], [2, 3], [4]]


def test_the_batch_is_counted_once_by_its_topic() -> None:
    counter = metrics.EVENTS_CONSUMED.labels("feedback.events")
    before = counter._value.get()
    rig = Rig(FakeStore(Journal()))
    rig.process(records([attempt_message("e1"), attempt_message("e2")], topic="feedback.events"))
    assert counter._value.get() == before + 2


def test_the_decoder_gets_the_value_bytes_and_the_kafka_time() -> None:
    seen: list[tuple[bytes, datetime]] = []

    def spy(raw: bytes, received: datetime) -> Sequence[Any]:
        seen.append((raw, received))
        return []

    rig = Rig(FakeStore(Journal()), decoder=spy)
    stamp = datetime(2026, 3, 2, 9, 0, 1, tzinfo=UTC).timestamp()
    rig.process(
        [
            Record(b"a", None, Message(offset=0, timestamp=stamp)),
            # A null value is an empty message: dead-lettered before any decoder.
            Record(None, None, Message(offset=1, timestamp=stamp)),  # type: ignore[arg-type]
            Record(bytearray(b"c"), None, Message(offset=2, timestamp=stamp)),  # type: ignore[arg-type]
        ]
    )
    at = datetime(2026, 3, 2, 9, 0, 1, tzinfo=UTC)
    assert seen == [(b"a", at), (b"c", at)]
    assert [(d["reason"], d["source"]["offset"]) for d in rig.dead()] == [("missing_field", 1)]
    assert all(received.tzinfo is UTC for _, received in seen)


def test_a_message_without_timestamp_is_received_now() -> None:
    seen: list[datetime] = []

    def spy(raw: bytes, received: datetime) -> Sequence[Any]:
        seen.append(received)
        return []

    before = datetime.now(UTC)
    Rig(FakeStore(Journal()), decoder=spy).process([Record(b"a", None, Message(timestamp=0))])
    assert before <= seen[0] <= datetime.now(UTC)
    assert seen[0].tzinfo is UTC


def test_emitting_logs_each_suppression_and_alert(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore(Journal(), trips={"e1"}, alerting={"e1"})
    caplog.set_level(logging.DEBUG, logger="pipeline.stream.apply")
    Rig(store).process(records([attempt_message("e1")]))
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == apply.log.name]
    assert lines == [
        ("INFO", "emitted 1 suppression events: suppressed/immediate_hard/user_unknown=1"),
        ("DEBUG", "suppressed rule=immediate_hard reason=user_unknown tenant=default id=s-e1"),
        ("WARNING", "sender alert rule=complaint_rate tenant=default rate=0.0300"),
    ]


def test_fault_points_and_retry_steps_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[tuple[str | None, str]] = []
    steps: list[str] = []

    async def retry(what: str, step: Callable[[], Awaitable[T]]) -> T:
        steps.append(what)
        return await step()

    monkeypatch.setattr(apply.faults, "reach", lambda armed, point: reached.append((armed, point)))
    monkeypatch.setattr(apply, "retry_transient", retry)
    store = FakeStore(Journal(), trips={"e1"})
    Rig(store, fault_point="after_emit").process(records([attempt_message("e1")]))
    assert reached == [("after_emit", "after_redis"), ("after_emit", "after_emit")]
    assert steps == ["redis", "emit", "mark"]


class ReplyStore(FakeStore):
    """A FakeStore whose read() checks that it is given the replies run() returned."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(journal, trips={"e1"})
        self.read_replies: list[Sequence[Any]] = []

    def read(self, plan: BatchPlan, replies: Sequence[Any]) -> Outcome:
        self.read_replies.append(replies)
        return super().read(plan, replies)


def test_the_replies_of_run_are_read() -> None:
    store = ReplyStore(Journal())
    Rig(store).process(records([attempt_message("e1")]))
    assert store.read_replies == [[b"[]"]]


def test_an_event_the_functions_failed_on_is_dead_lettered_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FakeStore(Journal(), failed={"e2"})
    rig = Rig(store)
    caplog.set_level(logging.INFO, logger="pipeline.stream.apply")
    rig.process(records([orjson.dumps([orjson.loads(attempt_message("e1")),
                                       orjson.loads(attempt_message("e2"))])]))  # fmt: skip
    [dead] = rig.dead()
    assert (dead["reason"], dead["detail"], dead["source"]["offset"]) == (
        "internal_error",
        "internal error",
        0,
    )
    assert orjson.loads(dead["raw"])["event_id"] == "e2"
    assert orjson.loads(dead["raw"])["type"] == "attempt"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["event dead-lettered reason=internal_error error=boom"]


class Boom(RuntimeError):
    pass


def test_an_unexpected_error_falls_back_to_one_message_at_a_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def flaky(raw: bytes, received: datetime) -> Sequence[Event]:
        if b"e2" in raw:
            raise Boom("a@example.com")  # the text may quote an address: never logged
        return decode_attempts(raw)

    store = FakeStore(Journal())
    rig = Rig(store, decoder=flaky)
    caplog.set_level(logging.DEBUG, logger="pipeline.stream.apply")
    rig.process(records([attempt_message("e1"), attempt_message("e2"), attempt_message("e3")]))
    assert [(d["reason"], d["detail"], d["source"]["offset"]) for d in rig.dead()] == [
        ("internal_error", "internal error", 1)
    ]
    assert store.journal.kinds("plan") == [("plan", ["e1"]), ("plan", ["e3"])]
    mine = [r for r in caplog.records if r.name == apply.log.name]
    assert [(r.levelname, r.getMessage()) for r in mine] == [
        ("DEBUG", "internal error"),
        ("ERROR", "batch failed error=Boom; processing its messages one by one"),
        ("DEBUG", "internal error"),
        ("ERROR", "event dead-lettered reason=internal_error error=Boom"),
    ]
    assert mine[0].exc_info is not None and mine[0].exc_info[0] is Boom
    assert all("a@example.com" not in r.getMessage() for r in mine)


def test_alerts_alone_are_emitted() -> None:
    store = FakeStore(Journal(), alerting={"e1"})
    rig = Rig(store)
    rig.process(records([attempt_message("e1")]))
    assert [v["event_id"] for v in rig.alerts.values()] == ["al-e1"]
    assert store.journal.kinds("mark") == [("mark", [], ["al-e1"])]


def test_a_planning_error_falls_back_with_its_own_type(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore(Journal(), plan_fails={"e2"})
    rig = Rig(store)
    caplog.set_level(logging.ERROR, logger="pipeline.stream.apply")
    rig.process(records([attempt_message("e1"), attempt_message("e2")]))
    assert [r.getMessage() for r in caplog.records if r.name == apply.log.name] == [
        "batch failed error=RuntimeError; processing its messages one by one",
        "event dead-lettered reason=internal_error error=RuntimeError",
    ]
    assert [(d["reason"], d["source"]["offset"]) for d in rig.dead()] == [("internal_error", 1)]


class LongErrorStore(FakeStore):
    """The functions fail an event with a long error text (a Lua traceback)."""

    def read(self, plan: BatchPlan, replies: Sequence[Any]) -> Outcome:
        return Outcome(failed=[(e, "E" * 80 + "tail") for e in plan.events])


def test_a_functions_error_is_logged_cut_to_80_characters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig(LongErrorStore(Journal()))
    caplog.set_level(logging.ERROR, logger="pipeline.stream.apply")
    rig.process(records([attempt_message("e1")]))
    assert [r.getMessage() for r in caplog.records if r.name == apply.log.name] == [
        "event dead-lettered reason=internal_error error=" + "E" * 80
    ]
