"""The typed async door to Redis: count batches of attempts, return the suppressions they trip.

`Store.apply_attempts` is the one entry point the worker and `replay` share, so both decide
exactly alike. One pipelined round trip per batch; the Lua script dedupes by event id, so
applying the same batch twice changes nothing and returns the same suppressions again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pipeline.core.classify import classify_attempt
from pipeline.core.errors import Transient
from pipeline.core.ids import suppression_event_id
from pipeline.core.models import Action, Attempt, Classification, Scope, Suppression
from pipeline.core.policies import Policy
from pipeline.state import keys, scripts

DAY = 86_400


class Store:
    """Per-address counters and suppression state in Redis, for one policy."""

    def __init__(
        self,
        client: aioredis.Redis,
        policy: Policy,
        *,
        namespace: str = "bg",
        state_ttl_days: int = 400,
        dedupe_ttl_days: int = 14,
    ) -> None:
        self._client = client
        self._policy = policy
        self._ns = namespace
        self._state_ttl = state_ttl_days * DAY
        self._dedupe_ttl = dedupe_ttl_days * DAY
        self._record = scripts.register(client, "record_attempt")
        self._mark_emitted = scripts.register(client, "mark_emitted")

    @classmethod
    def from_url(cls, url: str, policy: Policy, **kwargs: Any) -> Store:
        """Connect lazily to the Redis at `url` (no I/O until the first call)."""
        return cls(aioredis.Redis.from_url(url), policy, **kwargs)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def ping(self) -> bool:
        """Return True when Redis answers; raise Transient when it does not."""
        try:
            return bool(await self._client.ping())
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise Transient(f"redis unreachable: {exc}") from exc

    async def apply_attempts(self, attempts: Sequence[Attempt]) -> list[Suppression]:
        """Count `attempts` (in order) and return the suppressions they trip, in order.

        Exactly once per event id: a replayed attempt counts nothing. If its first delivery
        tripped a suppression that was never confirmed with `mark_emitted` (a crash between
        Redis and Kafka), that suppression is returned again, with the same event id.
        Raises Transient when Redis is unreachable; nothing is half-applied per attempt,
        and re-applying the whole batch afterwards is safe.
        """
        # A duplicate inside one batch is dropped here: the script would otherwise hand back
        # the first copy's decision, not yet confirmed, and the batch would emit it twice.
        attempts = _first_of_each_id(attempts)
        if not attempts:
            return []
        verdicts = [classify_attempt(a) for a in attempts]
        pipe = self._client.pipeline(transaction=False)
        for attempt, verdict in zip(attempts, verdicts, strict=True):
            await self._record(
                keys=[
                    keys.state(self._ns, attempt.recipient, attempt.tenant),
                    keys.seen(self._ns, attempt.recipient, attempt.event_id),
                ],
                args=self._record_args(attempt, verdict),
                client=pipe,
            )
        try:
            replies = await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise Transient(f"redis unreachable: {exc}") from exc
        out = []
        for attempt, verdict, reply in zip(attempts, verdicts, replies, strict=True):
            decided = orjson.loads(reply)["decided"]
            if decided:
                out.append(self._suppression(attempt, verdict, decided))
        return out

    async def mark_emitted(self, suppressions: Sequence[Suppression]) -> None:
        """Record that `suppressions` reached Kafka, so replaying their trigger events later
        re-emits nothing. Call only after the sends were acknowledged. Raises Transient."""
        if not suppressions:
            return
        pipe = self._client.pipeline(transaction=False)
        for s in suppressions:
            seen = keys.seen(self._ns, s.address, s.trigger_event_id)
            await self._mark_emitted(keys=[seen], args=[], client=pipe)
        try:
            await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise Transient(f"redis unreachable: {exc}") from exc

    def _record_args(self, attempt: Attempt, verdict: Classification) -> list[str | int]:
        send_key = attempt.campaign_id or attempt.message_id or attempt.event_id
        return [
            verdict.bounce_class.value,
            verdict.category.value,
            send_key,
            self._policy.soft_threshold,
            "1" if self._policy.hard_immediate else "0",
            self._state_ttl,
            self._dedupe_ttl,
        ]

    def _suppression(
        self, attempt: Attempt, verdict: Classification, decided: dict[str, Any]
    ) -> Suppression:
        rule = str(decided["rule"])
        event_id = suppression_event_id(
            action=Action.SUPPRESSED,
            address=attempt.recipient,
            tenant=attempt.tenant,
            scope=Scope.TENANT,
            list_id=None,
            rule=rule,
            trigger=attempt.event_id,
        )
        return Suppression(
            event_id=event_id,
            action=Action.SUPPRESSED,
            address=attempt.recipient,
            tenant=attempt.tenant,
            scope=Scope.TENANT,
            list_id=None,
            reason=str(decided["reason"]),
            rule=rule,
            count=int(decided["count"]),
            threshold=int(decided["threshold"]),
            policy=self._policy.name,
            tag=None,
            trigger_event_id=attempt.event_id,
            ts=attempt.ts,
            evidence=(_evidence(attempt, verdict),),
        )


def _first_of_each_id(attempts: Sequence[Attempt]) -> list[Attempt]:
    seen: set[str] = set()
    unique = []
    for attempt in attempts:
        if attempt.event_id not in seen:
            seen.add(attempt.event_id)
            unique.append(attempt)
    return unique


def _evidence(attempt: Attempt, verdict: Classification) -> dict[str, Any]:
    return {
        "event_id": attempt.event_id,
        "ts": attempt.to_json()["ts"],
        "category": verdict.category.value,
        "smtp_code": attempt.smtp_code,
        "enhanced_code": attempt.enhanced_code,
        "diagnostic": attempt.diagnostic,
    }
