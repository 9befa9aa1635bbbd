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
