"""The typed async door to Redis: apply batches of events, return what they trip.

`Store.apply` (and `apply_attempts`, its attempts-only form) is the one entry point the worker
and `replay` share, so both decide exactly alike. One pipelined round trip per batch for the
per-address scripts (plus one more only when a tenant-rate rule has new events to count); the
Lua scripts dedupe by event id, so applying the same batch twice changes nothing and returns
the same unconfirmed suppressions again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, OutOfMemoryError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pipeline.core.classify import classify_attempt
from pipeline.core.errors import Transient
from pipeline.core.events import Engagement, Event, Feedback
from pipeline.core.models import (
    Attempt,
    BounceClass,
    Classification,
    Scope,
    SenderAlert,
    Suppression,
)
from pipeline.core.policies import DAY_MS, Policy, PolicyBook, RuleKind
from pipeline.core.policy_plan import (
    event_arg,
    reactivation,
    rule_ops,
    sender_alert,
    suppression_from_decision,
    to_ms,
)
from pipeline.state import keys, scripts

DAY = 86_400
HOUR = 3_600
# Unreachable, or refusing writes for now (maxmemory reached, a replica after a failover):
# either way the batch must be retried, never dead-lettered as an internal error.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError, OutOfMemoryError, ReadOnlyError)


@dataclass
class Applied:
    """What one batch tripped, in the order the events came."""

    suppressions: list[Suppression] = field(default_factory=list)
    alerts: list[SenderAlert] = field(default_factory=list)


async def execute(pipe: Any) -> list[Any]:
    """Execute a redis-py pipeline in ONE round trip; raise Transient when Redis is unreachable.

    redis-py would send SCRIPT EXISTS before every pipeline that calls a script (a second
    round trip per batch). We send the EVALSHAs straight away instead, and only when Redis
    answers NOSCRIPT (its script cache was emptied by a restart or SCRIPT FLUSH) load the
    scripts and send the same commands again: every script dedupes by event id or is a pure
    read or overwrite, so running the ones that did succeed a second time changes nothing.
    """
    scripts, stack = list(pipe.scripts), list(pipe.command_stack)
    pipe.scripts.clear()
    try:
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        if any(isinstance(r, NoScriptError) for r in replies):
            for script in scripts:
                script.sha = await pipe.immediate_execute_command("SCRIPT LOAD", script.script)
            for args, options in stack:  # execute() reset the pipeline: queue them again
                pipe.pipeline_execute_command(*args, **options)
            replies = await pipe.execute(raise_on_error=False)
    except REDIS_DOWN as exc:
        raise Transient(f"redis unreachable: {exc}") from exc
    errors = [r for r in replies if isinstance(r, Exception)]
    if errors:
        if isinstance(errors[0], REDIS_DOWN):
            raise Transient(f"redis unreachable: {errors[0]}") from errors[0]
        raise errors[0]
    return replies


class Store:
    """Per-address counters and suppression state in Redis, judged by a book of policies."""

    def __init__(
        self,
        client: aioredis.Redis,
        policies: PolicyBook | Policy,
        *,
        namespace: str = "bg",
        state_ttl_days: int = 400,
        dedupe_ttl_days: int = 14,
        bounce_log_size: int = 20,
        delivered_log_hours: int = 72,
    ) -> None:
        self.client = client
        self.book = policies if isinstance(policies, PolicyBook) else PolicyBook(policies)
        self.namespace = namespace
        self.state_ttl = state_ttl_days * DAY
        self.dedupe_ttl = dedupe_ttl_days * DAY
        self.log_size = bounce_log_size
        self.delivered_ttl = delivered_log_hours * HOUR
        self.scripts = scripts.register_all(client)
        self._rates_pending: list[tuple[Attempt | Feedback, Classification]] = []

    @classmethod
    def from_url(cls, url: str, policies: PolicyBook | Policy, **kwargs: Any) -> Store:
        """Connect lazily to the Redis at `url` (no I/O until the first call)."""
        return cls(aioredis.Redis.from_url(url), policies, **kwargs)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    async def ping(self) -> bool:
        """Return True when Redis answers; raise Transient when it does not."""
        try:
            return bool(await self.client.ping())
        except REDIS_DOWN as exc:
            raise Transient(f"redis unreachable: {exc}") from exc

    def scope_keys(
        self, policy: Policy, address: str, tenant: str, list_id: str | None
    ) -> list[str]:
        """The state hashes `policy` keeps for this address, narrow to broad."""
        return [
            keys.scope_state(self.namespace, address, tenant, scope, list_id)
            for scope in policy.scopes()
        ]

    async def apply_attempts(self, attempts: Sequence[Attempt]) -> list[Suppression]:
        """Count `attempts` (in order) and return the suppressions they trip, in order.

        Exactly once per event id: a replayed attempt counts nothing. If its first delivery
        tripped a suppression that was never confirmed with `mark_emitted` (a crash between
        Redis and Kafka), that suppression is returned again, with the same event id.
        Raises Transient when Redis is unreachable; nothing is half-applied per attempt,
        and re-applying the whole batch afterwards is safe.
        """
        return (await self.apply(attempts)).suppressions

    async def apply(self, events: Sequence[Event]) -> Applied:
        """Apply attempts, feedback and engagement events (in order) and return the
        suppressions and tenant alerts they trip, in order. Same guarantees as
        `apply_attempts`; alerts are raised at most once per tenant, rule and day."""
        # A duplicate inside one batch is dropped here: the script would otherwise hand back
        # the first copy's decision, not yet confirmed, and the batch would emit it twice.
        events = _first_of_each_id(events)
        if not events:
            return Applied()
        pipe = self.client.pipeline(transaction=False)
        verdicts: list[Classification | None] = []
        for event in events:
            verdicts.append(await self._queue(pipe, event))
        replies = await execute(pipe)
        applied = Applied()
        fresh: list[tuple[Attempt | Feedback, Classification]] = []
        for event, verdict, reply in zip(events, verdicts, replies, strict=True):
            if verdict is None or isinstance(event, Engagement):
                continue
            answer = orjson.loads(reply)
            if not answer.get("dup"):
                fresh.append((event, verdict))
            for decision in answer["decided"] or ():
                applied.suppressions.append(self._suppression(event, decision))
        # Counted events whose tenant rates are not in Redis yet. If the rate round trip fails,
        # the batch is retried, and then its events are duplicates (not fresh): keeping them
        # here lets the retry count their rates instead of losing them.
        self._rates_pending.extend(fresh)
        applied.alerts = await self._tenant_rates(self._rates_pending)
        self._rates_pending = []
        return applied

    async def _queue(self, pipe: Any, event: Event) -> Classification | None:
        """Queue the script call of one event on `pipe`; return its verdict (None for an
        engagement)."""
        policy = self.book.for_tenant(event.tenant)
        units = self.scope_keys(policy, event.recipient, event.tenant, event.list_id)
        seen = keys.seen(self.namespace, event.recipient, event.event_id)
        if isinstance(event, Engagement):
            engaged = max((r.engaged_days for r in policy.rules), default=0.0) * DAY
            eng_args = [to_ms(event.ts), self.dedupe_ttl, int(max(engaged, DAY))]
            await self.scripts["record_engagement"](keys=[seen, *units], args=eng_args, client=pipe)
            return None
        verdict = event.classification() if isinstance(event, Feedback) else classify_attempt(event)
        script_keys = [
            seen,
            keys.bounce_log(self.namespace, event.recipient),
            keys.delivered_log(self.namespace, event.recipient),
            *units,
        ]
        args: list[Any] = [
            event_arg(event, verdict, policy),
            rule_ops(policy, verdict.bounce_class, verdict.category),
            self.state_ttl,
            self.dedupe_ttl,
            self.log_size,
            self.delivered_ttl,
            bounce_cap(policy),
        ]
        await self.scripts["record_attempt"](keys=script_keys, args=args, client=pipe)
        return verdict

    def _suppression(self, event: Attempt | Feedback, decision: dict[str, Any]) -> Suppression:
        return suppression_from_decision(
            self.book.for_tenant(event.tenant),
            decision,
            address=event.recipient,
            tenant=event.tenant,
            list_id=event.list_id,
            trigger_event_id=event.event_id,
            ts=event.ts,
        )

    async def _tenant_rates(
        self, fresh: Sequence[tuple[Attempt | Feedback, Classification]]
    ) -> list[SenderAlert]:
        """Second round trip, only for tenants whose policy has a tenant-rate rule and only
        with events counted for the first time: per-day delivered and matching counts."""
        calls = []
        for tenant, events in _by_tenant(fresh).items():
            policy = self.book.for_tenant(tenant)
            for rule in (r for r in policy.rules if r.kind is RuleKind.TENANT_RATE):
                deltas: dict[int, list[int]] = defaultdict(lambda: [0, 0])
                latest: Attempt | Feedback | None = None
                for event, verdict in events:
                    day = to_ms(event.ts) // DAY_MS
                    if verdict.bounce_class is BounceClass.DELIVERED:
                        deltas[day][0] += 1
                    elif rule.matches(verdict.bounce_class, verdict.category):
                        deltas[day][1] += 1
                        latest = event if latest is None or event.ts >= latest.ts else latest
                if deltas:
                    calls.append((policy, rule, tenant, deltas, latest))
        if not calls:
            return []
        pipe = self.client.pipeline(transaction=False)
        for _, rule, tenant, deltas, latest in calls:
            at_day = (to_ms(latest.ts) if latest else max(deltas) * DAY_MS) // DAY_MS
            window = max(1, round(rule.window_days))
            args: list[bytes | int | float] = [
                orjson.dumps({str(d): v for d, v in deltas.items()}),
                at_day if latest else -1,  # no new matching event: count, never alert
                window,
                rule.max_rate,
                rule.threshold,
                (window * 2 + 1) * DAY,
            ]
            key = keys.tenant_rate(self.namespace, tenant)
            await self.scripts["tenant_rate"](keys=[key], args=args, client=pipe)
        alerts = []
        for (policy, rule, tenant, _, latest), reply in zip(
            calls, await execute(pipe), strict=True
        ):
            answer = orjson.loads(reply)
            if answer["alert"] and latest is not None:
                alerts.append(
                    sender_alert(
                        policy,
                        rule,
                        tenant=tenant,
                        count=int(answer["count"]),
                        sent=int(answer["sent"]),
                        ts=latest.ts,
                    )
                )
        return alerts

    async def mark_emitted(self, suppressions: Sequence[Suppression]) -> None:
        """Record that `suppressions` reached Kafka, so replaying their trigger events later
        re-emits nothing. Call only after the sends were acknowledged. Raises Transient."""
        if not suppressions:
            return
        pipe = self.client.pipeline(transaction=False)
        await self.queue_mark_emitted(pipe, suppressions)
        await execute(pipe)

    async def queue_mark_emitted(self, pipe: Any, suppressions: Sequence[Suppression]) -> None:
        """Queue `mark_emitted`'s script calls on `pipe` (to share a round trip)."""
        for s in suppressions:
            seen = keys.seen(self.namespace, s.address, s.trigger_event_id)
            await self.scripts["mark_emitted"](keys=[seen], args=[], client=pipe)

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
        key = keys.scope_state(self.namespace, address, tenant, scope, list_id)
        outbox = keys.seen(self.namespace, address, request_id)
        call: Awaitable[Any] = self.scripts["reactivate"](
            keys=[key, outbox], args=[self.dedupe_ttl]
        )
        try:
            cleared = orjson.loads(await call)
        except REDIS_DOWN as exc:
            raise Transient(f"redis unreachable: {exc}") from exc
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


def bounce_cap(policy: Policy) -> int:
    """Sends kept in a scope's bounce count: enough for every count-threshold rule."""
    caps = [r.max_tracked for r in policy.rules if r.kind is RuleKind.COUNT_THRESHOLD]
    return max([32, *caps])


def _by_tenant(
    fresh: Sequence[tuple[Attempt | Feedback, Classification]],
) -> dict[str, list[tuple[Attempt | Feedback, Classification]]]:
    out: dict[str, list[tuple[Attempt | Feedback, Classification]]] = defaultdict(list)
    for event, verdict in fresh:
        out[event.tenant].append((event, verdict))
    return out


def _first_of_each_id(events: Sequence[Event]) -> list[Event]:
    seen: set[str] = set()
    unique = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            unique.append(event)
    return unique
