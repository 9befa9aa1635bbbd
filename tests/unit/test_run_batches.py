"""The agents' loop (pipeline.stream.batch.run_batches) with a fake faust stream: what is acked,
when, and in which order.

The guarantees (the module's docstring): a unit's messages are acked only after its `finish`
returned, in stream order; unit k+1's finish starts only after unit k's completed (an
address's events are applied in order); a unit cancelled by a shutdown or rebalance is never
acked (its offsets must not be committed: the partition's next owner reads it again).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest

import pipeline.stream.batch as batch_module
from pipeline.stream.batch import Tail, run_batches
from tests.unit.fakes import Journal, ticks

Unit = tuple[str, ...]


class FakeStream:
    """faust's stream: `noack_take` yields the given batches, then ends (or, `live`, waits
    for ever like a stream with nothing more to read); `ack` is journaled."""

    def __init__(self, journal: Journal, batches: list[list[str]], *, live: bool = False) -> None:
        self.journal = journal
        self.batches = batches
        self.live = live

    async def noack_take(self, n: int, within: float) -> AsyncIterator[list[str]]:
        for batch in self.batches:
            self.journal.append(("take", tuple(batch)))
            yield batch
        if self.live:
            await asyncio.Event().wait()

    async def ack(self, message: str) -> None:
        self.journal.append(("ack", message))

    def acked(self) -> list[str]:
        return [e[1] for e in self.journal.kinds("ack")]


class FakeBody:
    """Units of at most `size` messages. `finish` journals start and end and takes
    `slow[unit]` loop turns (1 by default); a unit in `blocked` waits on `gate`."""

    def __init__(
        self,
        journal: Journal,
        *,
        size: int = 2,
        slow: dict[Unit, int] | None = None,
        blocked: Sequence[Unit] = (),
        tails: dict[Unit, int] | None = None,
        tail_blocked: Sequence[Unit] = (),
    ) -> None:
        self.journal = journal
        self.size = size
        self.slow = slow or {}
        self.blocked = set(blocked)
        self.gate = asyncio.Event()
        self.tails = tails or {}
        self.tail_blocked = set(tail_blocked)

    def units(self, messages: Sequence[str]) -> Iterator[Unit]:
        for i in range(0, len(messages), self.size):
            unit = tuple(messages[i : i + self.size])
            self.journal.append(("cut", unit))
            yield unit

    def messages_of(self, unit: Unit) -> Sequence[str]:
        return unit

    async def finish(self, unit: Unit) -> Tail | None:
        self.journal.append(("start", unit))
        try:
            await ticks(self.slow.get(unit, 1))
            if unit in self.blocked:
                await self.gate.wait()
        except asyncio.CancelledError:
            self.journal.append(("cancelled", unit))
            raise
        self.journal.append(("end", unit))
        if unit not in self.tails and unit not in self.tail_blocked:
            return None

        async def tail() -> None:
            self.journal.append(("tail", unit))
            try:
                await ticks(self.tails.get(unit, 1))
                if unit in self.tail_blocked:
                    await self.gate.wait()
            except asyncio.CancelledError:
                self.journal.append(("tail cancelled", unit))
                raise
            self.journal.append(("tail end", unit))

        return tail


def consume(stream: FakeStream, body: FakeBody) -> None:
    async def main() -> None:
        await run_batches(stream, body, take=100, within=1.0)
        stream.journal.append(("returned",))

    asyncio.run(main())


def test_units_are_acked_only_after_their_finish_returned_and_in_stream_order() -> None:
    """Catches: acking a unit before (or without waiting for) its finish, and acks out of
    stream order (faust commits the acked prefix of a partition: an ack ahead of an
    unfinished unit commits past it)."""
    journal = Journal()
    stream = FakeStream(journal, [["m1", "m2", "m3"], ["m4", "m5"]])
    body = FakeBody(journal, slow={("m1", "m2"): 6, ("m4", "m5"): 3})
    consume(stream, body)

    assert stream.acked() == ["m1", "m2", "m3", "m4", "m5"]
    for unit in [("m1", "m2"), ("m3",), ("m4", "m5")]:
        end = journal.position(("end", unit))
        assert all(journal.position(("ack", m)) > end for m in unit)
    assert journal[-1] == ("returned",)


def test_the_next_unit_starts_only_after_the_previous_unit_finished() -> None:
    """Catches: the loop not awaiting the unit in flight before starting the next one (two
    units in Redis at once: a later event of an address could be applied before an earlier
    one, and a retried unit would overtake its successor)."""
    journal = Journal()
    stream = FakeStream(journal, [["m1", "m2", "m3", "m4"], ["m5"]])
    body = FakeBody(journal, slow={("m1", "m2"): 8, ("m3", "m4"): 4})
    consume(stream, body)

    starts = [e[1] for e in journal.kinds("start")]
    assert starts == [("m1", "m2"), ("m3", "m4"), ("m5",)]
    for before, after in itertools.pairwise(starts):
        assert journal.position(("end", before)) < journal.position(("start", after))
    assert journal.kinds("cancelled") == []


def test_the_last_unit_is_finished_and_acked_before_the_loop_returns() -> None:
    """Catches: the loop returning with its last unit still in flight (it would be
    cancelled by the finally clause and re-read after every clean stop)."""
    journal = Journal()
    stream = FakeStream(journal, [["m1"]])
    consume(stream, FakeBody(journal, slow={("m1",): 5}))
    assert journal[-3:] == [("end", ("m1",)), ("ack", "m1"), ("returned",)]


def run_then_cancel(stream: FakeStream, body: FakeBody, until: tuple[Any, ...]) -> None:
    """Run the loop until `until` is journaled, cancel it (shutdown, rebalance), then open
    the gate and let the loop turn: whatever was still in flight must not ack."""

    async def main() -> None:
        task = asyncio.ensure_future(run_batches(stream, body, take=100, within=1.0))
        for _ in range(100):
            if until in stream.journal:
                break
            await asyncio.sleep(0)
        assert until in stream.journal
        await ticks(3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        body.gate.set()
        await ticks(20)

    asyncio.run(main())


def test_a_unit_in_flight_while_the_loop_waits_for_the_next_take_is_never_acked() -> None:
    """Catches: removing the cancel guard (the `finally` of run_batches): cancelled while it
    waits in noack_take, the loop must cancel the unit still in flight, or that unit would
    finish and ack after the partition was handed to another worker."""
    journal = Journal()
    stream = FakeStream(journal, [["m1", "m2", "m3"]], live=True)
    body = FakeBody(journal, blocked=[("m3",)])
    run_then_cancel(stream, body, until=("start", ("m3",)))

    assert stream.acked() == ["m1", "m2"]
    assert journal.kinds("cancelled") == [("cancelled", ("m3",))]
    assert ("end", ("m3",)) not in journal


def test_a_unit_the_loop_awaits_when_cancelled_is_never_acked_nor_its_successor_started() -> None:
    """Catches: acking a unit whose finish was cancelled (e.g. the acks moved into a
    `finally`), and starting the next unit when the one before did not finish."""
    journal = Journal()
    stream = FakeStream(journal, [["m1", "m2", "m3", "m4"]], live=True)
    body = FakeBody(journal, blocked=[("m1", "m2")])
    run_then_cancel(stream, body, until=("cut", ("m3", "m4")))

    assert stream.acked() == []
    assert journal.kinds("start") == [("start", ("m1", "m2"))]
    assert journal.kinds("cancelled") == [("cancelled", ("m1", "m2"))]


@pytest.fixture(autouse=True)
def _no_send_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests step the loop with sleep(0); the real grace is a timer sleep."""
    monkeypatch.setattr(batch_module, "SEND_GRACE", 0)


