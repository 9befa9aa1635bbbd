"""The pure policy core: presets, overrides, policy files, rule operations, event decoding."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from pipeline.core.errors import InvalidInput
from pipeline.core.events import Engagement, Feedback, FeedbackKind, decode_event_line
from pipeline.core.models import Attempt, BounceClass, Category, Scope
from pipeline.core.outcomes import suppression_from_decision
from pipeline.core.policies import (
    PolicyBook,
    RuleKind,
    book_from_mapping,
    load_book,
    load_preset,
    read_policy_file,
)
from pipeline.core.wire import rule_ops

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ["default", "listrak", "bsd", "ecomail", "engagement", "benchmark"]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_and_cites_its_source(name: str) -> None:
    policy = load_preset(name)
    assert policy.name == name and policy.source
    assert policy.rules


def test_seed_numbers() -> None:
    assert load_preset("bsd").rule("inactive_mailbox").span_hours == 24
    assert load_preset("bsd").rule("inactive_mailbox").threshold == 2
    rw = load_preset("ecomail").rule("soft_retry_limit")
    assert (rw.per_campaign, rw.window_hours, rw.threshold) == (6, 48, 10)
    soft = load_preset("engagement").rule("consecutive_soft")
    assert (soft.threshold, soft.engaged_threshold, soft.engaged_days) == (10, 20, 90)
    bench = load_preset("benchmark").rule("confirmed_bounce")
    assert (bench.threshold, bench.reset_on_engagement) == (3, True)
    sweep = load_preset("listrak").rule("bounce_cleanup")
    assert sweep.min_count_for(Category.RELAY_DENIED) == 1
    assert sweep.min_count_for(Category.MAILBOX_FULL) == 8
    assert sweep.min_count_for(Category.GREYLISTED) == 8  # a soft bounce, not "any other"
    assert sweep.min_count_for(Category.SPAM_CONTENT) == 9
    # A reason no tier names goes by its class: a busy recipient (soft) is a Soft Bounce, a
    # throttled sender (block) any other reason; a named category wins over its class.
    assert sweep.min_count_for(Category.THROTTLED, BounceClass.SOFT) == 8
    assert sweep.min_count_for(Category.THROTTLED, BounceClass.BLOCK) == 9
    assert sweep.min_count_for(Category.TRANSIENT, BounceClass.SOFT) == 1
    assert load_preset("listrak").scope is Scope.LIST


def test_tags_where_the_seed_gives_one() -> None:
    bsd = load_preset("bsd")
    assert bsd.rule("inactive_mailbox").tag == "UnsubscribeService:deadrcpt"
    assert bsd.rule("feedback_loop").tag == "UnsubscribeService:fbl"


def test_overrides_change_any_number_and_scope() -> None:
    policy = load_preset(
        "bsd", {"rules": {"inactive_mailbox": {"span_hours": 48, "scope": "global"}}}
    )
    assert policy.rule("inactive_mailbox").span_hours == 48
    assert policy.scopes() == (Scope.TENANT, Scope.GLOBAL)


def test_a_rule_can_be_disabled() -> None:
    policy = load_preset("default", {"rules": {"unsubscribe": {"enabled": False}}})
    with pytest.raises(KeyError):
        policy.rule("unsubscribe")


@pytest.mark.parametrize(
    "override",
    [
        {"rules": {"consecutive_soft": {"threshold": 0}}},
        {"rules": {"consecutive_soft": {"max_tracked": 5}}},
        {"rules": {"consecutive_soft": {"kind": "nonsense"}}},
        {"scope": "planet"},
    ],
)
def test_bad_values_are_refused(override: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        load_preset("default", override)


def test_unknown_preset() -> None:
    with pytest.raises(FileNotFoundError):
        load_preset("nope")
    with pytest.raises(FileNotFoundError):
        load_preset("../policies")


def test_example_policy_file(tmp_path: Path) -> None:
    book = read_policy_file(ROOT / "deploy" / "policies.example.toml")
    assert book.default.rule("consecutive_soft").threshold == 8
    assert book.for_tenant("acme").name == "engagement"
    assert book.for_tenant("acme").rule("consecutive_soft").engaged_threshold == 25
    assert book.for_tenant("bluestate").scopes() == (Scope.TENANT, Scope.GLOBAL)
    assert book.for_tenant("someone").name == "default"
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("tenants:\n  acme:\n    preset: benchmark\n")
    assert read_policy_file(yaml_file).for_tenant("acme").name == "benchmark"


def test_book_defaults() -> None:
    assert load_book("listrak").default.name == "listrak"
    book = book_from_mapping({"tenants": {"t": {"rules": {"complaint": {"enabled": False}}}}})
    assert book.for_tenant("t").name == "default"
    assert isinstance(book, PolicyBook) and len(book.policies()) == 2


def _ops(preset: str, cls: BounceClass, cat: Category) -> list[dict[str, object]]:
    ops: list[dict[str, object]] = rule_ops(load_preset(preset), cls, cat)
    return ops


def test_blocks_feed_no_rule_by_default() -> None:
    """A block never counts against an address; it may only break a run (benchmark)."""
    for preset in PRESETS:
        assert [
            o for o in _ops(preset, BounceClass.BLOCK, Category.SPAM_BLOCK) if o["k"] != "brk"
        ] == []


def test_benchmark_non_hard_campaigns_break_the_run() -> None:
    """Seed 004: "hard bounces in three consecutive campaigns"."""
    for klass, category in [
        (BounceClass.SOFT, Category.MAILBOX_FULL),
        (BounceClass.BLOCK, Category.SPAM_BLOCK),
        (BounceClass.AUTO_REPLY, Category.AUTO_REPLY),
        (BounceClass.UNKNOWN, Category.UNDETERMINED),
    ]:
        assert [(o["k"], o["id"]) for o in _ops("benchmark", klass, category)] == [
            ("brk", "confirmed_bounce")
        ]
    [con] = _ops("benchmark", BounceClass.HARD, Category.BAD_DOMAIN)
    assert (con["k"], con["t"], con["re"]) == ("con", 3, True)
    assert _ops("default", BounceClass.BLOCK, Category.SPAM_BLOCK) == []  # no break classes


def test_rule_ops_carry_the_numbers_in_event_time() -> None:
    [op] = _ops("default", BounceClass.SOFT, Category.MAILBOX_FULL)
    assert (op["k"], op["t"], op["te"], op["ew"]) == ("con", 10, 20, 90 * 86_400_000)
    [cnf] = _ops("bsd", BounceClass.HARD, Category.INACTIVE_MAILBOX)
    assert (cnf["k"], cnf["t"], cnf["sp"]) == ("cnf", 2, 24 * 3_600_000)
    [rw] = _ops("ecomail", BounceClass.SOFT, Category.TRANSIENT)
    assert (rw["k"], rw["pc"], rw["w"], rw["t"]) == ("rw", 6, 48 * 3_600_000, 10)
    # listrak's cleanup and ecomail's complaint rate do not run per event
    assert _ops("listrak", BounceClass.SOFT, Category.MAILBOX_FULL) == []
    assert [o["id"] for o in _ops("ecomail", BounceClass.COMPLAINT, Category.COMPLAINT)] == [
        "complaint"
    ]


def test_kinds_used() -> None:
    kinds = {r.kind for name in PRESETS for r in load_preset(name).rules}
    assert kinds == set(RuleKind)


def test_suppression_ids_are_deterministic() -> None:
    policy = load_preset("listrak")
    decision = {"rule": "immediate_hard", "u": 1, "count": 1, "threshold": 1, "reason": "x"}
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    kwargs = {"address": "a@b.co", "tenant": "t", "list_id": "m", "trigger_event_id": "e"}
    one = suppression_from_decision(policy, decision, ts=ts, **kwargs)  # type: ignore[arg-type]
    two = suppression_from_decision(policy, decision, ts=ts, **kwargs)  # type: ignore[arg-type]
    assert one.event_id == two.event_id and one.list_id == "m" and one.scope is Scope.LIST


def test_event_lines_by_type() -> None:
    base = {"event_id": "e", "ts": "2026-03-02T09:00:00Z", "recipient": "A@B.co"}
    assert isinstance(decode_event_line(orjson.dumps({**base, "outcome": "bounced"})), Attempt)
    eng = decode_event_line(orjson.dumps({**base, "type": "engagement", "action": "click"}))
    assert isinstance(eng, Engagement) and eng.recipient == "a@b.co"
    fb = decode_event_line(orjson.dumps({**base, "type": "unsubscribe", "list_id": "m"}))
    assert isinstance(fb, Feedback) and fb.kind is FeedbackKind.UNSUBSCRIBE
    assert fb.classification().category is Category.UNSUBSCRIBE
    with pytest.raises(InvalidInput):
        decode_event_line(orjson.dumps({**base, "type": "bogus"}))
    with pytest.raises(InvalidInput):
        decode_event_line(orjson.dumps({**base, "type": "engagement", "action": "like"}))
    with pytest.raises(InvalidInput):
        decode_event_line(orjson.dumps({"type": "complaint", "event_id": "e", "recipient": "a"}))
