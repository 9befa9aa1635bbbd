"""The typed async door to Redis: run a planned batch in one round trip, and the few other
state transitions (confirm, reactivate).

The state layer executes; it knows no policy. The worker's batch body plans in the core
(`pipeline.core.plan.plan_batch`), sends the plan with `Store.run`, and reads the replies in
the core again (`read_replies`); `Store.apply` does the three in a row for `replay` and tests,
so both decide exactly alike.

Redis Cluster (`redis+cluster://host:port[,host:port...]`, see docs/scaling.md): the planner
cuts the apply calls per primary (`Router`), `pipeline.state.cluster` sends each primary its
calls, and a group a node skipped (its slot is not served there now) is sent again after a
slot-map refresh (`resend`).

Concurrency: a Store may be shared by several agents and the web server. Its only mutable
state between calls is the Cluster's set of primaries found without a replica (a hint for the
WAIT timeout; any order of updates is fine), and the connection pool is safe to share, so
calls may interleave freely; the order of one address's events is the caller's to keep (a
partition's batches one after the other).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import ConnectionPool
from redis.exceptions import ResponseError

from pipeline.core.errors import Transient
from pipeline.core.events import Event
from pipeline.core.models import Scope, SenderAlert, Suppression
from pipeline.core.outage import Ack
from pipeline.core.outcomes import reactivation
from pipeline.core.plan import BatchPlan, Call, Limits, Outcome, plan_batch, read_replies
from pipeline.core.policies import Policy, PolicyBook
from pipeline.core.wire import digest, history_record, to_ms
from pipeline.state import cluster, functions, keys
from pipeline.state.cluster import CLUSTER_SCHEME, RESEND_ROUNDS, cluster_client, misrouted
from pipeline.state.connection import HiredisPackConnection
from pipeline.state.errors import REDIS_DOWN, redis_errors
from pipeline.state.held import guard_confirm_call

DAY = 86_400
HOUR = 3_600
HISTORY_CAP = 100_000
"""History events kept per tenant; older ones drop off (suppression.events is the archive)."""
Applied = Outcome
"""What `Store.apply` returns (the core's Outcome)."""


def raise_error(reply: Any) -> None:
    """Raise `reply` when it is an error: Transient for REDIS_DOWN, else as it is."""
    if isinstance(reply, REDIS_DOWN):
        with redis_errors():
            raise reply
    if isinstance(reply, Exception):
        raise reply


def _missing_function(reply: Any) -> bool:
    return isinstance(reply, ResponseError) and "function not found" in str(reply).lower()


class Store:
    """Per-address state in Redis, judged by a book of policies."""

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        policies: PolicyBook | Policy,
        *,
        namespace: str = "bg",
        state_ttl_days: int = 400,
        bounce_log_size: int = 20,
        delivered_log_hours: int = 72,
        call_events: int = 500,
    ) -> None:
        self.client = client
        self.cluster = client if isinstance(client, RedisCluster) else None
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
        self._unreplicated: set[str] = set()
        """Cluster: primaries whose last WAIT no replica answered (pipeline.state.cluster)."""

    @classmethod
    def from_url(cls, url: str, policies: PolicyBook | Policy, **kwargs: Any) -> Store:
        """Connect lazily to the Redis at `url` (no I/O until the first call); a
        `redis+cluster://host:port[,host:port...]` URL names the seed nodes of a Cluster."""
        if url.startswith(CLUSTER_SCHEME):
            return cls(cluster_client(url), policies, **kwargs)
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
        """Load the function library unless this version is there already (idempotent); on
        a Cluster, on every primary."""
        with redis_errors():
            if self.cluster is None:
                await self._load_on(None)
                return
            await self.cluster.initialize()
            await asyncio.gather(*(self._load_on(n) for n in self.cluster.get_primaries()))

    async def _load_on(self, node: ClusterNode | None) -> None:
        try:
            if node is None:
                await self.client.execute_command("FUNCTION LOAD", functions.SOURCE)
            else:
                await self.client.execute_command(
                    "FUNCTION LOAD", functions.SOURCE, target_nodes=node
                )
        except ResponseError as exc:
            if "already exists" not in str(exc):
                raise

    async def refresh(self) -> None:
        """Cluster: read the slot map again (after a skip or a refusal). Raises Transient."""
        if self.cluster is not None:
            await cluster.refresh(self.cluster)

    def route(self, tag: str) -> str | None:
        """Cluster: the primary that serves hash tag `tag` now (None: map not read yet)."""
        assert self.cluster is not None
        manager = self.cluster.nodes_manager
        if not manager.slots_cache:
            return None
        slot = self.cluster.keyslot(f"{self.namespace}:{{{tag}}}")
        return str(manager.get_node_from_slot(slot).name)

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        """Execute `calls` in one pipelined round trip (on a Cluster: one per primary,
        concurrently); return their replies in order.

        A call refused because the library is missing (a new or emptied Redis) ran nothing:
        the library is loaded and only those calls are sent again. Calls of one batch hold
        disjoint addresses (pipeline.core.plan), so re-sending some never reorders an
        address's events. On a Cluster, a call with one `route` refused on a stale slot map
        is routed again after a refresh (a few rounds). Raises Transient when Redis is
        unreachable (or a call stays misrouted); re-running the same calls afterwards is
        safe (the functions are idempotent per event).
        """
        if not calls:
            return []
        replies = await self.send(calls)
        if self.cluster is not None:
            await self._reroute(calls, replies)
        for reply in replies:
            raise_error(reply)
        return replies

    async def send(self, calls: Sequence[Call]) -> list[Any]:
        """Execute `calls` as `run` does, once: their replies in order, an error as a value
        (`misrouted` tells a refusal on a moved slot; `raise_error` raises the others). A
        call refused because the library is missing ran nothing: the library is loaded and
        only those calls are sent again. Raises Transient when a whole round trip fails."""
        replies = await self._send(calls)
        missing = [i for i, r in enumerate(replies) if _missing_function(r)]
        if missing:
            await self.load_functions()
            again = await self._send([calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _reroute(self, calls: Sequence[Call], replies: list[Any]) -> None:
        """Cluster: send again, after a map refresh, the calls refused as misrouted (their
        functions are idempotent: a call cut short by a moved key may be re-run whole)."""
        for attempt in range(RESEND_ROUNDS):
            bad = [i for i, r in enumerate(replies) if misrouted(r)]
            if not bad:
                return
            await asyncio.sleep(0.05 * 2**attempt)
            await self.refresh()
            if any(calls[i].route is None for i in bad):
                raise Transient("redis cluster: a call spanning several slots was misrouted")
            again = [
                Call(calls[i].function, calls[i].args, self.route(str(calls[i].route))) for i in bad
            ]
            for i, reply in zip(bad, await self._send(again), strict=True):
                replies[i] = reply
        if any(misrouted(r) for r in replies):
            raise Transient("redis cluster: slots still moving")

    async def _send(self, calls: Sequence[Call]) -> list[Any]:
        if self.cluster is not None:
            return await cluster.send(self.cluster, calls, self.route, self._unreplicated)
        with redis_errors():
            pipe = self.client.pipeline(transaction=False)
            for call in calls:
                pipe.execute_command("FCALL", functions.name(call.function), 0, *call.args)
            return list(await pipe.execute(raise_on_error=False))

    def plan(self, events: Sequence[Event]) -> BatchPlan:
        """Plan `events` under this store's book, namespace and limits (pure; on a Cluster,
        routed by the slot map as known now)."""
        router = self.route if self.cluster is not None else None
        return plan_batch(events, self.book, self.namespace, self.limits, router=router)

    def read(self, plan: BatchPlan, replies: Sequence[Any]) -> Outcome:
        """Read the replies of `plan` (pure)."""
        return read_replies(plan, self.book, replies)

    async def resend(self, plan: BatchPlan, outcome: Outcome) -> Outcome:
        """Cluster: apply the groups `outcome` reports skipped (their nodes did not serve
        their slots: a stale map, a slot moving), after a slot-map refresh, a few rounds with
        backoff; return `outcome` completed. Each address's events go whole, in order, in
        one group; nothing of a skipped group ran, so nothing is reordered or doubled.
        Raises Transient when some stay unservable (calling again with the same `outcome`
        is safe)."""
        merged = Outcome(list(outcome.suppressions), list(outcome.alerts), list(outcome.failed))
        seen = {s.event_id for s in merged.suppressions}
        skipped = set(outcome.skipped)
        for attempt in range(RESEND_ROUNDS):
            if not skipped:
                return merged
            if attempt:
                await asyncio.sleep(0.05 * 2 ** (attempt - 1))
            await self.refresh()
            events = [e for e in plan.events if e.recipient in skipped]
            again = plan_batch(
                events, self.book, self.namespace, self.limits, router=self.route, rates=False
            )
            part = self.read(again, await self.run(again.calls))
            for s in part.suppressions:
                if s.event_id not in seen:
                    seen.add(s.event_id)
                    merged.suppressions.append(s)
            merged.failed += part.failed
            skipped = set(part.skipped)
        if skipped:
            raise Transient(f"redis cluster: {len(skipped)} addresses still unservable")
        return merged

    async def apply(self, events: Sequence[Event]) -> Outcome:
        """Apply attempts, feedback and engagement events (in stream order) and return what
        they trip: plan, one round trip, read (and on a Cluster, re-send what was skipped).

        Exactly once per (recipient, event id): a replayed event counts nothing. If its first
        delivery tripped a suppression that was never confirmed with `mark_emitted` (a crash
        between Redis and Kafka), that suppression is returned again, with the same id; the
        same holds for a tenant alert. Raises Transient when Redis is unreachable; applying
        the same events again afterwards is safe."""
        plan = self.plan(events)
        outcome = self.read(plan, await self.run(plan.calls))
        if outcome.skipped:
            outcome = await self.resend(plan, outcome)
        return outcome

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

    def confirm_calls(
        self, suppressions: Sequence[Suppression], alerts: Sequence[SenderAlert] = ()
    ) -> list[Call]:
        """The confirm calls of `suppressions` and `alerts`: one (`confirm_call`) on a
        standalone Redis; on a Cluster one per primary, each holding the forgets of the
        addresses and the history and alert records of the tenants that node serves now."""
        if self.cluster is None:
            call = self.confirm_call(suppressions, alerts)
            return [] if call is None else [call]
        marks: dict[str | None, list[Suppression]] = {}
        records: dict[str | None, list[Suppression]] = {}
        sent: dict[str | None, list[SenderAlert]] = {}
        for s in suppressions:
            marks.setdefault(self.route(s.address), []).append(s)
            records.setdefault(self.route(f"tenant:{s.tenant}"), []).append(s)
        for a in alerts:
            sent.setdefault(self.route(f"tenant:{a.tenant}"), []).append(a)
        calls = []
        for node in {**marks, **records, **sent}:
            args: list[Any] = [self.namespace, HISTORY_CAP, self.state_ttl]
            args.append(len(marks.get(node, [])))
            for s in marks.get(node, []):
                args += [s.address, s.tenant, digest(s.trigger_event_id)]
            args.append(len(records.get(node, [])))
            for s in records.get(node, []):
                args += [s.tenant, to_ms(s.ts), s.event_id, history_record(s)]
            args.append(len(sent.get(node, [])))
            for a in sent.get(node, []):
                args += [a.tenant, f"{a.rule}:{to_ms(a.ts) // (DAY * 1000)}"]
            calls.append(Call("confirm", args, node))
        return calls

    async def mark_emitted(
        self,
        suppressions: Sequence[Suppression],
        alerts: Sequence[SenderAlert] = (),
        acks: Sequence[Ack] = (),
    ) -> None:
        """Record that `suppressions` and `alerts` reached Kafka: replaying their trigger
        events later re-emits nothing, and the suppressions join their tenants' histories.
        Call only after the sends were acknowledged. Idempotent; raises Transient (on a
        Cluster also when a slot moved under a call: calling again routes it afresh). `acks`
        tell the outage guard its alerts and released suppressions were sent."""
        if not suppressions and not alerts and not acks:
            return
        await self.ready()
        calls = self.confirm_calls(suppressions, alerts)
        if acks:
            calls.append(guard_confirm_call(self.namespace, acks))
        await self.run(calls)

    async def ready(self) -> None:
        """Cluster: read the slot map unless it is known (the client is lazy); nothing on a
        standalone Redis. Raises Transient when no node answers."""
        if self.cluster is not None:
            with redis_errors():
                await self.cluster.initialize()

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
        await self.ready()
        node = self.route(address) if self.cluster is not None else None
        [reply] = await self.run([Call("reactivate", args, node, address)])
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
