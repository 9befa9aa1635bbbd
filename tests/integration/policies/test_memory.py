"""Bounded memory (issue 9): no key per event, TTLs on every key, and one address's bytes
capped whatever its traffic (MEMORY USAGE). The numbers are quoted in docs/policies.md."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import orjson
import pytest
import redis

from tests.integration.policies.conftest import ADDR, Engine, at, attempt, engagement

pytestmark = pytest.mark.integration

KINDS = {b"t:acme", b"t:acme:l:m", b"ok"}
"""The keys an address may have under `{address}` (docs/policies.md, Redis state)."""


def footprint(client: redis.Redis, namespace: str, address: str = ADDR) -> tuple[int, set[bytes]]:
    """(bytes, key kinds) of `address`'s keys; asserts every key has a TTL."""
    total, kinds = 0, set()
    prefix = f"{namespace}:{{{address}}}:".encode()
    for key in client.scan_iter(match=f"{namespace}:{{{address}}}:*"):
        assert client.ttl(key) > 0, key
        total += int(client.memory_usage(key, samples=0) or 0)
        kinds.add(key.removeprefix(prefix))
    return total, kinds


def test_bytes_per_tracked_address_and_no_key_per_event(
    engine: Callable[..., Engine], redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    eng = engine("default")
    eng.send(engagement(at(days=-1)))
    eng.each(*(attempt("mailbox_full", at(days=i), campaign=f"c{i}") for i in range(5)))
    eng.send(attempt("delivered", at(days=6), campaign="c6"))
    state, kinds = footprint(redis_client, eng.namespace)
    with capsys.disabled():
        print(f"\ndefault, 5 soft + 1 delivered + 1 open: {state} B, keys {sorted(kinds)}")
    # No dedupe key, no delivered log under default, the bounce log inside the document.
    assert kinds == {b"t:acme"}
    assert state < 3_000

    eng.send(attempt("delivered", at(days=7), address="fresh@example.com"))
    assert footprint(redis_client, eng.namespace, "fresh@example.com") == (0, set())


def test_one_address_with_ten_thousand_attempts_stays_under_its_cap(
    engine: Callable[..., Engine], redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every tracker is capped: 10,000 attempts (soft bounces, blocks, deliveries, opens, over
    2,000 campaigns) leave the address about as big as its first 500 did."""
    eng = engine("listrak")
    mix = ("mailbox_full", "spam_block", "mailbox_full", "transient", "delivered")
    step = timedelta(minutes=7)

    def chunk(start: int, n: int) -> list:
        out = [
            attempt(mix[i % 5], at(0) + step * i, campaign=f"c{i // 5}", list_id="m")
            for i in range(start, start + n)
        ]
        out.append(engagement(at(0) + step * (start + n), list_id="m"))
        return out

    eng.send(*chunk(0, 500))
    early, _ = footprint(redis_client, eng.namespace)
    for start in range(500, 10_000, 1_000):
        eng.send(*chunk(start, 1_000))
    late, kinds = footprint(redis_client, eng.namespace)
    with capsys.disabled():
        print(f"listrak, 10,000 attempts: {early} B after 500, {late} B after 10,000")
    assert kinds <= KINDS
    assert late < 20_000
    assert late < early * 1.5


def test_a_replay_guard_written_as_pairs_by_an_earlier_version_still_guards(
    engine: Callable[..., Engine], redis_client: redis.Redis
) -> None:
    """The `seen` ring is now one fixed-width string; a document written by the version that
    kept it as [ts, digest] pairs is read as the same ring: its events still count once."""
    eng = engine("default")
    first = attempt("mailbox_full", at(days=0), campaign="c0", event_id="legacy-0")
    eng.send(first)
    key = f"{eng.namespace}:{{{ADDR}}}:t:acme"
    raw = redis_client.get(key)
    assert raw is not None
    body, sep, log = raw[13:].partition(b"\n")
    fields = orjson.loads(body)
    ring = fields["seen"]
    assert isinstance(ring, str) and len(ring) == 25
    fields["seen"] = [[int(ring[:13]), ring[13:]]]  # as the earlier version wrote it
    redis_client.set(key, raw[:13] + orjson.dumps(fields) + sep + log, keepttl=True)
    eng.send(first)  # a replay: must be recognised (a "new" event would be logged again)
    assert redis_client.get(key).count(b"\n") == 1  # one bounce-log line
    eng.send(attempt("mailbox_full", at(days=1), campaign="c1", event_id="legacy-1"))
    fields = orjson.loads(redis_client.get(key)[13:].partition(b"\n")[0])
    assert len(fields["bn"]) == 2 and len(fields["seen"]) == 50
    assert redis_client.get(key).count(b"\n") == 2
    assert fields["seen"][:25] == ring  # converted, ascending
