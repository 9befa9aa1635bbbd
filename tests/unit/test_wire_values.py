"""What the Redis functions are told, as exact values: time in ms, digests, send keys, the
rule ops of a profile, the delivered-log entry and history records (written against
`make mutants` survivors; log_entry/expand_entry have their own tests in test_wire_records)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from pipeline.core.events import Engagement, EngagementAction, Feedback, FeedbackKind
from pipeline.core.models import Action, Attempt, BounceClass, Category, Outcome, Scope, Suppression
from pipeline.core.policies import load_preset
from pipeline.core.wire import (
    ENGAGEMENT,
    bounce_cap,
    delivered_entry,
    digest,
    from_ms,
    history_event,
    history_record,
    profile,
    rule_ops,
    send_key,
    to_ms,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_time_in_integer_milliseconds_and_back() -> None:
    ts = T0 + timedelta(microseconds=123_999)
    assert to_ms(ts) == 1_772_442_000_123
    assert type(to_ms(ts)) is int
    back = from_ms(1_772_442_000_123)
    assert back == T0 + timedelta(milliseconds=123)
    assert back.tzinfo is UTC


def test_digest_is_twelve_hex_digits_of_blake2b() -> None:
    assert digest("e1") == "fcb3209c5d09"
    assert digest("x" * 41) == "ab0c12c723a3"


def test_send_key_is_the_campaign_then_the_message_then_the_event() -> None:
    full = Attempt("e1", T0, "a@x.com", Outcome.BOUNCED, campaign_id="c1", message_id="m1")
    assert send_key(full) == "c1"
    assert send_key(Attempt("e1", T0, "a@x.com", Outcome.BOUNCED, message_id="m1")) == "m1"
    assert send_key(Attempt("e1", T0, "a@x.com", Outcome.BOUNCED)) == "e1"
    assert send_key(Feedback("f1", T0, "a@x.com", FeedbackKind.COMPLAINT, campaign_id="c2")) == "c2"
    assert send_key(Engagement("o1", T0, "a@x.com", EngagementAction.OPEN)) == "o1"
    assert send_key(Attempt("x" * 40, T0, "a@x.com", Outcome.BOUNCED)) == "x" * 40
    assert send_key(Attempt("x" * 41, T0, "a@x.com", Outcome.BOUNCED)) == "#ab0c12c723a3"


def test_profiles_carry_each_rule_op_with_its_scope_index() -> None:
    policy = load_preset("default", {"rules": {"complaint": {"scope": "list"}}})
    assert profile(policy, BounceClass.COMPLAINT, Category.COMPLAINT) == {
        "k": "b",
        "sc": ["l", "t"],
        "ops": [{"id": "complaint", "u": 1, "t": 1, "cap": 32, "k": "imm"}],
        "cat": "complaint",
        "b": False,
        "cap": 32,
    }
    assert rule_ops(policy, BounceClass.HARD, Category.USER_UNKNOWN) == [
        {"id": "immediate_hard", "u": 2, "t": 1, "cap": 32, "k": "imm"}
    ]
    assert rule_ops(policy, BounceClass.SOFT, Category.MAILBOX_FULL) == [
        {"id": "consecutive_soft", "u": 2, "t": 10, "cap": 32, "k": "con", "te": 20,
         "ew": 7_776_000_000, "re": False},
    ]  # fmt: skip
    assert rule_ops(policy, BounceClass.HARD, Category.INACTIVE_MAILBOX) == [
        {"id": "confirmed_inactive", "u": 2, "t": 2, "cap": 32, "k": "cnf", "sp": 86_400_000}
    ]
    ecomail = load_preset("ecomail")
    assert rule_ops(ecomail, BounceClass.SOFT, Category.MAILBOX_FULL) == [
        {"id": "soft_retry_limit", "u": 1, "t": 10, "cap": 32, "k": "rw", "w": 172_800_000,
         "pc": 6},
    ]  # fmt: skip


def test_a_soft_bounce_breaks_a_hard_run_in_the_benchmark_preset() -> None:
    benchmark = load_preset("benchmark", {"rules": {"confirmed_bounce": {"scope": "global"}}})
    assert rule_ops(benchmark, BounceClass.SOFT, Category.MAILBOX_FULL) == [
        {"id": "confirmed_bounce", "u": 2, "cap": 32, "k": "brk"}
    ]


def test_other_profiles() -> None:
    policy = load_preset("default", {"delivered_log": True})
    assert profile(policy, ENGAGEMENT, None) == {"k": "o", "sc": ["t"]}
    assert profile(policy, BounceClass.DELIVERED, Category.DELIVERED) == {
        "k": "d",
        "sc": ["t"],
        "ok": True,
    }


def test_bounce_cap_covers_every_count_threshold_rule() -> None:
    assert bounce_cap(load_preset("default")) == 32
    big = load_preset("listrak", {"rules": {"bounce_cleanup": {"max_tracked": 50}}})
    assert bounce_cap(big) == 50
    small = load_preset(
        "listrak", {"rules": {"bounce_cleanup": {"max_tracked": 20, "other_min_count": 9}}}
    )
    assert bounce_cap(small) == 32
    not_counted = load_preset("default", {"rules": {"consecutive_soft": {"max_tracked": 99}}})
    assert bounce_cap(not_counted) == 32


def test_delivered_entry_fields() -> None:
    full = Attempt(
        "d1", T0, "a@x.com", Outcome.DELIVERED, tenant="t1", smtp_code=250,
        diagnostic="250 " + "o" * 600, remote_mta="mx.x.com",
    )  # fmt: skip
    assert orjson.loads(delivered_entry(full)) == {
        "i": "d1",
        "t": 1_772_442_000_000,
        "te": "t1",
        "s": 250,
        "d": ("250 " + "o" * 600)[:500],
        "m": "mx.x.com",
    }
    bare = Attempt("d2", T0, "a@x.com", Outcome.DELIVERED)
    assert delivered_entry(bare) == b'{"i":"d2","t":1772442000000,"te":"default"}'


def suppression() -> Suppression:
    return Suppression(
        event_id="s1", action=Action.SUPPRESSED, address="a@x.com", tenant="t1",
        scope=Scope.TENANT, list_id=None, reason="user_unknown", rule="immediate_hard",
        count=1, threshold=1, policy="default", tag=None, trigger_event_id="e1", ts=T0,
    )  # fmt: skip


def test_history_records_read_back_whole() -> None:
    s = suppression()
    event = history_event(
        history_record(s), event_id="s1", tenant="t1", ts_ms=to_ms(T0 + timedelta(seconds=1))
    )
    expected = {k: v for k, v in s.to_json().items() if k != "evidence"}
    assert event == {**expected, "ts": "2026-03-02T09:00:01Z"}
    assert list(event) == list(expected)


def test_a_history_record_of_the_wrong_length_is_refused() -> None:
    short = orjson.dumps(orjson.loads(history_record(suppression()))[:-1])
    with pytest.raises(ValueError, match="zip"):
        history_event(short, event_id="s1", tenant="t1", ts_ms=0)
    old = orjson.dumps({"event_id": "s0", "whole": True})
    assert history_event(old, event_id="x", tenant="y", ts_ms=0) == {
        "event_id": "s0",
        "whole": True,
    }
