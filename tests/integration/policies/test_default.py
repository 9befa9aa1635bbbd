"""Preset 0 `default` (PRODUCT.md, Policies 0), rule by rule, both sides of each boundary."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.policies.conftest import Engine, at, attempt, engagement, feedback

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("category", ["user_unknown", "invalid_address", "bad_domain"])
def test_hard_categories_suppress_at_once(engine: Callable[..., Engine], category: str) -> None:
    out = engine("default").send(attempt(category))
    assert [(s.rule, s.reason, s.scope.value, s.count, s.threshold) for s in out] == [
        ("immediate_hard", category, "tenant", 1, 1)
    ]


@pytest.mark.parametrize("category", ["spam_block", "spam_content", "relay_denied"])
def test_blocks_and_other_hard_never(engine: Callable[..., Engine], category: str) -> None:
    eng = engine("default")
    assert eng.each(*(attempt(category, at(days=i), campaign=f"c{i}") for i in range(30))) == []


def test_inactive_needs_two_spanning_24h(engine: Callable[..., Engine]) -> None:
    eng = engine("default")
    assert eng.send(attempt("inactive_mailbox", at(0))) == []
    assert eng.send(attempt("inactive_mailbox", at(23.99))) == []  # 2 but only 23.99 h apart
    out = eng.send(attempt("inactive_mailbox", at(24)))
    assert [(s.rule, s.count) for s in out] == [("confirmed_inactive", 3)]
    assert len(out[0].evidence) == 3


def test_complaint_at_once(engine: Callable[..., Engine]) -> None:
    out = engine("default").send(feedback("complaint"))
    assert [(s.rule, s.reason) for s in out] == [("complaint", "complaint")]


def _soft_run(n: int, start: int = 0) -> list:
    return [attempt("mailbox_full", at(days=start + i), campaign=f"c{start + i}") for i in range(n)]


def test_unengaged_soft_9_keeps_10_suppresses(engine: Callable[..., Engine]) -> None:
    eng = engine("default")
    assert eng.each(*_soft_run(9)) == []
    out = eng.send(attempt("mailbox_full", at(days=9), campaign="c9"))
    assert [(s.rule, s.count, s.threshold, s.reason) for s in out] == [
        ("consecutive_soft", 10, 10, "mailbox_full")
    ]


def test_engaged_soft_19_keeps_20_suppresses(engine: Callable[..., Engine]) -> None:
    eng = engine("default")
    eng.send(engagement(at(days=-1)))
    assert eng.each(*_soft_run(19)) == []
    out = eng.send(attempt("mailbox_full", at(days=19), campaign="c19"))
    assert [(s.count, s.threshold) for s in out] == [(20, 20)]


def test_retries_of_one_send_count_once(engine: Callable[..., Engine]) -> None:
    eng = engine("default")
    retries = [attempt("transient", at(hours=h), campaign="c1") for h in range(30)]
    assert eng.each(*retries) == []
    no_campaign = [attempt("transient", at(hours=h), message_id="q1") for h in range(30)]
    assert eng.each(*no_campaign) == []


def test_delivery_resets_soft_count(engine: Callable[..., Engine]) -> None:
    eng = engine("default")
    eng.each(*_soft_run(9))
    eng.send(attempt("delivered", at(days=9, hours=1), campaign="d"))
    assert eng.each(*_soft_run(9, start=10)) == []
    assert len(eng.send(attempt("mailbox_full", at(days=19), campaign="c19"))) == 1


def test_late_bounce_before_a_delivery_does_not_count(engine: Callable[..., Engine]) -> None:
    """Out of order within a batch: the delivery at day 9 comes first; the earlier bounces
    stay reset. (Across batches a delivery to an address with no bounce state is not stored,
    by design: README, "Choices".)"""
    eng = engine("default")
    assert eng.send(attempt("delivered", at(days=9)), *_soft_run(9)) == []  # days 0..8
    assert eng.each(*_soft_run(9, start=10)) == []
    assert len(eng.send(attempt("mailbox_full", at(days=19), campaign="c19"))) == 1


def test_suppressed_once_later_events_recorded(engine: Callable[..., Engine]) -> None:
    eng = engine("default")
    assert len(eng.send(attempt("user_unknown", at(0)))) == 1
    assert eng.send(attempt("user_unknown", at(1))) == []
    assert eng.send(feedback("complaint", at(2))) == []


def test_without_campaign_each_message_is_one_send(engine: Callable[..., Engine]) -> None:
    """Shared rule: once per message where there is no campaign; 9 messages keep, 10 trip."""
    eng = engine("default")
    msgs = [attempt("transient", at(days=i), message_id=f"m{i}") for i in range(10)]
    assert eng.each(*msgs[:9]) == []
    assert [(s.count, s.threshold) for s in eng.send(msgs[9])] == [(10, 10)]


def test_auto_replies_are_not_bounces_and_do_not_reset(engine: Callable[..., Engine]) -> None:
    eng = engine("default")
    replies = [attempt("auto_reply", at(days=i), campaign=f"r{i}") for i in range(30)]
    assert eng.each(*replies) == []
    assert eng.each(*_soft_run(9, start=30)) == []
    assert len(eng.send(attempt("mailbox_full", at(days=39), campaign="c39"))) == 1
