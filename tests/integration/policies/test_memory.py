"""Bounded memory: TTLs on every key, and the bytes one tracked address costs (MEMORY USAGE),
the numbers quoted in docs/policies.md."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from tests.integration.policies.conftest import ADDR, Engine, at, attempt, engagement

pytestmark = pytest.mark.integration


def footprint(client: redis.Redis, namespace: str) -> tuple[int, int]:
    """(bytes of the state keys, bytes of the dedupe keys) of ADDR; asserts every key has a
    TTL."""
    state = dedupe = 0
    for key in client.scan_iter(match=f"{namespace}:{{{ADDR}}}:*"):
        assert client.ttl(key) > 0, key
        size = int(client.memory_usage(key) or 0)
        if b":e:" in key:
            dedupe += size
        else:
            state += size
    return state, dedupe


def test_bytes_per_tracked_address(
    engine: Callable[..., Engine], redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    eng = engine("default")
    eng.send(engagement(at(days=-1)))
    eng.each(*(attempt("mailbox_full", at(days=i), campaign=f"c{i}") for i in range(5)))
    eng.send(attempt("delivered", at(days=6), campaign="c6"))
    state, dedupe = footprint(redis_client, eng.namespace)
    with capsys.disabled():
        print(f"\ndefault, 5 soft + 1 delivered: state={state} B, dedupe={dedupe} B / 7 events")
    assert state < 6_000
    assert dedupe < 7 * 150

    busy = engine("listrak")
    busy.each(
        *(attempt("mailbox_full", at(days=i), campaign=f"c{i}", list_id="m") for i in range(32))
    )
    state, dedupe = footprint(redis_client, busy.namespace)
    with capsys.disabled():
        print(f"listrak, 32 bounces (cap): state={state} B, dedupe={dedupe} B / 32 events")
    assert state < 20_000
