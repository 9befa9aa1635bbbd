"""One unit of a policy agent (pipeline.stream.apply.EventBatch), with Kafka and the Store faked
so that the journal shows the order of the steps:

  dead letters acked -> Redis -> suppressions acked -> marked emitted -> finish returns

and that an unexpected error costs exactly the one message at fault (dead-lettered with
reason internal_error), never its neighbours. Driven as pipeline.stream.batch.run_batches does
(`for unit in batch.units(messages)`: finish, then its tail), minus the acks (see
test_run_batches.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from pipeline.core.decode import decode_attempts
from pipeline.core.errors import Reason
from pipeline.stream.apply import Emitter, EventBatch
from tests.unit.fakes import (
    FakeStore,
    FakeTopic,
    Journal,
    Record,
    attempt_message,
    finish_whole,
    records,
)

DLQ = "delivery.attempts.deadletter"


def decode(raw: bytes, received: datetime) -> Sequence[Any]:
    return decode_attempts(raw)


class Worker:
    """An EventBatch wired to recording fakes."""

    def __init__(
        self, journal: Journal, store: FakeStore, *, decoder: Callable[..., Any] = decode
    ) -> None:
        self.journal = journal
        self.deadletter = FakeTopic(DLQ, journal, delay=4)
        self.suppressions = FakeTopic("suppression.events", journal, delay=4)
        emitter = Emitter(store, self.suppressions, FakeTopic("sender.alerts", journal))  # type: ignore[arg-type]
        self.batch = EventBatch(
            store,  # type: ignore[arg-type]
            emitter,
            decode=decoder,
            deadletter_topic=self.deadletter,
            max_events=100,
        )

    def process(self, messages: list[Record]) -> None:
        async def take() -> None:
            for unit in self.batch.units(messages):
                await finish_whole(self.batch, unit)
                self.journal.append(("finished", [m.message.offset for m in unit.messages]))

        asyncio.run(take())

    def dead(self) -> list[tuple[str, int]]:
        """(reason, source offset) of every dead letter, in order."""
        return [(d["reason"], d["source"]["offset"]) for d in self.deadletter.values()]

    def emitted(self) -> list[str]:
        return [v["trigger_event_id"] for v in self.suppressions.values()]


def test_dead_letters_are_acked_before_the_unit_goes_to_redis() -> None:
    """Catches: EventBatch._finish not awaiting the dead letters' deliveries before
    store.run (a crash after Redis but before the broker acked would lose the bad input:
    the unit's offsets commit once it is done)."""
    journal = Journal()
    worker = Worker(journal, FakeStore(journal))
    worker.process(records([b"{not json", attempt_message("e1"), b'{"event_id": 5}']))

    assert worker.dead() == [("bad_json", 0), ("missing_field", 2)]
    run = journal.position(("run", ["e1"]))
    for acked in journal.kinds("acked"):
        assert journal.position(acked) < run
    assert len(journal.kinds("acked")) == 2


def test_a_unit_finishes_only_after_its_suppressions_are_acked_and_marked() -> None:
    """Catches: suppression sends not awaited (finish returning, so the unit is acked, while
    the broker has not confirmed the suppression) and mark_emitted before the Kafka ack."""
    journal = Journal()
    worker = Worker(journal, FakeStore(journal, trips={"e1", "e3"}))
    worker.process(records([attempt_message("e1", "e2"), attempt_message("e3")]))

    assert [e[0] for e in journal if e[0] != "send"] == [
        "plan",
        "run",
        "ran",
        "acked",
        "acked",
        "mark",
        "finished",
    ]
    assert journal.kinds("plan") == [("plan", ["e1", "e2", "e3"])]
    assert journal.kinds("mark") == [("mark", ["s-e1", "s-e3"], [])]
    assert worker.emitted() == ["e1", "e3"]


def test_only_the_message_whose_plan_raises_is_dead_lettered_the_others_are_applied() -> None:
    """Catches: EventBatch._fallback dead-lettering the whole batch (or with a reason other
    than internal_error) when planning it raised an unexpected error."""
    journal = Journal()
    worker = Worker(journal, FakeStore(journal, plan_fails={"e2"}, trips={"e1", "e2", "e3"}))
    messages = records([attempt_message("e1"), attempt_message("e2"), attempt_message("e3")])
    worker.process(messages)

    assert worker.dead() == [("internal_error", 1)]
    assert worker.deadletter.values()[0]["raw"] == messages[1].value.decode()
    assert journal.kinds("plan") == [
        ("plan", ["e1", "e2", "e3"]),
        ("plan", ["e1"]),
        ("plan", ["e2"]),
        ("plan", ["e3"]),
    ]
    assert journal.kinds("ran") == [("ran", ["e1"]), ("ran", ["e3"])]
    assert worker.emitted() == ["e1", "e3"]
    assert journal.kinds("finished") == [("finished", [0, 1, 2])]


def test_only_the_message_whose_decode_raises_is_dead_lettered_the_others_are_applied() -> None:
    """Catches: the fallback dead-lettering the whole batch when the decoder hit a bug on one
    message (not an InvalidInput: an unexpected exception)."""

    def buggy(raw: bytes, received: datetime) -> Sequence[Any]:
        if b'"e2"' in raw:
            raise KeyError("decoder bug")
        return decode_attempts(raw)

    journal = Journal()
    worker = Worker(journal, FakeStore(journal, trips={"e1", "e3"}), decoder=buggy)
    worker.process(records([attempt_message("e1"), attempt_message("e2"), attempt_message("e3")]))

    assert worker.dead() == [("internal_error", 1)]
    assert journal.kinds("plan") == [("plan", ["e1"]), ("plan", ["e3"])]
    assert journal.kinds("ran") == [("ran", ["e1"]), ("ran", ["e3"])]
    assert worker.emitted() == ["e1", "e3"]


def test_only_the_message_whose_redis_call_raises_is_dead_lettered() -> None:
    """Catches: the fallback dead-lettering the whole batch when Redis answered one of its
    calls with an unexpected error (a bug, not a Transient: retrying cannot help)."""
    journal = Journal()
    worker = Worker(journal, FakeStore(journal, run_fails={"e2"}, trips={"e1", "e2", "e3"}))
    worker.process(records([attempt_message("e1"), attempt_message("e2"), attempt_message("e3")]))

    assert worker.dead() == [("internal_error", 1)]
    assert journal.kinds("run") == [
        ("run", ["e1", "e2", "e3"]),
        ("run", ["e1"]),
        ("run", ["e2"]),
        ("run", ["e3"]),
    ]
    assert worker.emitted() == ["e1", "e3"]
    assert journal.kinds("mark") == [("mark", ["s-e1"], []), ("mark", ["s-e3"], [])]


def test_invalid_input_is_dead_lettered_with_its_reason_without_falling_back() -> None:
    """Catches: bad input treated as an internal error (reason lost, the batch needlessly
    re-planned one message at a time)."""
    journal = Journal()
    worker = Worker(journal, FakeStore(journal))
    good = orjson.loads(attempt_message("e2"))
    bad = orjson.dumps([good, {**good, "event_id": "x", "recipient": "nobody"}])
    worker.process(records([attempt_message("e1"), bad, attempt_message("e3")]))

    assert worker.dead() == [("bad_address", 1)]
    assert worker.deadletter.values()[0]["detail"].startswith("element 1: ")
    assert journal.kinds("plan") == [("plan", ["e1", "e3"])]


def test_an_event_the_functions_failed_is_dead_lettered_alone_as_its_own_json() -> None:
    """Catches: `_dead_letter_failed` dead-lettering the whole message (its other events were
    applied: a replay of the dead letter would count them twice), dead-lettering it with a
    reason other than internal_error, or dropping the failed event silently."""
    journal = Journal()
    store = FakeStore(journal, failed={"e2"}, trips={"e1", "e3"})
    worker = Worker(journal, store)
    messages = records([attempt_message("e1", "e2"), attempt_message("e3")])
    worker.process(messages)

    assert worker.dead() == [("internal_error", 0)]
    [letter] = worker.deadletter.values()
    [e2] = [e for e in decode_attempts(messages[0].value) if e.event_id == "e2"]
    assert orjson.loads(letter["raw"]) == {"type": "attempt", **e2.to_json()}
    assert journal.kinds("plan") == [("plan", ["e1", "e2", "e3"])]  # no fallback
    assert worker.emitted() == ["e1", "e3"]
    dead_acked = journal.position(("acked", DLQ, None))
    assert dead_acked < journal.position(("mark", ["s-e1", "s-e3"], []))


def test_units_hold_at_most_max_events_and_never_split_a_message() -> None:
    """Catches: a unit cut in the middle of a message's array (half a message acked) or
    units that grow past max_events."""
    journal = Journal()
    worker = Worker(journal, FakeStore(journal))
    worker.batch.max_events = 3
    worker.process(
        records(
            [
                attempt_message("e1", "e2"),
                attempt_message("e3", "e4"),
                attempt_message("e5"),
                attempt_message("e6", "e7", "e8"),
                attempt_message("e9"),
            ]
        )
    )
    assert journal.kinds("plan") == [
        ("plan", ["e1", "e2", "e3", "e4"]),
        ("plan", ["e5", "e6", "e7", "e8"]),
        ("plan", ["e9"]),
    ]
    assert journal.kinds("finished") == [
        ("finished", [0, 1]),
        ("finished", [2, 3]),
        ("finished", [4]),
    ]
    assert Reason.INTERNAL.value not in {r for r, _ in worker.dead()}
