"""The provider-outage guard's pure half (pipeline.core.outage): provider groups, the policy
data, the guard argument of each call, and reading the guard's replies. The Lua half runs
against real Redis in tests/integration/test_outage.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from pipeline.core.models import Attempt, Outcome
from pipeline.core.outage import (
    config_id,
    guard_args,
    held_suppressions,
    outage_alert,
    provider_group,
    read_guard,
)
from pipeline.core.outcomes import suppression_from_decision
from pipeline.core.plan import Limits, plan_batch, read_replies
from pipeline.core.policies import OutageGuard, PolicyBook, book_from_mapping, load_preset

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BOOK = PolicyBook(default=load_preset("default"))
OFF = load_preset("default", {"outage_guard": {"enabled": False}})


def hard(eid: str, to: str, ts: datetime = T0, tenant: str = "default") -> Attempt:
    return Attempt(eid, ts, to, Outcome.BOUNCED, smtp_code=550, enhanced_code="5.1.1",
                   diagnostic="550 5.1.1 user unknown", tenant=tenant)  # fmt: skip


def ok(eid: str, to: str, ts: datetime = T0) -> Attempt:
    return Attempt(eid, ts, to, Outcome.DELIVERED, smtp_code=250, diagnostic="250 ok")


@pytest.mark.parametrize(
    ("address", "group"),
    [("a@gmail.com", "gmail"), ("a@GoogleMail.com", "gmail"), ("a@hotmail.com", "outlook"),
     ("a@msn.com", "outlook"), ("a@ymail.com", "yahoo"), ("a@example.org", "example.org")],
)  # fmt: skip
def test_domains_of_one_provider_are_one_group(address: str, group: str) -> None:
    assert provider_group(address) == group


@pytest.mark.parametrize("preset", ["default", "listrak", "bsd", "ecomail", "engagement",
                                    "benchmark"])  # fmt: skip
def test_every_preset_guards_with_the_documented_defaults(preset: str) -> None:
    assert load_preset(preset).outage == OutageGuard(15, 200, 0.10, 5.0, 24, 60)


def test_a_tenant_overrides_or_turns_the_guard_off() -> None:
    book = book_from_mapping({"tenants": {
        "strict": {"outage_guard": {"min_attempts": 1000, "min_share": 0.2}},
        "off": {"outage_guard": {"enabled": False}},
    }})  # fmt: skip
    strict = book.for_tenant("strict").outage
    assert strict is not None and (strict.min_attempts, strict.min_share) == (1000, 0.2)
    assert strict.window_minutes == 15
    assert book.for_tenant("off").outage is None
    assert book.for_tenant("other").outage == OutageGuard()
    assert config_id(strict) != config_id(OutageGuard())


@pytest.mark.parametrize(
    "bad", [{"window_minutes": 0}, {"min_share": 0}, {"min_share": 1.5}, {"min_attempts": 0},
            {"grace_minutes": -1}, {"baseline_factor": -1}, {"baseline_hours": 100}],
)  # fmt: skip
def test_bad_guard_numbers_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="outage_guard"):
        load_preset("default", {"outage_guard": bad})


def _args(plan_calls: list[object]) -> list[dict[str, object]]:
    return [orjson.loads(c.args[0]) for c in plan_calls]  # type: ignore[attr-defined]


def test_the_batch_counts_ride_on_the_first_call_and_only_the_last_settles() -> None:
    events = [hard("h1", "a@gmail.com"), ok("d1", "b@googlemail.com", T0 + timedelta(minutes=2)),
              hard("h2", "c@example.org", T0 + timedelta(seconds=30)),
              ok("d2", "d@gmail.com")]  # fmt: skip
    plan = plan_batch(events, BOOK, "ns", Limits(call_events=1))
    assert [c.function for c in plan.calls] == ["guard"] * 4
    first, second, third, fourth = _args(plan.calls)
    minute = int(T0.timestamp()) // 60
    m, m2, hour = str(minute), str(minute + 2), str(minute // 60)
    # per group: attempts and hard bounces of the batch, then per minute bucket its counts;
    # the identities follow as plain arguments, each bucket's hard bounces first
    assert first["C"] == [["gmail", 3, 1, [[m, hour, 2, 1], [m2, hour, 1, 0]]],
                          ["example.org", 1, 1, [[m, hour, 1, 1]]]]  # fmt: skip
    ids = ["a@gmail.com\x1fh1", "d@gmail.com\x1fd2", "b@googlemail.com\x1fd1",
           "c@example.org\x1fh2"]  # fmt: skip
    assert plan.calls[0].args[2:6] == ids
    assert second["C"] == third["C"] == fourth["C"] == []
    assert [g[0] for g in first["G"]] == ["gmail"]  # type: ignore[index]
    ms = int(T0.timestamp() * 1000)
    # minutes to walk, then the span of the call's hard bounces (the only ones E names)
    assert first["G"][0][3:] == [[minute, minute + 2], ms, ms]  # type: ignore[index]
    assert second["G"][0][3:] == [[]]  # type: ignore[index]  # walked by the first call
    assert list(orjson.loads(plan.calls[0].args[1])) == ["1"]  # type: ignore[arg-type]
    assert orjson.loads(plan.calls[1].args[1]) == {}  # type: ignore[arg-type]
    assert "last" not in first and "R" not in first and fourth["last"] == 1
    # the last call reports for every (group, config) of the batch, its own first
    assert [r[0] for r in fourth["R"]] == ["gmail", "example.org"]  # type: ignore[attr-defined]
    # the apply arguments follow, untouched
    bare = plan_batch(events, PolicyBook(OFF), "ns", Limits(call_events=1))
    assert [c.args[2 + (4 if n == 0 else 0) :] for n, c in enumerate(plan.calls)] == [
        c.args for c in bare.calls
    ]


def test_an_unguarded_tenant_is_counted_but_never_held() -> None:
    book = PolicyBook(default=load_preset("default"), tenants={"t2": OFF})
    [call] = plan_batch([hard("h1", "a@gmail.com", tenant="t2")], book, "ns", Limits()).calls
    arg = orjson.loads(call.args[0])
    assert arg["C"][0][:3] == ["gmail", 1, 1] and arg["G"] == [] and arg["R"] == []
    assert orjson.loads(call.args[1]) == {}


def test_no_guard_without_a_guarded_tenant_or_on_a_cluster() -> None:
    events = [hard("h1", "a@gmail.com")]
    assert plan_batch(events, PolicyBook(OFF), "ns", Limits()).calls[0].function == "apply"
    routed = plan_batch(events, BOOK, "ns", Limits(), router=lambda tag: "node-1")
    assert [c.function for c in routed.calls] == ["apply"]
    assert guard_args([[]], {}, [[]], BOOK, "ns") == [None]


RAW_ALERT = {"k": "start:1772452800000", "ph": "start", "g": "gmail", "c": "abc", "w": 15,
             "A": 1000, "H": 300, "b": 0.005, "sn": 1772452800000, "t": 1772452860000,
             "held": 42}  # fmt: skip


def test_an_alert_has_a_deterministic_id_and_its_numbers() -> None:
    alert = outage_alert(RAW_ALERT)
    assert alert.event_id == outage_alert(dict(RAW_ALERT, held=99)).event_id
    assert alert.event_id != outage_alert(dict(RAW_ALERT, ph="end")).event_id
    wire = alert.to_json()
    assert (wire["kind"], wire["phase"], wire["group"], wire["share"], wire["held"]) == (
        "provider_outage",
        "start",
        "gmail",
        0.3,
        42,
    )
    assert wire["since"] == "2026-03-02T12:00:00Z" and alert.key == "provider:gmail"


def _record(policy_tenant: str = "default") -> dict[str, object]:
    decision = {"rule": "immediate_hard", "u": 1, "count": 1, "threshold": 1,
                "reason": "user_unknown", "ev": [], "sk": "ns:{a@gmail.com}:t:default"}  # fmt: skip
    return {"a": "a@gmail.com", "t": policy_tenant, "l": "-", "id": "h1",
            "ts": int(T0.timestamp() * 1000), "dg": "x", "d": [decision]}  # fmt: skip


def test_a_released_record_is_the_very_suppression_apply_would_have_emitted() -> None:
    [s] = held_suppressions(_record(), BOOK)
    direct = suppression_from_decision(
        BOOK.default, _record()["d"][0], address="a@gmail.com", tenant="default",  # type: ignore[index]
        list_id=None, trigger_event_id="h1", ts=T0)  # fmt: skip
    assert s == direct


def test_a_guard_reply_gives_entries_alerts_releases_and_acks() -> None:
    reply = orjson.dumps({"o": [[1, "d", []]], "a": [RAW_ALERT], "h": {"gmail": 3},
                          "r": [["gmail", "f1", orjson.dumps(_record()).decode()]]})  # fmt: skip
    read = read_guard(reply, BOOK)
    assert read.entries == [[1, "d", []]] and read.held == {"gmail": 3}
    assert [a.phase for a in read.alerts] == ["start"]
    assert read.acks == [("a", "gmail\x1fabc", "start:1772452800000"), ("r", "gmail", "f1")]
    assert [s.address for s in read.released] == ["a@gmail.com"]
    empty = read_guard(b'{"o":{},"a":{},"r":{},"h":{}}', BOOK)
    assert (empty.entries, empty.alerts, empty.released, empty.acks) == ([], [], [], [])


def test_replies_of_several_calls_keep_one_alert_the_latest_and_one_release() -> None:
    events = [hard("h1", "a@gmail.com"), hard("h2", "b@gmail.com")]
    plan = plan_batch(events, BOOK, "ns", Limits(call_events=1))
    released = ["gmail", "f1", orjson.dumps(_record()).decode()]
    replies = [orjson.dumps({"o": [], "a": [dict(RAW_ALERT, held=n)], "r": [released], "h": {}})
               for n in (1, 2)]  # fmt: skip
    outcome = read_replies(plan, BOOK, replies)
    assert [a.held for a in outcome.outage_alerts] == [2]
    assert len(outcome.suppressions) == 1 and len(outcome.acks) == 2


def test_the_alert_matches_the_sender_alerts_schema() -> None:
    from tests.unit.test_schemas import validator

    check = validator("sender.alert.v1")
    check.validate(outage_alert(RAW_ALERT).to_json())
    check.validate(outage_alert(dict(RAW_ALERT, ph="end")).to_json())
    with pytest.raises(Exception, match="phase"):
        check.validate({**outage_alert(RAW_ALERT).to_json(), "phase": "maybe"})


@pytest.mark.parametrize("domain", ["a}b", "a b", "", "x@gmail.com", "-x.com"])
def test_an_operator_names_a_domain_or_a_group(domain: str) -> None:
    from pipeline.state.held import group_of

    assert group_of("GoogleMail.com") == group_of("gmail") == "gmail"
    with pytest.raises(ValueError, match="not a domain"):
        group_of(domain)
