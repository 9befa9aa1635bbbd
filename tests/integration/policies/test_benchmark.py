"""Preset `benchmark` (seeds/004): known permanent errors at once; other hard bounces in 3
consecutive campaigns; a delivering campaign breaks the run; an open resets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.policies.conftest import Engine, at, attempt, engagement

pytestmark = pytest.mark.integration


def hard(campaign: int, category: str = "inactive_mailbox", hours: float = 0) -> object:
    return attempt(category, at(days=campaign * 7, hours=hours), campaign=f"c{campaign}")


@pytest.mark.parametrize("category", ["user_unknown", "invalid_address"])
def test_known_permanent_errors_at_once(engine: Callable[..., Engine], category: str) -> None:
    out = engine("benchmark").send(attempt(category))
    assert [s.rule for s in out] == ["immediate_unknown"]


def test_soft_bounces_keep_the_address(engine: Callable[..., Engine]) -> None:
    eng = engine("benchmark")
    soft = [attempt("mailbox_full", at(days=i), campaign=f"c{i}") for i in range(30)]
    assert eng.each(*soft) == []


def test_two_campaigns_keep_three_confirm(engine: Callable[..., Engine]) -> None:
    eng = engine("benchmark")
    assert eng.each(hard(0), hard(1, "bad_domain"), hard(1, "general_hard", hours=2)) == []
    out = eng.send(hard(2, "general_hard"))
    assert [(s.rule, s.count, s.threshold) for s in out] == [("confirmed_bounce", 3, 3)]


def test_delivering_campaign_breaks_the_run(engine: Callable[..., Engine]) -> None:
    eng = engine("benchmark")
    eng.each(hard(0), hard(1))
    eng.send(attempt("delivered", at(days=14), campaign="c2"))
    assert eng.each(hard(3), hard(4)) == []
    assert len(eng.send(hard(5))) == 1


def test_open_in_another_campaign_resets_to_zero(engine: Callable[..., Engine]) -> None:
    eng = engine("benchmark")
    eng.each(hard(0), hard(1))
    eng.send(engagement(at(days=8), campaign="c-other"))
    assert eng.each(hard(2), hard(3)) == []
    assert len(eng.send(hard(4))) == 1


def test_campaign_without_a_hard_bounce_breaks_the_run(engine: Callable[..., Engine]) -> None:
    """Seed 004: "hard bounces in three consecutive campaigns". c1 only soft-bounced, so
    c0, c2, c3 are not three consecutive hard-bounce campaigns; c2, c3, c4 are."""
    eng = engine("benchmark")
    soft_c1 = attempt("mailbox_full", at(days=7), campaign="c1")
    assert eng.each(hard(0), soft_c1, hard(2), hard(3)) == []
    out = eng.send(hard(4))
    assert [(s.rule, s.count, s.threshold) for s in out] == [("confirmed_bounce", 3, 3)]


def test_soft_then_hard_in_one_campaign_is_a_hard_campaign(
    engine: Callable[..., Engine],
) -> None:
    """The MTA's retries of c1 end in a 5xx: c1 is a hard-bounce campaign, no break."""
    eng = engine("benchmark")
    deferred = attempt("mailbox_full", at(days=7), campaign="c1")
    assert eng.each(hard(0), deferred, hard(1, hours=30)) == []
    assert len(eng.send(hard(2))) == 1
    eng2 = engine("benchmark")  # a soft retry after the hard bounce changes nothing either
    late_soft = attempt("mailbox_full", at(days=7, hours=1), campaign="c1")
    assert eng2.each(hard(0), hard(1), late_soft) == []
    assert len(eng2.send(hard(2))) == 1


def test_open_read_ahead_of_older_bounces_is_judged_by_event_time(
    engine: Callable[..., Engine],
) -> None:
    """PRODUCT.md: event time, "a replay or a backlog decides exactly as live traffic would".
    An open on day 30 read before the day 0-14 bounces (another topic) did not happen "before"
    the confirmed bounce: live traffic flags on day 14, so must a backlog."""
    eng = engine("benchmark")
    eng.send(engagement(at(days=30), campaign="c-other"))
    assert eng.each(hard(0), hard(1)) == []
    assert len(eng.send(hard(2))) == 1
