"""Decisions -> suppression, reactivation and alert events, field by field (pure logic).

Written against the survivors of `make mutants` (docs/mutants.md): every field of the event a
decision becomes is asserted, including the deterministic id and what it is derived from.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.core.ids import suppression_event_id
from pipeline.core.models import Action, Scope, SenderAlert, Suppression
from pipeline.core.outcomes import reactivation, sender_alert, suppression_from_decision
from pipeline.core.policies import load_preset

TS = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_pinned_suppression_ids() -> None:
    """Literal values: the id is sha256 over the parts joined by \\x1f, 32 hex digits, and a
    missing list counts as the empty string (not as absent, not as another word)."""
    common = {"action": "suppressed", "address": "a@example.com", "tenant": "t1", "rule": "r1"}
    assert (
        suppression_event_id(**common, scope="tenant", list_id=None, trigger="e1")
        == "72099f8bc092e634905807c2d2384b11"
    )
    assert (
        suppression_event_id(**common, scope="list", list_id="news", trigger="e1")
        == "dc0dd830c6e6cda3d2d6766d7d0bfc0d"
    )
    assert suppression_event_id(
        **common, scope="list", list_id=None, trigger="e1"
    ) == suppression_event_id(**common, scope="list", list_id="", trigger="e1")


def test_a_decision_becomes_its_suppression() -> None:
    policy = load_preset("bsd")
    evidence = {
        "event_id": "e0",
        "ts": "2026-03-01T09:00:00Z",
        "category": "inactive_mailbox",
        "smtp_code": 550,
        "enhanced_code": "5.2.1",
        "diagnostic": "mailbox disabled",
        "remote_mta": "mx.example.net",  # not evidence: dropped
    }
    decision = {
        "rule": "inactive_mailbox",
        "u": 1,
        "count": "2",
        "threshold": "2",
        "reason": "inactive_mailbox",
        "ev": [evidence, {"event_id": "e1"}],
    }
    s = suppression_from_decision(
        policy,
        decision,
        address="a@example.com",
        tenant="t1",
        list_id="news",
        trigger_event_id="e1",
        ts=TS,
    )
    assert s == Suppression(
        event_id=suppression_event_id(
            action="suppressed",
            address="a@example.com",
            tenant="t1",
            scope="tenant",
            list_id=None,
            rule="inactive_mailbox",
            trigger="e1",
        ),
        action=Action.SUPPRESSED,
        address="a@example.com",
        tenant="t1",
        scope=Scope.TENANT,
        list_id=None,  # tenant scope: the event's list is not the suppression's
        reason="inactive_mailbox",
        rule="inactive_mailbox",
        count=2,
        threshold=2,
        policy="bsd",
        tag="UnsubscribeService:deadrcpt",
        trigger_event_id="e1",
        ts=TS,
        evidence=(
            {
                "event_id": "e0",
                "ts": "2026-03-01T09:00:00Z",
                "category": "inactive_mailbox",
                "smtp_code": 550,
                "enhanced_code": "5.2.1",
                "diagnostic": "mailbox disabled",
            },
            {
                "event_id": "e1",
                "ts": None,
                "category": None,
                "smtp_code": None,
                "enhanced_code": None,
                "diagnostic": None,
            },
        ),
    )
    assert type(s.count) is int and type(s.threshold) is int


@pytest.mark.parametrize(("list_id", "scoped"), [("news", "news"), (None, "-")])
def test_a_list_scoped_suppression_names_its_list(list_id: str | None, scoped: str) -> None:
    policy = load_preset("listrak")
    decision = {"rule": "immediate_hard", "u": 1, "count": 1, "threshold": 1, "reason": "x"}
    s = suppression_from_decision(
        policy,
        decision,
        address="a@example.com",
        tenant="t1",
        list_id=list_id,
        trigger_event_id="e9",
        ts=TS,
    )
    assert (s.scope, s.list_id, s.tag, s.evidence) == (Scope.LIST, scoped, None, ())
    assert s.event_id == suppression_event_id(
        action="suppressed",
        address="a@example.com",
        tenant="t1",
        scope="list",
        list_id=scoped,
        rule="immediate_hard",
        trigger="e9",
    )


def test_a_reactivation_carries_the_cleared_suppression() -> None:
    policy = load_preset("default")
    cleared = {"trigger_event_id": "e1", "reason": "user_unknown", "rule": "immediate_hard"}
    r = reactivation(
        policy,
        address="a@example.com",
        tenant="t1",
        scope=Scope.TENANT,
        list_id="news",
        request_id="req-1",
        ts=TS,
        cleared=cleared,
    )
    assert r == Suppression(
        event_id=suppression_event_id(
            action="reactivated",
            address="a@example.com",
            tenant="t1",
            scope="tenant",
            list_id=None,
            rule="reactivate",
            trigger="req-1",
        ),
        action=Action.REACTIVATED,
        address="a@example.com",
        tenant="t1",
        scope=Scope.TENANT,
        list_id=None,
        reason="manual",
        rule="reactivate",
        count=0,
        threshold=0,
        policy="default",
        tag=None,
        trigger_event_id="req-1",
        ts=TS,
        evidence=(
            {
                "event_id": "e1",
                "ts": "2026-03-02T09:30:00Z",
                "category": "user_unknown",
                "diagnostic": "reactivated; was suppressed by rule immediate_hard",
            },
        ),
    )


def test_a_reactivation_of_nothing_known_names_the_request() -> None:
    r = reactivation(
        load_preset("listrak"),
        address="a@example.com",
        tenant="t1",
        scope=Scope.LIST,
        list_id="news",
        request_id="req-2",
        ts=TS,
        cleared={},
    )
    assert r.list_id == "news"
    assert r.evidence == (
        {
            "event_id": "req-2",
            "ts": "2026-03-02T09:30:00Z",
            "category": None,
            "diagnostic": "reactivated; was suppressed by rule None",
        },
    )


def test_a_sender_alert_has_its_rate_and_one_id_per_day() -> None:
    policy = load_preset("ecomail")
    rule = policy.rule("complaint_rate")
    alert = sender_alert(policy, rule, tenant="t1", count=4, sent=1000, ts=TS)
    assert alert == SenderAlert(
        event_id=suppression_event_id(
            action="alert",
            address="",
            tenant="t1",
            scope="tenant",
            list_id=None,
            rule="complaint_rate",
            trigger="2026-03-02",
        ),
        tenant="t1",
        rule="complaint_rate",
        policy="ecomail",
        count=4,
        sent=1000,
        rate=0.004,
        max_rate=0.001,
        window_days=30.0,
        ts=TS,
    )
    later = sender_alert(policy, rule, tenant="t1", count=5, sent=2, ts=TS.replace(hour=23))
    assert later.event_id == alert.event_id
    assert later.rate == 2.5
    nothing_sent = sender_alert(policy, rule, tenant="t1", count=3, sent=0, ts=TS)
    assert nothing_sent.rate == 3.0


def test_the_scope_index_counts_from_one_narrow_to_broad() -> None:
    policy = load_preset("default", {"rules": {"complaint": {"scope": "list"}}})
    assert policy.scopes() == (Scope.LIST, Scope.TENANT)
    common = {"count": 1, "threshold": 1, "reason": "complaint"}
    narrow = suppression_from_decision(
        policy,
        {"rule": "complaint", "u": 1, **common},
        address="a@example.com",
        tenant="t1",
        list_id="news",
        trigger_event_id="f1",
        ts=TS,
    )
    broad = suppression_from_decision(
        policy,
        {"rule": "immediate_hard", "u": "2", **common},
        address="a@example.com",
        tenant="t1",
        list_id="news",
        trigger_event_id="e1",
        ts=TS,
    )
    assert (narrow.scope, narrow.list_id) == (Scope.LIST, "news")
    assert (broad.scope, broad.list_id) == (Scope.TENANT, None)
