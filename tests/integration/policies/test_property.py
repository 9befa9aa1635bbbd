"""Property: duplicating events, re-sending earlier batches, or crashing between Redis and
Kafka (a batch applied but never confirmed, then applied again) never changes the outcome.

The baseline applies every event exactly once; the comparison is of every emitted event in
full, duplicates kept (issue 14: the earlier version fed the baseline the same in-batch
duplicates and dropped repeated ids before comparing, so a double emission passed: with
`confirm` never forgetting a pending decision, every later duplicate re-emits its suppression;
this version fails on that bug, the earlier one passed)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import orjson
import pytest
import redis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.core.events import Event
from pipeline.core.policies import PolicyBook, load_preset
from tests.integration.policies.conftest import T0, Engine, attempt, engagement, feedback

pytestmark = pytest.mark.integration

KINDS = [
    "user_unknown",
    "inactive_mailbox",
    "mailbox_full",
    "transient",
    "delivered",
    "spam_block",
    "complaint",
    "open",
]
# Small thresholds so that a dozen events can trip every counting rule kind.
POLICIES = {
    "default": load_preset(
        "default", {"rules": {"consecutive_soft": {"threshold": 3, "engaged_threshold": 4}}}
    ),
    "bsd": load_preset("bsd"),
    "ecomail": load_preset(
        "ecomail", {"rules": {"soft_retry_limit": {"threshold": 4, "per_campaign": 2}}}
    ),
    "benchmark": load_preset("benchmark"),
    "listrak": load_preset("listrak"),
}

event_spec = st.tuples(st.sampled_from(KINDS), st.integers(0, 72), st.integers(0, 3))


def build(specs: list[tuple[str, int, int]]) -> list[Event]:
    events: list[Event] = []
    for i, (kind, hours, campaign) in enumerate(specs):
        ts = T0 + timedelta(hours=hours)
        common = {"list_id": "l1"}
        if kind == "open":
            events.append(engagement(ts, campaign=f"c{campaign}", **common))
        elif kind == "complaint":
            events.append(feedback("complaint", ts, **common))
        else:
            events.append(attempt(kind, ts, campaign=f"c{campaign}", event_id=f"e{i}", **common))
    return events


def stateless_delivery_edge(specs: list[tuple[str, int, int]]) -> bool:
    """A delivery followed later in the stream by a bounce or complaint at or before its time:
    the one documented case where batching and replays change the outcome (README,
    "Choices": a delivery to an address without bounce state stores nothing, so whether it
    resets that older bounce depends on whether the address had state when the delivery was
    applied, which a duplicate or a re-sent batch changes). Pinned by
    `test_a_replayed_stateless_delivery_may_reset_an_older_bounce` below."""
    for i, (kind, hours, _c) in enumerate(specs):
        if kind == "delivered" and any(
            later not in ("delivered", "open") and at <= hours for later, at, _ in specs[i + 1 :]
        ):
            return True
    return False


def clean_outcome(eng: Engine, batches: list[list[Event]]) -> list[dict[str, Any]]:
    """Every event exactly once, every batch confirmed: the suppressions it emits, in full."""
    return [s.to_json() for batch in batches for s in eng.send(*batch)]


def noisy_outcome(
    eng: Engine, batches: list[list[Event]], noise: list[int]
) -> list[dict[str, Any]]:
    """The same batches with noise: duplicates of earlier events and of the batch's first
    event in each batch, and every other batch first applied without confirmation (a crash
    before Kafka: what that application returned was never emitted). Returns everything the
    confirmed applications emit, duplicates included."""
    seen: list[Event] = []
    emitted: list[dict[str, Any]] = []
    for n, batch in enumerate(batches):
        dupes = [seen[i % len(seen)] for i in noise[: n + 1]] if seen else []
        noisy = [*dupes, *batch, *batch[:1]]
        if n % 2 == 0:
            eng.send(*noisy, confirm=False)  # crashed: emitted nothing
        emitted.extend(s.to_json() for s in eng.send(*noisy))
        seen.extend(batch)
    return emitted


def key(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    preset=st.sampled_from(sorted(POLICIES)),
    specs=st.lists(event_spec, min_size=1, max_size=12),
    size=st.integers(1, 4),
    noise=st.lists(st.integers(0, 20), min_size=1, max_size=4),
)
def test_duplicates_and_resends_never_change_the_outcome(
    redis_server: str,
    redis_client: redis.Redis,
    preset: str,
    specs: list[tuple[str, int, int]],
    size: int,
    noise: list[int],
) -> None:
    assume(not stateless_delivery_edge(specs))
    events = build(specs)
    batches = [events[i : i + size] for i in range(0, len(events), size)]
    book = PolicyBook(POLICIES[preset])
    clean = Engine(redis_server, book, f"h{uuid.uuid4().hex[:8]}")
    noisy = Engine(redis_server, book, f"h{uuid.uuid4().hex[:8]}")
    try:
        # The whole multiset: an event emitted twice after its confirmation, or with another
        # id, count or evidence than the clean run gave it, fails here.
        got = sorted(noisy_outcome(noisy, batches, noise), key=key)
        assert got == sorted(clean_outcome(clean, batches), key=key)
    finally:
        clean.close()
        noisy.close()


def test_a_replayed_stateless_delivery_may_reset_an_older_bounce(
    redis_server: str, redis_client: redis.Redis
) -> None:
    """The documented edge, pinned (found by the property above): a delivery at T0 to an
    address without state stores nothing; a bounce at T0 then counts; the same delivery
    applied again once the address has state (a re-shipped file, a replayed topic) is stored
    and resets that bounce, so the second bounce a day later no longer trips bsd's
    inactive_mailbox rule. Fails if deliveries to stateless addresses start being stored
    (then both runs suppress) or if a stored delivery stops resetting older bounces."""
    events = build([("delivered", 0, 0), ("user_unknown", 0, 0), ("user_unknown", 24, 0)])
    book = PolicyBook(POLICIES["bsd"])
    once = Engine(redis_server, book, f"h{uuid.uuid4().hex[:8]}")
    replayed = Engine(redis_server, book, f"h{uuid.uuid4().hex[:8]}")
    try:
        assert [s.rule for e in events for s in once.send(e)] == ["inactive_mailbox"]
        replayed.send(events[0])
        replayed.send(events[1])
        assert replayed.send(events[0], events[2]) == []
    finally:
        once.close()
        replayed.close()
