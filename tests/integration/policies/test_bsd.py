"""Preset `bsd` (seeds/001): inactive-mailbox confirmations over 24 h, FBL, tags, scopes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.core.policies import PolicyBook, load_preset
from tests.integration.policies.conftest import Engine, at, attempt, feedback

pytestmark = pytest.mark.integration
DEADRCPT = "UnsubscribeService:deadrcpt"


def test_soft_bounces_never_unsubscribe(engine: Callable[..., Engine]) -> None:
    eng = engine("bsd")
    soft = [attempt("mailbox_full", at(days=i), campaign=f"c{i}") for i in range(40)]
    assert eng.each(*soft) == []


@pytest.mark.parametrize("category", ["user_unknown", "inactive_mailbox"])
def test_one_inactive_response_is_not_enough(engine: Callable[..., Engine], category: str) -> None:
    assert engine("bsd").send(attempt(category)) == []


def test_two_responses_23h_apart_keep_24h_apart_unsubscribe(
    engine: Callable[..., Engine],
) -> None:
    eng = engine("bsd")
    assert eng.each(attempt("user_unknown", at(0)), attempt("user_unknown", at(23))) == []
    assert eng.send(attempt("user_unknown", at(23, days=0) + (at(1) - at(0)) * 0.999)) == []
    out = eng.send(attempt("inactive_mailbox", at(24)))
    assert [(s.rule, s.tag, s.scope.value, s.count, s.threshold) for s in out] == [
        ("inactive_mailbox", DEADRCPT, "tenant", 4, 2)
    ]


def test_provider_glitch_of_hours_never_unsubscribes(engine: Callable[..., Engine]) -> None:
    eng = engine("bsd")
    burst = [attempt("user_unknown", at(hours=h / 4), campaign=f"c{h}") for h in range(40)]
    assert eng.each(*burst) == []  # 40 responses within 10 hours


def test_out_of_order_span_counts_by_event_time(engine: Callable[..., Engine]) -> None:
    eng = engine("bsd")
    assert eng.send(attempt("user_unknown", at(30))) == []
    assert len(eng.send(attempt("user_unknown", at(5)))) == 1  # arrives late, 25 h earlier


def test_delivery_between_resets_the_confirmations(engine: Callable[..., Engine]) -> None:
    eng = engine("bsd")
    eng.send(attempt("user_unknown", at(0)))
    eng.send(attempt("delivered", at(1)))
    assert eng.send(attempt("user_unknown", at(25))) == []
    assert len(eng.send(attempt("user_unknown", at(49)))) == 1


def test_feedback_loop_at_once_tagged_fbl(engine: Callable[..., Engine]) -> None:
    out = engine("bsd").send(feedback("complaint"))
    assert [(s.rule, s.tag, s.reason) for s in out] == [
        ("feedback_loop", "UnsubscribeService:fbl", "complaint")
    ]


def test_tenant_scope_leaves_other_clients_alone(engine: Callable[..., Engine]) -> None:
    eng = engine("bsd")
    eng.each(attempt("user_unknown", at(0)), attempt("user_unknown", at(24)))
    assert eng.send(attempt("user_unknown", at(25), tenant="other")) == []


def test_global_setting_unsubscribes_across_clients(engine: Callable[..., Engine]) -> None:
    """The seed's "global unsubscribe across all clients", as a policy-file setting; the
    confirmations then count across tenants."""
    policy = load_preset("bsd", {"rules": {"inactive_mailbox": {"scope": "global"}}})
    eng = engine(PolicyBook(policy))
    assert eng.send(attempt("user_unknown", at(0), tenant="a")) == []
    out = eng.send(attempt("user_unknown", at(24), tenant="b"))
    assert [(s.scope.value, s.tag, s.list_id) for s in out] == [("global", DEADRCPT, None)]
    assert eng.send(attempt("user_unknown", at(50), tenant="c")) == []


def test_exactly_two_responses_exactly_24h_apart(engine: Callable[..., Engine]) -> None:
    eng = engine("bsd")
    assert eng.send(attempt("inactive_mailbox", at(0))) == []
    out = eng.send(attempt("inactive_mailbox", at(24)))
    assert [(s.rule, s.count, s.threshold, s.tag) for s in out] == [
        ("inactive_mailbox", 2, 2, DEADRCPT)
    ]


@pytest.mark.parametrize("category", ["bad_domain", "general_hard", "spam_block"])
def test_other_bounces_do_not_unsubscribe(engine: Callable[..., Engine], category: str) -> None:
    """Only "mailbox inactive" responses and feedback loops unsubscribe under bsd."""
    eng = engine("bsd")
    assert eng.each(*(attempt(category, at(days=i), campaign=f"c{i}") for i in range(5))) == []
