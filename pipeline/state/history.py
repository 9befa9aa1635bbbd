"""The suppression history of each tenant, for `GET /v1/suppressions` (newest events last).

Written by `Store.mark_emitted` after the events reached Kafka (so the history never shows an
event consumers could not have seen); read here in pages ordered by event time, then event
id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pipeline.core.wire import history_event, to_ms
from pipeline.state import keys
from pipeline.state.errors import redis_errors
from pipeline.state.store import Store


@dataclass(frozen=True)
class Page:
    """One page of history: the events, and the cursor of the next page (None at the end)."""

    items: list[dict[str, Any]]
    next_since_ms: int | None
    next_after: str | None


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
        with redis_errors():
            rows = cast(
                "list[tuple[bytes, float]]",
                await store.client.zrangebyscore(
                    key, low, "+inf", start=offset, num=chunk, withscores=True
                ),
            )
        for member, score in rows:
            event_id, _, body = member.decode().partition(" ")
            if since is not None and after is not None and int(score) == low and event_id <= after:
                continue
            if items and (int(score), event_id) <= items[-1][:2]:
                continue  # shifted into this fetch by a write between two fetches
            event = history_event(body, event_id=event_id, tenant=tenant, ts_ms=int(score))
            items.append((int(score), event_id, event))
        if len(rows) < chunk:
            break
        offset += len(rows)
    more = len(items) > limit
    items = items[:limit]
    if not more or not items:
        return Page([i[2] for i in items], None, None)
    return Page([i[2] for i in items], items[-1][0], items[-1][1])
