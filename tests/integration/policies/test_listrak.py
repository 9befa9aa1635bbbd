"""Preset `listrak` (seeds/000): automatic unsubscribes, the cleanup sweep over latest bounce
reason and count (7 / 8 / 9), list scope, reactivation, the bounced-contacts report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jsonschema
import orjson
import pytest

from pipeline.core.models import Action, Attempt, Outcome, Scope
from pipeline.state import queries
from tests.integration.policies.conftest import ADDR, Engine, at, attempt, feedback

pytestmark = pytest.mark.integration
MARKETING = "marketing"
ROOT = Path(__file__).resolve().parents[3]


def bounces(category: str, n: int, list_id: str = MARKETING) -> list:
    return [
        attempt(category, at(days=i), campaign=f"{list_id}-c{i}", list_id=list_id) for i in range(n)
    ]


def sweep(eng: Engine, days: float = 100) -> list:
    out = eng.run(queries.sweep(eng.store, at(days=days), "acme"))
    eng.run(eng.store.mark_emitted(out))
    return out


@pytest.mark.parametrize("category", ["invalid_address", "user_unknown", "general_hard"])
def test_automatic_unsubscribes(engine: Callable[..., Engine], category: str) -> None:
    out = engine("listrak").send(attempt(category, list_id=MARKETING))
    assert [(s.rule, s.scope, s.list_id) for s in out] == [
        ("immediate_hard", Scope.LIST, MARKETING)
    ]


def test_abuse_complaint_at_once(engine: Callable[..., Engine]) -> None:
    out = engine("listrak").send(feedback("complaint", list_id=MARKETING))
    assert [(s.rule, s.list_id) for s in out] == [("complaint", MARKETING)]


@pytest.mark.parametrize(
    "category", ["relay_denied", "dns_failure", "bad_domain", "transient", "challenge_response"]
)
def test_sweep_any_count_reasons(engine: Callable[..., Engine], category: str) -> None:
    eng = engine("listrak")
    assert eng.each(*bounces(category, 1)) == []  # never at once
    assert [(s.rule, s.reason, s.count, s.threshold) for s in sweep(eng)] == [
        ("bounce_cleanup", category, 1, 1)
    ]


@pytest.mark.parametrize("category", ["mailbox_full", "general_soft", "greylisted"])
def test_sweep_soft_and_full_7_kept_8_unsubscribed(
    engine: Callable[..., Engine], category: str
) -> None:
    eng = engine("listrak")
    eng.each(*bounces(category, 7))
    assert sweep(eng, 50) == []
    eng.each(attempt(category, at(days=60), campaign="c60", list_id=MARKETING))
    assert [(s.count, s.threshold) for s in sweep(eng, 100)] == [(8, 8)]


@pytest.mark.parametrize("category", ["spam_content", "spam_block"])
def test_sweep_other_reasons_8_kept_9_unsubscribed(
    engine: Callable[..., Engine], category: str
) -> None:
    """Blocks count for listrak ("Spam Detected" is one of its bounce reasons)."""
    eng = engine("listrak")
    eng.each(*bounces(category, 8))
    assert sweep(eng, 50) == []
    eng.each(attempt(category, at(days=60), campaign="c60", list_id=MARKETING))
    assert [(s.count, s.threshold) for s in sweep(eng, 100)] == [(9, 9)]


RECIPIENT_BUSY = (450, "4.2.1", "450 4.2.1 The user you are trying to contact is receiving mail "
                  "too quickly. Please resend your message at a later time.")  # fmt: skip
SENDER_LIMITED = (421, "4.7.0", "421 4.7.0 Too many connections from your IP, try again later")


def throttled(reply: tuple[int, str, str], day: int) -> Attempt:
    code, enhanced, text = reply
    return Attempt(f"th{day}-{code}", at(days=day), ADDR, Outcome.DEFERRED, "acme", MARKETING,
                   f"{MARKETING}-c{day}", smtp_code=code, enhanced_code=enhanced,
                   diagnostic=text)  # fmt: skip


@pytest.mark.parametrize(("reply", "need"), [(RECIPIENT_BUSY, 8), (SENDER_LIMITED, 9)])
def test_a_throttled_reason_is_a_soft_bounce_only_when_the_recipient_is_limited(
    engine: Callable[..., Engine], reply: tuple[int, str, str], need: int
) -> None:
    """Issue 15 item 4 (docs/policies.md note 3): listrak's reasons went by category only, so a
    recipient receiving mail too fast ("General Soft Bounce: recipient's mailbox is either busy,
    unavailable or disabled") needed 9 like a sender-side throttle. The soft tier now also takes
    any reason classified soft: 8 for the busy mailbox, still 9 for the throttled sender."""
    eng = engine("listrak")
    eng.each(*(throttled(reply, day) for day in range(need - 1)))
    assert sweep(eng, 50) == []
    eng.each(throttled(reply, 60))
    assert [(s.reason, s.count, s.threshold) for s in sweep(eng, 100)] == [
        ("throttled", need, need)
    ]


def test_auto_replies_never_count(engine: Callable[..., Engine]) -> None:
    """Seed 000: "Auto Reply: typically an out-of-office reply which was delivered
    successfully". Real auto_reply events (not 250s), in their own campaigns: no count, no
    reason - while one challenge-response (also class auto_reply) is a reason at any count."""
    eng = engine("listrak")
    eng.each(*bounces("auto_reply", 20))
    rows = eng.run(queries.report(eng.store, "acme"))
    assert rows == [] and sweep(eng) == []
    eng.send(attempt("challenge_response", at(days=30), campaign="cr", list_id=MARKETING))
    assert [(s.reason, s.count) for s in sweep(eng)] == [("challenge_response", 1)]


def test_latest_reason_decides(engine: Callable[..., Engine]) -> None:
    """7 soft bounces then a transient failure: the latest reason (transient) needs any count."""
    eng = engine("listrak")
    eng.each(*bounces("mailbox_full", 7))
    eng.send(attempt("transient", at(days=8), campaign="t", list_id=MARKETING))
    assert [(s.reason, s.count) for s in sweep(eng)] == [("transient", 8)]


def test_sweep_is_as_of_its_time_and_repeatable(engine: Callable[..., Engine]) -> None:
    eng = engine("listrak")
    eng.each(*bounces("mailbox_full", 8))
    assert eng.run(queries.sweep(eng.store, at(days=6.5), "acme")) == []  # 7 as of day 6.5
    first = eng.run(queries.sweep(eng.store, at(days=9), "acme"))
    again = eng.run(queries.sweep(eng.store, at(days=9), "acme"))  # not confirmed: same again
    assert [s.event_id for s in again] == [s.event_id for s in first] and len(first) == 1
    eng.run(eng.store.mark_emitted(first))
    assert eng.run(queries.sweep(eng.store, at(days=9), "acme")) == []


def test_a_past_sweep_never_judges_by_later_events(engine: Callable[..., Engine]) -> None:
    """Issue 15 item 4: `sweep --at` in the past. One send bounced mailbox_full on day 1 (needs
    8) and, retried, transient on day 11 (any count). As of day 9 nothing trips; the sweep used
    to take the day-11 reason and unsubscribe. A scope with state after `at` is now left alone,
    and the same state swept as of day 12 trips on the transient failure."""
    eng = engine("listrak")
    eng.send(attempt("mailbox_full", at(days=1), campaign="c1", list_id=MARKETING))
    eng.send(attempt("transient", at(days=11), campaign="c1", list_id=MARKETING))
    assert eng.run(queries.sweep(eng.store, at(days=9), "acme")) == []
    assert [(s.reason, s.count) for s in sweep(eng, days=12)] == [("transient", 1)]


def test_a_past_sweep_leaves_a_scope_delivered_to_since(engine: Callable[..., Engine]) -> None:
    """8 soft bounces by day 7, a delivery on day 10: as of day 9 the count was 8, but the
    document no longer knows (it keeps the latest delivery only), so a day-9 sweep must not act
    on the reset it cannot date; as of day 11 the delivery has reset the count."""
    eng = engine("listrak")
    eng.each(*bounces("mailbox_full", 8))
    eng.send(attempt("delivered", at(days=10), campaign="d", list_id=MARKETING))
    assert eng.run(queries.sweep(eng.store, at(days=9), "acme")) == []
    assert sweep(eng, days=11) == []


def test_list_scope_leaves_other_lists_alone(engine: Callable[..., Engine]) -> None:
    eng = engine("listrak")
    eng.send(attempt("user_unknown", list_id=MARKETING))
    out = eng.send(attempt("user_unknown", at(1), list_id="post-purchase"))
    assert [s.list_id for s in out] == ["post-purchase"]


def test_reactivate_clears_and_emits(engine: Callable[..., Engine]) -> None:
    eng = engine("listrak")
    eng.send(attempt("user_unknown", list_id=MARKETING))
    back = eng.run(eng.store.reactivate(ADDR, "acme", list_id=MARKETING, request_id="r1", ts=at(1)))
    assert back is not None and back.action is Action.REACTIVATED
    assert (back.scope, back.list_id, back.reason) == (Scope.LIST, MARKETING, "manual")
    schema = orjson.loads((ROOT / "schemas" / "suppression.event.v1.json").read_bytes())
    jsonschema.validate(back.to_json(), schema)
    # Not yet confirmed as delivered: the same request gets the same event (a retry re-emits).
    again = eng.run(
        eng.store.reactivate(ADDR, "acme", list_id=MARKETING, request_id="r1", ts=at(1))
    )
    assert again is not None and again.event_id == back.event_id
    eng.run(eng.store.mark_emitted([back]))
    assert (
        eng.run(eng.store.reactivate(ADDR, "acme", list_id=MARKETING, request_id="r1", ts=at(1)))
        is None
    )
    assert len(eng.send(attempt("user_unknown", at(2), list_id=MARKETING))) == 1


def test_report_lists_bounced_contacts(engine: Callable[..., Engine]) -> None:
    eng = engine("listrak")
    eng.each(*bounces("mailbox_full", 3), *bounces("transient", 2, "cart"))
    rows = eng.run(queries.report(eng.store, "acme"))
    assert [(r.address, r.list_id, r.latest_reason, r.bounce_count) for r in rows] == [
        (ADDR, MARKETING, "mailbox_full", 3),
        (ADDR, "cart", "transient", 2),
    ]
