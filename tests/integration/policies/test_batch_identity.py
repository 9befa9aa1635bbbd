"""Issue 9, item 6: what a batch may not change about the outcome.

- An event is (recipient, event_id): producers that use an MTA queue id or a Message-ID as
  the event id give every recipient of one message the same id, and each must count.
- A Redis without our functions (new, or FUNCTION FLUSH) applies a batch exactly as one
  that has them: the old scripts could run part of a batch twice out of order."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from tests.integration.policies.conftest import Engine, at, attempt, engagement

pytestmark = pytest.mark.integration


def test_same_event_id_for_two_recipients_counts_for_both(engine: Callable[..., Engine]) -> None:
    """Caught bug: the batch deduplicated on the event id alone, dropping the second
    recipient of a multi-recipient message without a trace."""
    eng = engine("default")
    both = [
        attempt("user_unknown", address=who, event_id="QUEUE-3F2A1C0B1")
        for who in ("one@example.com", "two@example.com")
    ]
    out = eng.send(*both)
    assert sorted(s.address for s in out) == ["one@example.com", "two@example.com"]
    assert len({s.event_id for s in out}) == 2
    # ...and one batch or two makes no difference: the same events again count nothing
    assert eng.send(both[0]) == []
    assert eng.send(both[1]) == []


def test_a_redis_without_the_functions_keeps_an_addresss_order(
    engine: Callable[..., Engine], redis_client: redis.Redis
) -> None:
    """An open, then 20 soft bounces of one address under `engagement` (engaged: 20, not
    10). Caught bug: after an empty script cache the open's script ran after the bounces."""
    expected = None
    for flush in (False, True):
        eng = engine("engagement")
        if flush:
            redis_client.function_flush()
            redis_client.script_flush()
        batch = [engagement(at(0)), *(attempt("transient", at(days=1 + i), campaign=f"c{i}")
                                     for i in range(20))]  # fmt: skip
        out = eng.send(*batch)
        got = [(s.rule, s.count, s.threshold, s.trigger_event_id == batch[-1].event_id)
               for s in out]  # fmt: skip
        assert got == [("consecutive_soft", 20, 20, True)], (flush, got)
        expected = expected or got
        assert got == expected
