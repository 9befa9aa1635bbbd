"""Markers of scheduled jobs that ran, so a periodic job runs once per period across restarts.

NS:schedule:<run>   string "1", expires after two periods
"""

from __future__ import annotations

from pipeline.core.errors import Transient
from pipeline.state.store import REDIS_DOWN, Store


def _key(store: Store, run: str) -> str:
    return f"{store.namespace}:schedule:{run}"


async def is_done(store: Store, run: str) -> bool:
    """True when `run` was marked done. Raises Transient when Redis is unreachable."""
    try:
        return bool(await store.client.exists(_key(store, run)))
    except REDIS_DOWN as exc:
        raise Transient(f"redis unreachable: {exc}") from exc


async def mark_done(store: Store, run: str, ttl_seconds: float) -> None:
    """Mark `run` done for `ttl_seconds`. Raises Transient when Redis is unreachable."""
    try:
        await store.client.set(_key(store, run), "1", ex=max(1, int(ttl_seconds)))
    except REDIS_DOWN as exc:
        raise Transient(f"redis unreachable: {exc}") from exc
