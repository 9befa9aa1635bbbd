"""The provider-outage guard's detection rules on the real Redis functions (issue 12): the
floor, the baseline, a tenant that turned it off, and a crash replay of a burst's batch. The
whole simulated outage through Kafka is tests/integration/test_outage.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import redis

from pipeline.core.plan import Outcome
from pipeline.core.policies import PolicyBook, load_preset
from tests.integration.policies.conftest import T0, Engine, attempt


def traffic(domain: str, n: int, hard_every: int, start: Any, spread: timedelta,
            tenant: str = "acme", tag: str = "u") -> list[Any]:  # fmt: skip
    """`n` attempts to distinct addresses at `domain`, every `hard_every`-th a 550 5.1.1."""
    step = spread / n
    out = []
    for i in range(n):
        category = "user_unknown" if i % hard_every == 0 else "delivered"
        out.append(attempt(category, start + i * step, address=f"{tag}{i}@{domain}", tenant=tenant))
    return out


def apply(eng: Engine, events: list[Any], confirm: bool = True) -> Outcome:
    """One batch as the worker runs it (then confirmed, acks included, unless told not to)."""
    out: Outcome = eng.run(eng.store.apply(events))
    if confirm:
        eng.run(eng.store.mark_emitted(out.suppressions, out.alerts, out.acks))
    return out


def held(client: redis.Redis, eng: Engine, group: str) -> int:
    return int(client.hlen(f"{eng.namespace}:{{og:{group}}}:held"))


def test_a_small_domain_cannot_trip_it(engine: Callable[..., Engine],
                                       redis_client: redis.Redis) -> None:  # fmt: skip
    eng = engine("default")
    out = apply(eng, traffic("small.example", 150, 2, T0, timedelta(minutes=5)))
    assert len(out.suppressions) == 75 and out.outage_alerts == []
    assert held(redis_client, eng, "small.example") == 0


def test_a_domain_that_always_bounces_this_much_is_not_in_a_burst(
    engine: Callable[..., Engine], redis_client: redis.Redis
) -> None:
    eng = engine("default")
    # a day at 12.5 % hard, then 15 minutes at 16.7 %: over 10 %, but not 5x its baseline
    apply(eng, traffic("old.example", 2400, 8, T0 - timedelta(hours=24), timedelta(hours=23)))
    out = apply(eng, traffic("old.example", 600, 6, T0, timedelta(minutes=10), tag="w"))
    assert len(out.suppressions) == 100 and out.outage_alerts == []
    # the same burst at a clean domain is one
    clean = apply(eng, traffic("new.example", 600, 6, T0, timedelta(minutes=10), tag="w"))
    assert clean.suppressions == [] and [a.phase for a in clean.outage_alerts] == ["start"]
    assert held(redis_client, eng, "new.example") == 100


def test_a_tenant_with_the_guard_off_is_suppressed_during_a_burst(
    engine: Callable[..., Engine], redis_client: redis.Redis
) -> None:
    off = load_preset("default", {"outage_guard": {"enabled": False}})
    eng = engine(PolicyBook(default=load_preset("default"), tenants={"free": off}))
    burst = traffic("gmail.com", 1000, 3, T0, timedelta(minutes=5))
    theirs = traffic("gmail.com", 10, 1, T0, timedelta(minutes=5), tenant="free", tag="f")
    out = apply(eng, burst + theirs)
    assert {s.tenant for s in out.suppressions} == {"free"} and len(out.suppressions) == 10
    assert held(redis_client, eng, "gmail") == 334


def test_a_burst_batch_applied_again_after_a_crash_holds_and_alerts_once(
    engine: Callable[..., Engine], redis_client: redis.Redis
) -> None:
    eng = engine("default")
    burst = traffic("gmail.com", 1000, 3, T0, timedelta(minutes=5))
    first = apply(eng, burst, confirm=False)  # crash between Redis and Kafka
    again = apply(eng, burst)  # the batch read again
    assert first.suppressions == again.suppressions == []
    assert [a.event_id for a in first.outage_alerts] == [a.event_id for a in again.outage_alerts]
    assert held(redis_client, eng, "gmail") == 334
    assert apply(eng, burst).outage_alerts == []  # confirmed: not sent a third time
    stats = redis_client.hgetall(f"{eng.namespace}:{{og:gmail}}:stats")
    assert int(stats[b"held"]) == 334


def counts(client: redis.Redis, eng: Engine, group: str) -> dict[bytes, int]:
    """Every count bucket of `group` (attempts and hard bounces, per minute and per hour)."""
    prefix = f"{eng.namespace}:{{og:{group}}}"
    found = [k for kind in ("a", "h", "ah", "hh") for k in client.scan_iter(f"{prefix}:{kind}:*")]
    return {k: int(client.pfcount(k)) for k in found}


def test_a_burst_read_again_in_other_cuts_counts_and_holds_nothing_twice(
    engine: Callable[..., Engine], redis_client: redis.Redis
) -> None:
    """A replay (a crash before Kafka, a re-shipped file) brings the same events in other
    batches and calls: the counts, the held records and the alert stay as the first pass
    left them, and nothing is emitted. Many calls per batch: the counts ride on the first,
    holds happen in any, only the last reports."""
    eng = engine("default")
    eng.store.limits = replace(eng.store.limits, call_events=37)
    burst = traffic("gmail.com", 1000, 3, T0, timedelta(minutes=1))  # ~1,000 a minute: dense
    first = apply(eng, burst, confirm=False)
    assert first.suppressions == [] and [a.phase for a in first.outage_alerts] == ["start"]
    before = counts(redis_client, eng, "gmail")
    minutes = {k: n for k, n in before.items() if b":a:" in k}
    # each attempt counted once (HyperLogLog: within its 0.81 % error), 334 of them hard
    assert 980 <= sum(minutes.values()) <= 1020
    assert 325 <= sum(n for k, n in before.items() if b":h:" in k) <= 343
    # busy buckets start dense (the cheap path); a count does not depend on the encoding
    assert {redis_client.execute_command("PFDEBUG", "ENCODING", k) for k in minutes} == {b"dense"}
    alerts = {a.event_id for a in first.outage_alerts}
    for size in (1000, 333, 7):
        for start in range(0, len(burst), size):
            out = apply(eng, burst[start : start + size])
            assert out.suppressions == []
            assert {a.event_id for a in out.outage_alerts} <= alerts  # re-sent, never new
    assert counts(redis_client, eng, "gmail") == before
    assert held(redis_client, eng, "gmail") == 334
    stats = redis_client.hgetall(f"{eng.namespace}:{{og:gmail}}:stats")
    assert int(stats[b"held"]) == 334


def test_with_no_grace_the_held_settle_when_the_burst_ends(
    engine: Callable[..., Engine], redis_client: redis.Redis
) -> None:
    eng = engine(load_preset("default", {"outage_guard": {"grace_minutes": 0}}))
    burst = traffic("gmail.com", 1000, 3, T0, timedelta(minutes=5))
    assert apply(eng, burst).suppressions == []
    quiet = traffic(
        "gmail.com", 50, 1000, T0 + timedelta(minutes=40), timedelta(minutes=1), tag="q"
    )
    out = apply(eng, quiet)
    assert [a.phase for a in out.outage_alerts] == ["end"]
    # the 334 held, and the one dead address of the quiet traffic at once
    assert len(out.suppressions) == 335 and held(redis_client, eng, "gmail") == 0
    assert "q0@gmail.com" in {s.address for s in out.suppressions}
    assert apply(eng, quiet).suppressions == []  # released once
