"""plan_batch and read_replies, the pure halves of applying a batch: the exact calls a batch
becomes and what replies become (written against `make mutants` survivors; the same plans
against real Redis functions are in tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from pipeline.core.events import Engagement, EngagementAction, Event, Feedback, FeedbackKind
from pipeline.core.models import Attempt, BounceClass, Category, Classification, Outcome
from pipeline.core.outcomes import sender_alert, suppression_from_decision
from pipeline.core.plan import (
    DAY_S,
    BatchPlan,
    Call,
    Limits,
    RateSlot,
    engaged_ttl,
    plan_batch,
    read_replies,
    unique,
)
from pipeline.core.policies import DAY_MS, Policy, PolicyBook
from pipeline.core.policies import load_preset as _load_preset
from pipeline.core.wire import ENGAGEMENT, delivered_entry, digest, log_entry, profile, to_ms

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def load_preset(name: str, overrides: dict[str, object] | None = None) -> Policy:
    """The preset with the outage guard off: these tests pin the apply calls themselves (the
    guard's wrapping of them is tested in test_outage.py)."""
    return _load_preset(name, {**(overrides or {}), "outage_guard": {"enabled": False}})


HOUR = timedelta(hours=1)
ECO = load_preset("ecomail", {"delivered_log": True})
DEFAULT = load_preset("default")
BOOK = PolicyBook(default=ECO, tenants={"t2": DEFAULT})
LIMITS = Limits(state_ttl=1000, log_size=7, delivered_ttl=300, ring=9, call_events=500)


def hard(event_id: str, to: str, ts: datetime = T0, **kw: object) -> Attempt:
    return Attempt(
        event_id, ts, to, Outcome.BOUNCED, smtp_code=550, enhanced_code="5.1.1",
        diagnostic="550 5.1.1 user unknown", **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def delivered(event_id: str, to: str, ts: datetime = T0, **kw: object) -> Attempt:
    return Attempt(event_id, ts, to, Outcome.DELIVERED, smtp_code=250, diagnostic="250 ok", **kw)  # type: ignore[arg-type]


def soft(event_id: str, to: str, ts: datetime = T0) -> Attempt:
    return Attempt(
        event_id, ts, to, Outcome.DEFERRED, smtp_code=452, enhanced_code="4.2.2",
        diagnostic="452 4.2.2 mailbox full",
    )  # fmt: skip


def complaint(event_id: str, to: str, ts: datetime = T0, tenant: str = "default") -> Feedback:
    return Feedback(event_id, ts, to, FeedbackKind.COMPLAINT, tenant=tenant)


HARD = Classification(Category.USER_UNKNOWN, BounceClass.HARD, "generic.user_unknown")
SOFT = Classification(Category.MAILBOX_FULL, BounceClass.SOFT, "generic.mailbox_full")
OK = Classification(Category.DELIVERED, BounceClass.DELIVERED, "outcome.delivered")
COMPLAINT = Classification(Category.COMPLAINT, BounceClass.COMPLAINT, "feedback")


def batch() -> list[Event]:
    a1 = hard("a1", "a@x.com", list_id="news", campaign_id="c1")
    return [
        a1,
        delivered("d1", "b@x.com", remote_mta="mx.b"),
        Engagement("o1", T0, "a@x.com", EngagementAction.OPEN, list_id="news"),
        a1,  # an in-batch duplicate: dropped
        complaint("f1", "c@x.com", T0 + HOUR),
        soft("a2", "a@x.com", T0 + 2 * HOUR),
        hard("h1", "d@x.com", tenant="t2"),
        delivered("d2", "d@x.com", tenant="t2"),
    ]


def test_unique_keeps_the_first_copy_of_each_recipient_and_id() -> None:
    a = hard("e1", "a@x.com")
    b = hard("e1", "b@x.com")  # same id, other recipient: another event
    c = hard("e1", "a@x.com", ts=T0 + HOUR)  # same identity: a duplicate
    assert unique([a, b, c, a]) == [a, b]


def test_engaged_ttl_is_the_longest_engaged_window_and_at_least_a_day() -> None:
    assert engaged_ttl(PolicyBook(default=DEFAULT)) == 90 * DAY_S
    halves = {r.id: {"engaged_days": 0.5} for r in load_preset("bsd").rules}
    short = load_preset("bsd", {"rules": halves})
    assert engaged_ttl(PolicyBook(default=short)) == DAY_S
    thirds = {r.id: {"engaged_days": 1.5} for r in load_preset("bsd").rules}
    assert engaged_ttl(PolicyBook(default=load_preset("bsd", {"rules": thirds}))) == 129_600
    longer = load_preset("default", {"rules": {"consecutive_soft": {"engaged_days": 120.5}}})
    book = PolicyBook(default=DEFAULT, tenants={"x": longer})
    assert engaged_ttl(book) == int(120.5 * DAY_S)


def test_a_batch_becomes_one_apply_call_with_every_field_in_place() -> None:
    plan = plan_batch(batch(), BOOK, "ns1", LIMITS)
    events = batch()
    a1, d1, o1, _, f1, a2, h1, d2 = events
    assert plan.events == [a1, d1, o1, f1, a2, h1, d2]
    assert plan.verdicts == [HARD, OK, None, COMPLAINT, SOFT, HARD, OK]
    table = [
        profile(ECO, BounceClass.HARD, Category.USER_UNKNOWN),
        profile(ECO, BounceClass.DELIVERED, Category.DELIVERED),
        profile(ECO, ENGAGEMENT, None),
        profile(ECO, BounceClass.COMPLAINT, Category.COMPLAINT),
        profile(ECO, BounceClass.SOFT, Category.MAILBOX_FULL),
        profile(DEFAULT, BounceClass.HARD, Category.USER_UNKNOWN),
        profile(DEFAULT, BounceClass.DELIVERED, Category.DELIVERED),
    ]
    assert [p["k"] for p in table] == ["b", "d", "o", "b", "b", "b", "d"]
    assert (table[1]["ok"], table[6]["ok"]) == (True, False)
    header = orjson.dumps(
        {"ns": "ns1", "ttl": 1000, "ettl": 90 * DAY_S, "okttl": 300, "logn": 7, "ringn": 9,
         "P": table}
    )  # fmt: skip
    ms = to_ms(T0)
    apply_args = [
        header, 4,
        "a@x.com", 3,
        1, "default", "news", ms, "c1", "a1", digest("a1"), log_entry(a1, HARD),  # type: ignore[arg-type]
        3, "default", "news", ms,
        5, "default", "-", ms + 2 * 3_600_000, "a2", "a2", digest("a2"), log_entry(a2, SOFT),  # type: ignore[arg-type]
        "b@x.com", 1,
        2, "default", "-", ms, delivered_entry(d1),  # type: ignore[arg-type]
        "c@x.com", 1,
        4, "default", "-", ms + 3_600_000, "f1", "f1", digest("f1"), log_entry(f1, COMPLAINT),  # type: ignore[arg-type]
        "d@x.com", 2,
        6, "t2", "-", ms, "h1", "h1", digest("h1"), log_entry(h1, HARD),  # type: ignore[arg-type]
        7, "t2", "-", ms,
    ]  # fmt: skip
    day = ms // DAY_MS
    rates_args = [
        "ns1", "default", "complaint_rate", day, 30, "0.001", 3, 61 * DAY_S,
        1, day, 1, "b@x.com\x1fd1",
        1, day, 1, "c@x.com\x1ff1",
    ]  # fmt: skip
    assert plan.calls == [
        Call("apply", apply_args),
        Call("rates", rates_args, route="tenant:default"),
    ]
    assert plan.numbered == [[a1, o1, a2, d1, f1, h1, d2]]
    rule = ECO.rule("complaint_rate")
    assert plan.rates == [RateSlot("default", ECO, rule, f1)]


def test_calls_are_cut_between_address_groups_at_call_events() -> None:
    events = [
        soft("a1", "a@x.com"),
        soft("a2", "a@x.com"),
        soft("a3", "a@x.com"),  # a group bigger than a call gets a call of its own
        soft("b1", "b@x.com"),
        soft("c1", "c@x.com"),  # b and c together are exactly call_events: one call
        soft("d1", "d@x.com"),
    ]
    plan = plan_batch(events, PolicyBook(default=DEFAULT), "n", Limits(call_events=2))
    assert [e.event_id for e in events] == ["a1", "a2", "a3", "b1", "c1", "d1"]
    ids = [[e.event_id for e in n] for n in plan.numbered]
    assert ids == [["a1", "a2", "a3"], ["b1", "c1"], ["d1"]]
    assert [c.function for c in plan.calls] == ["apply", "apply", "apply"]
    assert [c.args[1] for c in plan.calls] == [1, 2, 1]
    assert [c.args[2:4] for c in plan.calls] == [["a@x.com", 3], ["b@x.com", 1], ["d@x.com", 1]]
    assert plan.calls[1].args[0] == plan.calls[0].args[0]
    assert len(plan.calls[1].args) == 2 + 2 * 2 + 2 * 8
    assert plan.rates == []


def test_an_empty_batch_plans_nothing() -> None:
    plan = plan_batch([], BOOK, "n", LIMITS)
    assert plan == BatchPlan([], [], [], [], [])


def test_rates_count_per_day_and_remember_the_latest_match() -> None:
    day0 = to_ms(T0) // DAY_MS
    events: list[Event] = [
        complaint("f1", "a@x.com", T0 + HOUR),
        complaint("f2", "b@x.com", T0),  # earlier: not the latest
        complaint("f3", "c@x.com", T0 + HOUR),  # as late as f1 and after it: the latest
        delivered("d1", "a@x.com", T0 - timedelta(days=1)),
        delivered("d2", "b@x.com", T0 - timedelta(days=1)),
        delivered("d3", "c@x.com", T0),
        hard("h1", "e@x.com"),  # neither sent nor matching
        Engagement("o1", T0, "e@x.com", EngagementAction.CLICK),
    ]
    policy = load_preset("ecomail", {"rules": {"complaint_rate": {"window_days": 6.6}}})
    plan = plan_batch(events, PolicyBook(default=policy), "n", LIMITS)
    [rates] = [c for c in plan.calls if c.function == "rates"]
    assert rates.args == [
        "n", "default", "complaint_rate", day0, 7, "0.001", 3, 15 * DAY_S,
        2, day0 - 1, 2, "a@x.com\x1fd1", "b@x.com\x1fd2", day0, 1, "c@x.com\x1fd3",
        1, day0, 3, "a@x.com\x1ff1", "b@x.com\x1ff2", "c@x.com\x1ff3",
    ]  # fmt: skip
    assert plan.rates == [RateSlot("default", policy, policy.rule("complaint_rate"), events[2])]


def test_a_rate_call_with_sends_only_has_no_latest_event() -> None:
    plan = plan_batch([delivered("d1", "a@x.com")], BOOK, "n", LIMITS)
    [_, rates] = plan.calls
    assert rates.args[3] == -1
    assert rates.args[8:] == [1, to_ms(T0) // DAY_MS, 1, "a@x.com\x1fd1", 0]
    assert plan.rates[0].latest is None


def test_no_rate_call_for_a_tenant_without_events_that_count() -> None:
    plan = plan_batch([Engagement("o1", T0, "a@x.com", EngagementAction.OPEN)], BOOK, "n", LIMITS)
    assert [c.function for c in plan.calls] == ["apply"]
    assert plan.rates == []
    other = plan_batch([hard("h1", "a@x.com", tenant="t2")], BOOK, "n", LIMITS)
    assert [c.function for c in other.calls] == ["apply"]


def decision(rule: str = "immediate_hard", **kw: object) -> dict[str, object]:
    return {"rule": rule, "u": 1, "count": 1, "threshold": 1, "reason": "user_unknown", **kw}


def test_replies_become_suppressions_failures_and_alerts_in_event_order() -> None:
    events = batch()
    a1, d1, _o1, _, f1, a2, h1, _d2 = events
    plan = plan_batch(events, BOOK, "n", LIMITS)
    # numbered: a1 o1 a2 d1 f1 h1 d2
    apply_reply = orjson.dumps(
        [
            [1, "d", [decision()]],
            [3, "x", "boom"],
            [5, "d", [decision("complaint", reason="complaint")] * 2],
            [6, "d", [decision()]],
            ["4", "d", []],
        ]
    )  # fmt: skip
    rates_reply = orjson.dumps({"alert": 1, "count": "4", "sent": "1000"})
    outcome = read_replies(plan, BOOK, [apply_reply, rates_reply])

    def supp(event: Attempt | Feedback, policy: object, d: dict[str, object]) -> object:
        return suppression_from_decision(
            policy,  # type: ignore[arg-type]
            d,
            address=event.recipient,
            tenant=event.tenant,
            list_id=event.list_id,
            trigger_event_id=event.event_id,
            ts=event.ts,
        )

    assert outcome.suppressions == [
        supp(a1, ECO, decision()),
        supp(f1, ECO, decision("complaint", reason="complaint")),
        supp(h1, DEFAULT, decision()),
    ]
    assert outcome.suppressions[0].list_id is None and outcome.suppressions[0].policy == "ecomail"
    assert outcome.suppressions[2].policy == "default"
    assert outcome.failed == [(a2, "boom")]
    rule = ECO.rule("complaint_rate")
    assert outcome.alerts == [
        sender_alert(ECO, rule, tenant="default", count=4, sent=1000, ts=f1.ts)
    ]
    assert (outcome.alerts[0].count, outcome.alerts[0].sent) == (4, 1000)
    del d1


@pytest.mark.parametrize(
    "answer",
    [{"alert": 0, "count": 9, "sent": 1}, {"alert": False, "count": 9, "sent": 1}],
)
def test_a_rate_answer_without_alert_alerts_nobody(answer: dict[str, object]) -> None:
    plan = plan_batch([complaint("f1", "a@x.com")], BOOK, "n", LIMITS)
    outcome = read_replies(plan, BOOK, [b"{}", orjson.dumps(answer)])
    assert (outcome.suppressions, outcome.failed, outcome.alerts) == ([], [], [])


def test_an_alert_without_a_latest_event_is_not_raised() -> None:
    plan = plan_batch([delivered("d1", "a@x.com")], BOOK, "n", LIMITS)
    outcome = read_replies(plan, BOOK, [b"[]", orjson.dumps({"alert": 1, "count": 9, "sent": 1})])
    assert outcome.alerts == []


def test_the_same_suppression_from_two_calls_is_emitted_once() -> None:
    events = [hard("a1", "a@x.com"), hard("b1", "b@x.com")]
    plan = plan_batch(events, BOOK, "n", Limits(call_events=1))
    same = decision(rule="complaint")
    replies = [orjson.dumps([[1, "d", [same, decision()]]]), orjson.dumps([[1, "d", [decision()]]])]
    outcome = read_replies(plan, BOOK, replies)
    assert [(s.address, s.rule) for s in outcome.suppressions] == [
        ("a@x.com", "complaint"),
        ("a@x.com", "immediate_hard"),
        ("b@x.com", "immediate_hard"),
    ]


def test_events_of_one_profile_share_one_table_entry() -> None:
    plan = plan_batch([soft("a1", "a@x.com"), soft("b1", "b@x.com")], BOOK, "n", LIMITS)
    header = orjson.loads(plan.calls[0].args[0])
    assert header["P"] == [profile(ECO, BounceClass.SOFT, Category.MAILBOX_FULL)]
    args = plan.calls[0].args
    assert (args[4], args[14]) == (1, 1)  # both events name profile 1


def test_only_tenants_whose_own_policy_rates_get_a_rates_call() -> None:
    book = PolicyBook(default=DEFAULT, tenants={"t3": ECO})
    events: list[Event] = [
        complaint("f1", "a@x.com", tenant="t3"),
        complaint("f2", "b@x.com"),  # the default tenant: no tenant-rate rule
    ]
    plan = plan_batch(events, book, "n", LIMITS)
    [rates] = [c for c in plan.calls if c.function == "rates"]
    assert rates.args[:3] == ["n", "t3", "complaint_rate"]
    assert rates.args[8:] == [0, 1, to_ms(T0) // DAY_MS, 1, "a@x.com\x1ff1"]
    assert plan.rates == [RateSlot("t3", ECO, ECO.rule("complaint_rate"), events[0])]


def test_a_rate_rule_by_class_and_a_window_of_at_least_one_day() -> None:
    by_class = {"classes": ["hard"], "categories": [], "window_days": 0.4}
    policy = load_preset("ecomail", {"rules": {"complaint_rate": by_class}})
    plan = plan_batch([hard("h1", "a@x.com")], PolicyBook(default=policy), "n", LIMITS)
    [rates] = [c for c in plan.calls if c.function == "rates"]
    day = to_ms(T0) // DAY_MS
    assert rates.args == ["n", "default", "complaint_rate", day, 1, "0.001", 3, 3 * DAY_S,
                          0, 1, day, 1, "a@x.com\x1fh1"]  # fmt: skip


def test_a_list_scoped_suppression_keeps_the_events_list() -> None:
    listrak = load_preset("listrak")
    book = PolicyBook(default=listrak)
    event = hard("a1", "a@x.com", list_id="news")
    plan = plan_batch([event], book, "n", LIMITS)
    outcome = read_replies(plan, book, [orjson.dumps([[1, "d", [decision()]]])])
    assert [(s.scope.value, s.list_id) for s in outcome.suppressions] == [("list", "news")]


def test_replies_must_answer_every_call() -> None:
    plan = plan_batch([complaint("f1", "a@x.com")], BOOK, "n", LIMITS)
    assert [c.function for c in plan.calls] == ["apply", "rates"]
    with pytest.raises(ValueError, match="zip"):
        read_replies(plan, BOOK, [b"[]"])
    with pytest.raises(ValueError, match="zip"):
        read_replies(plan, BOOK, [])
    with pytest.raises(ValueError, match="zip"):
        read_replies(plan, BOOK, [b"[]", b'{"alert":0}', b"[]"])


def test_an_apply_call_without_its_reply_is_refused() -> None:
    book = PolicyBook(default=DEFAULT)
    plan = plan_batch([hard("a1", "a@x.com")], book, "n", LIMITS)
    assert [c.function for c in plan.calls] == ["apply"]
    with pytest.raises(ValueError, match="zip"):
        read_replies(plan, book, [])
