"""Markers of scheduled jobs that ran, so a periodic job runs once per period across restarts.

NS:schedule:<run>   string "1", expires after two periods
"""

from __future__ import annotations

from pipeline.state import keys
from pipeline.state.errors import redis_errors
from pipeline.state.store import Store


async def is_done(store: Store, run: str) -> bool:
    """True when `run` was marked done. Raises Transient when Redis is unreachable."""
    with redis_errors():
        return bool(await store.client.exists(keys.schedule(store.namespace, run)))


async def mark_done(store: Store, run: str, ttl_seconds: float) -> None:
    """Mark `run` done for `ttl_seconds`. Raises Transient when Redis is unreachable."""
    with redis_errors():
        await store.client.set(
            keys.schedule(store.namespace, run), "1", ex=max(1, int(ttl_seconds))
        )
