"""The agents' loop: batches taken from faust, cut into units, three units in flight.

One loop for every input topic (policy agents and normalize). Why not `take_events`: faust
acks a taken batch when the loop body returns, so nothing of the next batch can be read or
decoded while this one waits on Redis or Kafka. Here the batches come from `noack_take`
(faust's public take that never acks), and each unit is acked by us once it is durably done.

A body's `finish` is the ordered half of a unit (dead letters, Redis); it may return a tail,
the half that only waits on others (the policy agents: send the suppressions to Kafka, mark
them emitted). Tails run in unit order, each after the one before, and a unit is acked when
its tail is done:

  unit k+2: decode, plan (CPU)   while   unit k+1: Redis (finish)   while   unit k: Kafka (tail)

- Order: unit k+1's `finish` starts only after unit k's `finish` returned, so an address's
  events (one partition, one agent) are applied in Redis in stream order, retries included.
  Tails (what goes to Kafka) run in unit order too.
- Bounds: a unit holds at most `max_items` items (attempts, lines), whatever the messages
  carry; memory holds three units and one take (at most MAX_TAILS tails wait: a stalled
  Kafka stops the loop instead of letting Redis run ahead), and a crash redoes at most what
  was in flight since the last commit.
- Acks: a unit's messages are acked only after its tail (or its `finish`, without one)
  returned, in unit order; faust commits the acked prefix of each partition. A cancelled unit
  (shutdown, rebalance) is never acked, nor any after it, so their offsets are never committed
  and the next owner reads them again (the functions make the redone Redis work a no-op).
- Agents still run with concurrency=1 (faust-streaming #606: with more, faust commits
  offsets past events still in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

U = TypeVar("U")
SEND_GRACE = 0.002
"""Seconds the loop gives a unit to put its request on the wire before planning the next."""
MAX_TAILS = 1
"""Tails that may still run when the next unit's `finish` starts."""

Tail = Callable[[], Awaitable[None]]
"""The second half of a unit: never raises except CancelledError."""


class BatchBody(Protocol[U]):
    """What an agent does with its messages, in two halves."""

    def units(self, messages: Sequence[Any]) -> Iterator[U]:
        """Cut `messages` (faust events, in stream order) into units, decoding and planning
        each when it is asked for. Never raises: a failure is carried inside the unit."""
        ...

    def messages_of(self, unit: U) -> Sequence[Any]:
        """The faust events a unit came from (acked when it is done)."""
        ...

    async def finish(self, unit: U) -> Tail | None:
        """Do the ordered half of `unit` (dead letters, Redis); return None when that made it
        durable, else the tail that does the rest (Kafka, confirmations). Never raises except
        CancelledError."""
        ...


async def run_batches(stream: Any, body: BatchBody[Any], *, take: int, within: float) -> None:
    """Consume `stream` for ever (see the module docstring); returns when the stream stops."""
    flight = _Flight(stream, body)
    try:
        async for messages in stream.noack_take(take, within):
            for unit in body.units(messages):
                await flight.start(unit)
                # Let the unit send its Redis request before the next unit's CPU work blocks
                # the loop. One sleep(0) is not enough: redis-py awaits several times (pool,
                # a can-read check, drain) before the bytes leave; a short timer sleep runs
                # every ready callback first.
                await asyncio.sleep(SEND_GRACE)
        await flight.drain()
    finally:
        await flight.cancel()


class _Flight:
    """The units in flight, one task each: its `finish`, then (after the task of the unit
    before it) its tail and its acks."""

    def __init__(self, stream: Any, body: BatchBody[Any]) -> None:
        self.stream, self.body = stream, body
        self.tasks: deque[asyncio.Future[None]] = deque()
        self.finished: asyncio.Future[None] | None = None
        """Done when the newest unit's `finish` returned."""

    async def start(self, unit: Any) -> None:
        """Start `unit` once the previous unit's finish returned and few tails wait."""
        if self.finished is not None:
            await self.finished
        while len(self.tasks) > MAX_TAILS:
            await self.tasks.popleft()
        before = self.tasks[-1] if self.tasks else None
        self.finished = asyncio.get_running_loop().create_future()
        self.tasks.append(asyncio.ensure_future(self._run(unit, self.finished, before)))

    async def _run(
        self, unit: Any, finished: asyncio.Future[None], before: asyncio.Future[None] | None
    ) -> None:
        try:
            tail = await self.body.finish(unit)
        except asyncio.CancelledError:
            finished.cancel()
            raise
        except Exception as exc:  # a body broke its contract: the loop raises it, as before
            finished.set_exception(exc)
            raise
        finished.set_result(None)
        if before is not None:
            await before  # cancelled before: this one raises too and never acks
        if tail is not None:
            await tail()
        for message in self.body.messages_of(unit):
            await self.stream.ack(message)

    async def drain(self) -> None:
        """Finish and ack everything in flight."""
        while self.tasks:
            await self.tasks.popleft()

    async def cancel(self) -> None:
        """Cancel what is still in flight (never acked) and wait until it stopped."""
        pending = [f for f in self.tasks if not f.done()]
        for future in pending:
            future.cancel()
        for future in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await future
