"""A tenant's suppression history (pipeline.state.history) paged on the real test Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from pipeline.core.decode import parse_ts
from pipeline.core.policies import load_preset
from pipeline.state import history
from tests.integration.policies.conftest import T0, Engine, attempt

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(redis_server: str, redis_client: redis.Redis) -> Iterator[Engine]:
    """The default preset on its own namespace."""
    eng = Engine(redis_server, load_preset("default"), f"h{uuid.uuid4().hex[:8]}")
    yield eng
    eng.close()


def pages(engine: Engine, tenant: str, limit: int) -> list[list[str]]:
    """Follow the cursor from the first page to the last; the addresses of each page."""
    since: datetime | None = None
    after: str | None = None
    out: list[list[str]] = []
    while len(out) < 100:
        page = engine.run(history.page(engine.store, tenant, since=since, after=after, limit=limit))
        out.append([item["address"] for item in page.items])
        if page.next_since_ms is None:
            return out
        # The same round trip through text as the HTTP API's cursor.
        since = parse_ts(datetime.fromtimestamp(page.next_since_ms / 1000, UTC).isoformat())
        after = page.next_after
    raise AssertionError("the cursor never ended")


def test_pages_reach_every_event_when_many_share_one_millisecond(engine: Engine) -> None:
    # MTA logs stamp whole seconds, so a mass hard bounce gives many suppressions with the
    # same event time: more of them than twice a page must still all be reachable.
    who = [f"gone{n:02d}@example.com" for n in range(25)]
    found = engine.send(*(attempt("user_unknown", T0, address=a) for a in who))
    assert len(found) == 25

    seen = pages(engine, "acme", limit=5)

    assert [len(p) for p in seen] == [5, 5, 5, 5, 5]
    assert sorted(a for p in seen for a in p) == who