def test_a_tail_runs_while_the_next_unit_is_in_finish_and_acks_wait_for_the_tail() -> None:
    """Catches: acking a unit when its finish returned but its tail (the Kafka half) had not
    run, and awaiting each tail before the next unit's finish (no overlap: the worker idles
    while Kafka confirms)."""
    journal = Journal()
    stream = FakeStream(journal, [["m1", "m2", "m3", "m4"]])
    body = FakeBody(journal, tails={("m1", "m2"): 6, ("m3", "m4"): 1})
    consume(stream, body)

    assert stream.acked() == ["m1", "m2", "m3", "m4"]
    first_tail_end = journal.position(("tail end", ("m1", "m2")))
    assert journal.position(("start", ("m3", "m4"))) < first_tail_end
    assert all(journal.position(("ack", m)) > first_tail_end for m in ("m1", "m2"))
    assert journal.position(("ack", "m3")) > journal.position(("tail end", ("m3", "m4")))


def test_tails_run_in_unit_order_even_when_a_later_one_is_quicker() -> None:
    """Catches: starting a tail without waiting for the one before (suppressions sent out of
    unit order, and acks out of stream order)."""
    journal = Journal()
    stream = FakeStream(journal, [["m1", "m2", "m3", "m4"]])
    body = FakeBody(journal, tails={("m1", "m2"): 8, ("m3", "m4"): 1})
    consume(stream, body)

    assert journal.position(("tail end", ("m1", "m2"))) < journal.position(("tail", ("m3", "m4")))
    assert stream.acked() == ["m1", "m2", "m3", "m4"]


