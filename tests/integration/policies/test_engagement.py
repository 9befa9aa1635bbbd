"""Preset `engagement` (seeds/003): one hard bounce; 10 / 20 consecutive soft bounces;
engaged within 90 days; per-tenant thresholds; the bounce log."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.core.policies import PolicyBook, load_preset
from pipeline.state import queries
from tests.integration.policies.conftest import ADDR, Engine, at, attempt, engagement

pytestmark = pytest.mark.integration


def soft(n: int, start: int = 0) -> list:
    return [attempt("transient", at(days=start + i), campaign=f"c{start + i}") for i in range(n)]


@pytest.mark.parametrize("category", ["user_unknown", "bad_domain", "inactive_mailbox"])
def test_one_hard_bounce_deactivates(engine: Callable[..., Engine], category: str) -> None:
    assert [s.rule for s in engine("engagement").send(attempt(category))] == ["immediate_hard"]


def test_unengaged_9_keeps_10_deactivates(engine: Callable[..., Engine]) -> None:
    eng = engine("engagement")
    assert eng.each(*soft(9)) == []
    assert [(s.count, s.threshold) for s in eng.send(*soft(1, 9))] == [(10, 10)]


def test_engaged_19_keeps_20_deactivates(engine: Callable[..., Engine]) -> None:
    eng = engine("engagement")
    eng.send(engagement(at(days=-10)))
    assert eng.each(*soft(19)) == []
    assert [(s.count, s.threshold) for s in eng.send(*soft(1, 19))] == [(20, 20)]


def test_open_older_than_90_days_is_unengaged(engine: Callable[..., Engine]) -> None:
    eng = engine("engagement")
    eng.send(engagement(at(days=-91)))
    assert eng.each(*soft(9)) == []
    assert len(eng.send(*soft(1, 9))) == 1


def test_open_does_not_reset_the_count(engine: Callable[..., Engine]) -> None:
    """Only a delivery resets here (the seed names no engagement reset); an open raises the
    threshold to 20 instead."""
    eng = engine("engagement")
    eng.send(engagement(at(days=-1)))
    assert eng.each(*soft(12)) == []
    eng.send(engagement(at(days=12, hours=1)))
    assert eng.each(*soft(7, 12)) == []
    assert [(s.count, s.threshold) for s in eng.send(*soft(1, 19))] == [(20, 20)]


def test_per_tenant_thresholds(engine: Callable[..., Engine]) -> None:
    custom = load_preset("engagement", {"rules": {"consecutive_soft": {"threshold": 3}}})
    eng = engine(PolicyBook(load_preset("engagement"), {"small": custom}))
    three = [attempt("transient", at(days=i), campaign=f"c{i}", tenant="small") for i in range(3)]
    assert eng.each(*three[:2]) == []
    assert len(eng.send(three[2])) == 1
    assert eng.each(*soft(3)) == []  # tenant acme keeps 10


def test_bounce_log_keeps_server_messages_and_delivered_briefly(
    engine: Callable[..., Engine], redis_client: object
) -> None:
    eng = engine("engagement")
    eng.each(*soft(3), attempt("delivered", at(days=4)))
    view = eng.run(queries.status(eng.store, ADDR, "acme"))
    assert [e["diagnostic"] for e in view["bounce_log"]] == ["connection timed out"] * 3
    assert [e["outcome"] for e in view["delivered_log"]] == ["delivered"]
    ok_ttl = eng.run(eng.store.client.ttl(f"{eng.namespace}:{{{ADDR}}}:ok"))
    # The bounce log lives in the tenant document, kept as long as the counters.
    log_ttl = eng.run(eng.store.client.ttl(f"{eng.namespace}:{{{ADDR}}}:t:acme"))
    assert 0 < ok_ttl <= 72 * 3600 < log_ttl


def test_open_after_the_bounces_does_not_make_them_engaged(
    engine: Callable[..., Engine],
) -> None:
    """Event time (PRODUCT.md): engaged = an open within the 90 days before the bounce. An
    open on day 30 read ahead of the day 0-9 bounces (a backlog on the attempts topic) does not
    make the contact engaged on day 9: 10 unengaged soft bounces deactivate, as live."""
    eng = engine("engagement")
    eng.send(engagement(at(days=30)))
    assert eng.each(*soft(9)) == []
    assert [(s.count, s.threshold) for s in eng.send(*soft(1, 9))] == [(10, 10)]


def test_earlier_open_still_counts_when_a_later_one_arrived_first(
    engine: Callable[..., Engine],
) -> None:
    eng = engine("engagement")
    eng.send(engagement(at(days=30)))
    eng.send(engagement(at(days=-5)))  # read later, happened earlier: engaged on days 0-19
    assert eng.each(*soft(19)) == []
    assert [(s.count, s.threshold) for s in eng.send(*soft(1, 19))] == [(20, 20)]


def test_engaged_is_judged_at_each_bounce_90_days_inclusive(
    engine: Callable[..., Engine],
) -> None:
    """Open on day -81: on day 9 it is exactly 90 days old (engaged, 10 soft bounces keep),
    on day 10 it is 91 days old (unengaged: 11 >= 10 deactivates)."""
    eng = engine("engagement")
    eng.send(engagement(at(days=-81)))
    assert eng.each(*soft(10)) == []
    assert [(s.count, s.threshold) for s in eng.send(*soft(1, 10))] == [(11, 10)]
