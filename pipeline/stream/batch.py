"""The agents' loop: batches taken from faust, cut into units, two units in flight.

One loop for every input topic (policy agents and normalize). Why not `take_events`: faust
acks a taken batch when the loop body returns, so nothing of the next batch can be read or
decoded while this one waits on Redis or Kafka. Here the batches come from `noack_take`
(faust's public take that never acks), and each unit is acked by us once it is durably done:

  take ──▶ unit k+1: decode, plan (CPU) ─┐      while      unit k: Redis, Kafka, confirm
                                         └─ await unit k ─▶ ack unit k ─▶ start unit k+1

- Order: unit k+1 starts its Redis and Kafka work only after unit k is done, so an address's
  events (one partition, one agent) are applied in stream order, retries included.
- Bounds: a unit holds at most `max_items` items (attempts, lines), whatever the messages
  carry; memory holds two units and one take, and a crash redoes at most what was in flight
  since the last commit.
- Acks: a unit's messages are acked only after `finish` returned (durable), in unit order;
  faust commits the acked prefix of each partition. A cancelled unit (shutdown, rebalance)
  is never acked, so its offsets are never committed and the next owner reads it again.
- Agents still run with concurrency=1 (faust-streaming #606: with more, faust commits
  offsets past events still in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar

U = TypeVar("U")
SEND_GRACE = 0.002
"""Seconds the loop gives a unit to put its request on the wire before planning the next."""


class BatchBody(Protocol[U]):
    """What an agent does with its messages, in two halves."""

    def units(self, messages: Sequence[Any]) -> Iterator[U]:
        """Cut `messages` (faust events, in stream order) into units, decoding and planning
        each when it is asked for. Never raises: a failure is carried inside the unit."""
        ...

    def messages_of(self, unit: U) -> Sequence[Any]:
        """The faust events a unit came from (acked when it is done)."""
        ...

    async def finish(self, unit: U) -> None:
        """Make `unit` durable (dead letters, Redis, Kafka, confirmations); returns only
        when it is. Never raises except CancelledError."""
        ...


async def run_batches(stream: Any, body: BatchBody[Any], *, take: int, within: float) -> None:
    """Consume `stream` for ever (see the module docstring); returns when the stream stops."""
    inflight: asyncio.Future[None] | None = None
    try:
        async for messages in stream.noack_take(take, within):
            for unit in body.units(messages):
                if inflight is not None:
                    await inflight
                inflight = asyncio.ensure_future(_finish_and_ack(stream, body, unit))
                # Let the unit send its Redis request before the next unit's CPU work blocks
                # the loop. One sleep(0) is not enough: redis-py awaits several times (pool,
                # a can-read check, drain) before the bytes leave; a short timer sleep runs
                # every ready callback first.
                await asyncio.sleep(SEND_GRACE)
        if inflight is not None:
            await inflight
    finally:
        if inflight is not None and not inflight.done():
            inflight.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await inflight


async def _finish_and_ack(stream: Any, body: BatchBody[Any], unit: Any) -> None:
    await body.finish(unit)
    for message in body.messages_of(unit):
        await stream.ack(message)
