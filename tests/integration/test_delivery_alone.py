"""A delivery alone in its address group takes the apply function's short path (lua/apply.lua,
`deliver_alone`: the header compared and rewritten as text); it must leave exactly the state
the general path leaves for the same event, whatever the event time's number of digits."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest
import redis

from pipeline.core.decode import attempt_from_mapping
from pipeline.core.policies import load_preset
from pipeline.core.wire import to_ms
from pipeline.state import keys
from pipeline.state.store import Store
from tests.integration.test_worker import attempt

pytestmark = pytest.mark.integration

SOFT = {"smtp_code": 452, "enhanced_code": "4.2.2", "diagnostic": "452 4.2.2 mailbox full"}


def apply(url: str, ns: str, docs: list[dict[str, Any]]) -> None:
    """Apply `docs` as one batch (one address group per recipient)."""

    async def go() -> None:
        store = Store.from_url(url, load_preset("default"), namespace=ns)
        try:
            await store.apply_attempts([attempt_from_mapping(d) for d in docs])
        finally:
            await store.close()

    asyncio.run(go())


def header(client: redis.Redis, ns: str, address: str) -> int | None:
    """The delivery time of the address's tenant document (None: no document)."""
    raw = client.get(keys.state(ns, address, "acme"))
    return None if raw is None else keys.read_doc(raw).delivered


def ms(text: str) -> int:
    return to_ms(datetime.fromisoformat(text))


@pytest.mark.parametrize("year", ["2026", "1999"])
def test_a_lone_delivery_moves_the_header_forward_only_and_stores_nothing_when_stateless(
    year: str, redis_server: str, redis_client: redis.Redis
) -> None:
    """Catches: the short path writing a header backwards, creating a document for an address
    with no state, or mishandling a time that is not 13 digits (before 2001-09-09)."""
    ns = f"da{uuid.uuid4().hex[:8]}"
    a, stateless = "kept@example.com", "never@example.com"
    bounce = attempt(a, "deferred", ts=f"{year}-03-02T09:00:00Z", **SOFT)
    apply(redis_server, ns, [bounce])
    assert header(redis_client, ns, a) == 0

    later = f"{year}-03-02T10:00:00.123Z"
    apply(redis_server, ns, [attempt(a, "delivered", ts=later, smtp_code=250)])
    assert header(redis_client, ns, a) == ms(later)

    earlier = f"{year}-03-02T09:30:00Z"
    apply(redis_server, ns, [attempt(a, "delivered", ts=earlier, smtp_code=250)])
    assert header(redis_client, ns, a) == ms(later)

    apply(redis_server, ns, [attempt(stateless, "delivered", ts=later, smtp_code=250)])
    assert header(redis_client, ns, stateless) is None


def test_a_lone_delivery_leaves_what_the_same_delivery_leaves_beside_another_event(
    redis_server: str, redis_client: redis.Redis
) -> None:
    """Catches: the short path and the general one (a group of several events) diverging on
    the same delivery: same header, same fields."""
    alone, grouped = f"al{uuid.uuid4().hex[:8]}", f"gr{uuid.uuid4().hex[:8]}"
    a = "same@example.com"
    bounce = attempt(a, "deferred", ts="2026-03-02T09:00:00Z", **SOFT)
    delivery = attempt(a, "delivered", ts="2026-03-02T11:00:00Z", smtp_code=250)
    for ns in (alone, grouped):
        apply(redis_server, ns, [bounce])
    apply(redis_server, alone, [delivery])
    # The same delivery in a group of two: an older copy of the bounce comes first (a
    # replay, which changes nothing), so the group takes the general path.
    apply(redis_server, grouped, [bounce, delivery])

    docs = [keys.read_doc(redis_client.get(keys.state(ns, a, "acme"))) for ns in (alone, grouped)]
    assert docs[0] == docs[1]
    assert docs[0].delivered == ms("2026-03-02T11:00:00Z")
