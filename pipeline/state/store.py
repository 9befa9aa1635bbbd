"""The typed async door to Redis: run a planned batch in one round trip, and the few other
state transitions (confirm, reactivate).

The state layer executes; it knows no policy. The worker's batch body plans in the core
(`pipeline.core.plan.plan_batch`), sends the plan with `Store.run`, and reads the replies in
the core again (`read_replies`); `Store.apply` does the three in a row for `replay` and tests,
so both decide exactly alike.

Concurrency: a Store may be shared by several agents and the web server. It holds no mutable
state of its own between calls (the connection pool is safe to share), so calls may
interleave freely; the order of one address's events is the caller's to keep (a partition's
batches one after the other).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import hiredis
import orjson
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ResponseError

from pipeline.core.events import Event
from pipeline.core.models import Scope, SenderAlert, Suppression
from pipeline.core.outcomes import reactivation
from pipeline.core.plan import BatchPlan, Call, Limits, Outcome, plan_batch, read_replies
from pipeline.core.policies import Policy, PolicyBook
from pipeline.core.wire import digest, history_record, to_ms
from pipeline.state import functions, keys
from pipeline.state.errors import REDIS_DOWN, redis_errors

DAY = 86_400
HOUR = 3_600
HISTORY_CAP = 100_000
"""History events kept per tenant; older ones drop off (suppression.events is the archive)."""
Applied = Outcome
"""What `Store.apply` returns (the core's Outcome)."""


class HiredisPackConnection(Connection):
    """redis-py's asyncio connection, packing commands with hiredis (C) instead of Python.

    redis-py 8.1's asyncio client always packs in pure Python (redis-py #4176; the sync
    client uses hiredis): for a batch of a few thousand arguments that was the largest single
    cost of the hot path. hiredis takes str, bytes, int and float, the only types we send.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        """Pack one command; multi-word names ("SCRIPT LOAD") are split as redis-py does."""
        if isinstance(args[0], str) and " " in args[0]:
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]

    def pack_commands(self, commands: Any) -> list[bytes]:
        """Pack a pipeline's commands into one buffer."""
        return [b"".join(self.pack_command(*c)[0] for c in commands)]


def _missing_function(reply: Any) -> bool:
    return isinstance(reply, ResponseError) and "function not found" in str(reply).lower()


class Store:
    """Per-address state in Redis, judged by a book of policies."""

    def __init__(
        self,
        client: aioredis.Redis,
        policies: PolicyBook | Policy,
        *,
        namespace: str = "bg",
        state_ttl_days: int = 400,
        bounce_log_size: int = 20,
        delivered_log_hours: int = 72,
        call_events: int = 500,
    ) -> None:
        self.client = client
        self.book = policies if isinstance(policies, PolicyBook) else PolicyBook(policies)
        self.namespace = namespace
        self.state_ttl = state_ttl_days * DAY
        self.limits = Limits(
            state_ttl=self.state_ttl,
            log_size=bounce_log_size,
            delivered_ttl=delivered_log_hours * HOUR,
            ring=max(32, bounce_log_size),
            call_events=call_events,
        )

    @classmethod
    def from_url(cls, url: str, policies: PolicyBook | Policy, **kwargs: Any) -> Store:
        """Connect lazily to the Redis at `url` (no I/O until the first call)."""
        pool = ConnectionPool.from_url(url, connection_class=HiredisPackConnection)
        return cls(aioredis.Redis.from_pool(pool), policies, **kwargs)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    async def ping(self) -> bool:
        """Return True when Redis answers; raise Transient when it does not."""
        with redis_errors():
            return bool(await self.client.ping())

    async def load_functions(self) -> None:
        """Load the function library unless this version is there already (idempotent)."""
        with redis_errors():
            try:
                await self.client.execute_command(  # type: ignore[no-untyped-call]
                    "FUNCTION LOAD", functions.SOURCE
                )
            except ResponseError as exc:
                if "already exists" not in str(exc):
                    raise

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        """Execute `calls` in one pipelined round trip; return their replies in order.

        A call refused because the library is missing (a new or emptied Redis) ran nothing:
        the library is loaded and only those calls are sent again. Calls of one batch hold
        disjoint addresses (pipeline.core.plan), so re-sending some never reorders an
        address's events. Raises Transient when Redis is unreachable; re-running the same
        calls afterwards is safe (the functions are idempotent per event).
        """
        if not calls:
            return []
        replies = await self._send(calls)
        missing = [i for i, r in enumerate(replies) if _missing_function(r)]
        if missing:
            await self.load_functions()
            again = await self._send([calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, REDIS_DOWN):
                with redis_errors():
                    raise reply
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _send(self, calls: Sequence[Call]) -> list[Any]:
        with redis_errors():
            pipe = self.client.pipeline(transaction=False)
            for call in calls:
                pipe.execute_command("FCALL", functions.name(call.function), 0, *call.args)
            return list(await pipe.execute(raise_on_error=False))

    def plan(self, events: Sequence[Event]) -> BatchPlan:
        """Plan `events` under this store's book, namespace and limits (pure)."""
        return plan_batch(events, self.book, self.namespace, self.limits)

    def read(self, plan: BatchPlan, replies: Sequence[Any]) -> Outcome:
        """Read the replies of `plan` (pure)."""
        return read_replies(plan, self.book, replies)

    async def apply(self, events: Sequence[Event]) -> Outcome:
        """Apply attempts, feedback and engagement events (in stream order) and return what
        they trip: plan, one round trip, read.

        Exactly once per (recipient, event id): a replayed event counts nothing. If its first
        delivery tripped a suppression that was never confirmed with `mark_emitted` (a crash
        between Redis and Kafka), that suppression is returned again, with the same id; the
        same holds for a tenant alert. Raises Transient when Redis is unreachable; applying
        the same events again afterwards is safe."""
        plan = self.plan(events)
        return self.read(plan, await self.run(plan.calls))

    async def apply_attempts(self, events: Sequence[Event]) -> list[Suppression]:
        """`apply`, returning only the suppressions."""
        return (await self.apply(events)).suppressions

    def confirm_call(
        self, suppressions: Sequence[Suppression], alerts: Sequence[SenderAlert] = ()
    ) -> Call | None:
        """The call that records `suppressions` and `alerts` as delivered (see mark_emitted);
        None when there is nothing to record."""
        if not suppressions and not alerts:
            return None
        args: list[Any] = [self.namespace, HISTORY_CAP, self.state_ttl, len(suppressions)]
        for s in suppressions:
            args += [s.address, s.tenant, digest(s.trigger_event_id)]
        args.append(len(suppressions))
        for s in suppressions:
            args += [s.tenant, to_ms(s.ts), s.event_id, history_record(s)]
        args.append(len(alerts))
        for a in alerts:
            args += [a.tenant, f"{a.rule}:{to_ms(a.ts) // (DAY * 1000)}"]
        return Call("confirm", args)

    async def mark_emitted(
        self, suppressions: Sequence[Suppression], alerts: Sequence[SenderAlert] = ()
    ) -> None:
        """Record that `suppressions` and `alerts` reached Kafka: replaying their trigger
        events later re-emits nothing, and the suppressions join their tenants' histories.
        Call only after the sends were acknowledged. Idempotent; raises Transient."""
        call = self.confirm_call(suppressions, alerts)
        if call is not None:
            await self.run([call])

    async def reactivate(
        self,
        address: str,
        tenant: str,
        *,
        request_id: str,
        ts: datetime,
        list_id: str | None = None,
        scope: Scope | None = None,
    ) -> Suppression | None:
        """Manually add `address` back in one scope (default: the tenant policy's scope):
        clear that scope's counters and suppression and return the `reactivated` event, or
        None when it was not suppressed there. Its id derives from `request_id`: until the
        event is confirmed with `mark_emitted`, a retry with the same `request_id` returns the
        same event again (so a failed send is re-emitted, not lost); after it, None."""
        policy = self.book.for_tenant(tenant)
        scope = scope or policy.scope
        args: list[Any] = [
            keys.scope_state(self.namespace, address, tenant, scope, list_id),
            keys.state(self.namespace, address, tenant),
            digest(request_id),
            self.state_ttl,
        ]
        [reply] = await self.run([Call("reactivate", args)])
        cleared = orjson.loads(reply)
        if not cleared:
            return None
        return reactivation(
            policy,
            address=address,
            tenant=tenant,
            scope=scope,
            list_id=list_id,
            request_id=request_id,
            ts=ts,
            cleared=cleared,
        )
