"""The suppression history of each tenant, for `GET /v1/suppressions` (newest events last).

Written after the events reached Kafka (so the history never shows an event consumers could
not have seen); read in pages ordered by event time, then event id. The key is per tenant,
outside any address's hash tag, so it is written with its own script call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from pipeline.core.models import Suppression
from pipeline.core.policy_plan import to_ms
from pipeline.state import keys
from pipeline.state.store import Store, execute

HISTORY_CAP = 100_000
"""Events kept per tenant; older ones drop off (Kafka's suppression.events is the archive)."""


@dataclass(frozen=True)
class Page:
    """One page of history: the events, and the cursor of the next page (None at the end)."""

    items: list[dict[str, Any]]
    next_since_ms: int | None
    next_after: str | None


async def record(store: Store, suppressions: Sequence[Suppression]) -> None:
    """Append `suppressions` to their tenants' histories (idempotent per event id).
    Raises Transient when Redis is unreachable."""
    if not suppressions:
        return
    pipe = store.client.pipeline(transaction=False)
    await queue_record(store, pipe, suppressions)
    await execute(pipe)


async def mark_emitted_and_record(store: Store, suppressions: Sequence[Suppression]) -> None:
    """`Store.mark_emitted` and `record` in one round trip: what follows a delivered batch.
    Raises Transient when Redis is unreachable (both are idempotent, so retrying is safe)."""
    if not suppressions:
        return
    pipe = store.client.pipeline(transaction=False)
    await store.queue_mark_emitted(pipe, suppressions)
    await queue_record(store, pipe, suppressions)
    await execute(pipe)


async def queue_record(store: Store, pipe: Any, suppressions: Sequence[Suppression]) -> None:
    """Queue `record`'s script calls on `pipe`."""
    script = store.scripts["record_history"]
    for s in suppressions:
        args: list[bytes | str | int] = [
            to_ms(s.ts),
            s.event_id,
            orjson.dumps(s.to_json()),
            HISTORY_CAP,
            store.state_ttl,
        ]
        await script(keys=[keys.history(store.namespace, s.tenant)], args=args, client=pipe)


async def page(
    store: Store, tenant: str, *, since: datetime | None, after: str | None, limit: int
) -> Page:
    """Events of `tenant` with event time >= `since` (all when None), skipping those at exactly
    `since` whose id is <= `after` (the cursor of the previous page), oldest first, at most
    `limit`. Raises Transient when Redis is unreachable."""
    low = to_ms(since) if since else 0
    key = keys.history(store.namespace, tenant)
    chunk = limit * 2 + 1
    items: list[tuple[int, str, dict[str, Any]]] = []
    offset = 0
    # The cursor's ties are skipped here, not in Redis, and there may be more of them than
    # one fetch holds (a mass bounce logged within one second): fetch on until the page
    # plus one (to know there is more) is filled or the history ends.
    while len(items) <= limit:
        pipe = store.client.pipeline(transaction=False)
        pipe.zrangebyscore(key, low, "+inf", start=offset, num=chunk, withscores=True)
        [rows] = await execute(pipe)
        for member, score in rows:
            event_id, _, body = member.decode().partition(" ")
            if since is not None and after is not None and int(score) == low and event_id <= after:
                continue
            if items and (int(score), event_id) <= items[-1][:2]:
                continue  # shifted into this fetch by a write between two fetches
            items.append((int(score), event_id, orjson.loads(body)))
        if len(rows) < chunk:
            break
        offset += len(rows)
    more = len(items) > limit
    items = items[:limit]
    if not more or not items:
        return Page([i[2] for i in items], None, None)
    return Page([i[2] for i in items], items[-1][0], items[-1][1])