def test_a_stalled_tail_stops_the_loop_before_redis_runs_far_ahead() -> None:
    """Catches: no bound on waiting tails (with Kafka down, Redis would apply unit after unit
    that cannot be acked, and memory would grow with them)."""
    journal = Journal()
    stream = FakeStream(journal, [["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"]], live=True)
    body = FakeBody(journal, tail_blocked=[("m1", "m2")], tails={("m3", "m4"): 1})
    run_then_cancel(stream, body, until=("end", ("m3", "m4")))

    # unit 2 ran its Redis half beside unit 1's tail; unit 3 is planned but waits
    starts = [e[1] for e in journal.kinds("start")]
    assert starts == [("m1", "m2"), ("m3", "m4")]
    assert ("cut", ("m5", "m6")) in journal
    assert stream.acked() == []


def test_a_cancelled_tail_acks_nothing_of_its_unit_nor_of_the_units_after_it() -> None:
    """Catches: acking after a tail that was cancelled (shutdown during the Kafka half), or
    letting a later unit's tail ack past it."""
    journal = Journal()
    stream = FakeStream(journal, [["m1", "m2", "m3", "m4"]], live=True)
    body = FakeBody(journal, tail_blocked=[("m1", "m2")], tails={("m3", "m4"): 1})
    run_then_cancel(stream, body, until=("end", ("m3", "m4")))

    assert stream.acked() == []
    assert ("tail cancelled", ("m1", "m2")) in journal
    assert ("tail end", ("m3", "m4")) not in journal


def test_the_last_units_tail_runs_and_acks_while_the_loop_waits_for_more_input() -> None:
    """Catches: running a unit's tail only when the next unit starts (on a quiet topic the
    last unit would never be acked, and its suppressions never sent)."""
    journal = Journal()
    stream = FakeStream(journal, [["m1"]], live=True)
    body = FakeBody(journal, tails={("m1",): 2}, blocked=[("never",)])

    async def main() -> None:
        task = asyncio.ensure_future(run_batches(stream, body, take=100, within=1.0))
        await ticks(20)
        assert not task.done()  # still waiting in noack_take
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert stream.acked() == ["m1"]
    assert journal.position(("tail end", ("m1",))) < journal.position(("ack", "m1"))
