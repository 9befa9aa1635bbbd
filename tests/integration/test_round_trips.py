"""One Redis round trip per batch: no SCRIPT EXISTS or FUNCTION LOAD before the calls, and a
Redis without our function library (new, or FUNCTION FLUSH) is handled by loading it and
re-sending only the refused calls."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis

from pipeline.core.decode import attempt_from_mapping
from pipeline.core.policies import load_preset
from pipeline.state.store import Store
from tests.integration.test_worker import attempt

pytestmark = pytest.mark.integration


def calls(client: redis.Redis, command: str) -> int:
    """How many times Redis ran `command` (INFO commandstats), 0 when never."""
    stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def apply(url: str, namespace: str, docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Apply `docs` as one batch through a fresh Store; return (address, event id) of the
    suppressions it trips (none is marked emitted)."""

    async def go() -> list[tuple[str, str]]:
        store = Store.from_url(url, load_preset("default"), namespace=namespace)
        try:
            out = await store.apply_attempts([attempt_from_mapping(d) for d in docs])
            return [(s.address, s.event_id) for s in out]
        finally:
            await store.close()

    return asyncio.run(go())


def test_a_batch_is_one_function_call_and_survives_a_function_flush(
    redis_server: str, redis_client: redis.Redis
) -> None:
    """One FCALL per batch (no SCRIPT EXISTS, no load) once the library is in; a Redis whose
    library is gone (a new Redis, FUNCTION FLUSH) gets it loaded and the call sent again."""
    ns = f"rt{uuid.uuid4().hex[:8]}"
    apply(redis_server, ns, [attempt("warm@example.com")])  # library loaded once
    redis_client.config_resetstat()
    docs = [attempt(f"u{n}@example.com") for n in range(20)]
    assert len(apply(redis_server, ns, docs)) == 20
    assert calls(redis_client, "script|exists") == 0
    assert calls(redis_client, "function|load") == 0
    assert calls(redis_client, "fcall") == 1

    redis_client.function_flush()
    more = [attempt(f"v{n}@example.com") for n in range(5)]
    first = apply(redis_server, ns, more)
    assert [a for a, _ in first] == [f"v{n}@example.com" for n in range(5)]
    # The same batch again counts nothing twice: the same (unconfirmed) events come back.
    assert apply(redis_server, ns, more) == first
