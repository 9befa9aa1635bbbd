"""Metric hygiene: no label can carry an address or free text, tenants are capped, and the
helpers the agents call fill the families the dashboards read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kafka import TopicPartition
from prometheus_client import REGISTRY

from pipeline.core.classify import classify_attempt
from pipeline.core.models import Action, Attempt, Outcome, Scope, Suppression
from pipeline.stream import metrics
from pipeline.stream.monitor import lag_per_partition

DENY = {"address", "recipient", "email", "diagnostic"}


def ours() -> list[object]:
    return [m for m in REGISTRY.collect() if m.name.startswith("bounceguard_")]


def attempt(recipient: str, tenant: str = "acme", **fields: object) -> Attempt:
    base: dict[str, object] = {
        "event_id": "e1",
        "ts": datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        "recipient": recipient,
        "outcome": Outcome.BOUNCED,
        "tenant": tenant,
        "smtp_code": 550,
        "enhanced_code": "5.1.1",
        "diagnostic": "550 5.1.1 user unknown",
    }
    return Attempt(**{**base, **fields})  # type: ignore[arg-type]


def suppression(address: str, action: Action = Action.SUPPRESSED) -> Suppression:
    return Suppression(
        event_id="s1",
        action=action,
        address=address,
        tenant="acme",
        scope=Scope.TENANT,
        list_id=None,
        reason="user_unknown",
        rule="immediate_hard",
        count=1,
        threshold=1,
        policy="default",
        tag=None,
        trigger_event_id="e1",
        ts=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )


def test_no_metric_has_a_denied_label_name() -> None:
    assert DENY <= metrics.DENIED_LABELS
    families = ours()
    assert len(families) >= 15
    for family in families:
        for sample in family.samples:  # type: ignore[attr-defined]
            assert not set(sample.labels) & metrics.DENIED_LABELS, family.name  # type: ignore[attr-defined]
    declared = [v for v in vars(metrics).values() if hasattr(v, "_labelnames")]
    for metric in declared:
        assert not set(metric._labelnames) & metrics.DENIED_LABELS, metric


def test_no_label_value_is_an_address_after_counting() -> None:
    # Models refuse such a tenant (check_tenant); the label cap is the second line of defence.
    assert metrics.TENANTS.label("mallory@evil.example") == "other"
    one = attempt("someone@gmail.com", tenant="mallory")
    metrics.count_planned([one], [classify_attempt(one)])
    metrics.count_suppression(suppression("someone@gmail.com"))
    for family in ours():
        for sample in family.samples:  # type: ignore[attr-defined]
            for value in sample.labels.values():
                assert "@" not in value, (family.name, sample)  # type: ignore[attr-defined]


def test_tenant_cap_names_the_first_tenants_and_groups_the_rest() -> None:
    cap = metrics.TenantCap(2)
    assert [cap.label(t) for t in ("a", "b", "c", "a", "b", "d")] == [
        "a",
        "b",
        "other",
        "a",
        "b",
        "other",
    ]


@pytest.mark.parametrize(
    "tenant", ["bob@example.com", "has space", "x" * 65, "", "new\nline", "{curly}"]
)
def test_tenant_cap_refuses_values_that_are_not_ids(tenant: str) -> None:
    assert metrics.TenantCap(100).label(tenant) == "other"


@pytest.mark.parametrize(
    ("address", "family"),
    [
        ("a@gmail.com", "gmail"),
        ("a@Hotmail.co.uk", "outlook"),
        ("a@outlook.com", "outlook"),
        ("a@yahoo.fr", "yahoo"),
        ("a@aol.com", "yahoo"),
        ("a@icloud.com", "icloud"),
        ("a@web.de", "gmx"),
        ("a@mail.ru", "mailru"),
        ("a@acme-corp.example", "other"),
    ],
)
def test_domain_family(address: str, family: str) -> None:
    assert metrics.domain_family(address) == family


def value(name: str, **labels: str) -> float:
    got = REGISTRY.get_sample_value(name, labels)
    return got or 0.0


def test_count_planned_fills_outcome_class_category_and_tenant() -> None:
    labels = {"outcome": "bounced", "class": "hard", "category": "user_unknown"}
    before = value("bounceguard_attempts_total", **labels)
    tenant_before = value(
        "bounceguard_tenant_events_total",
        tenant="t-metrics",
        **{"class": "hard"},
        category="user_unknown",
    )
    one = attempt("x@example.com", tenant="t-metrics")
    metrics.count_planned([one], [classify_attempt(one)])
    assert value("bounceguard_attempts_total", **labels) == before + 1
    assert (
        value(
            "bounceguard_tenant_events_total",
            tenant="t-metrics",
            **{"class": "hard"},
            category="user_unknown",
        )
        == tenant_before + 1
    )


def test_count_suppression_splits_reactivations_and_counts_domain_family() -> None:
    before = value("bounceguard_domain_suppressions_total", domain_family="gmail")
    react = value(
        "bounceguard_reactivations_total", policy="default", scope="tenant", tenant="acme"
    )
    metrics.count_suppression(suppression("z@gmail.com"))
    metrics.count_suppression(suppression("z@gmail.com", Action.REACTIVATED))
    assert value("bounceguard_domain_suppressions_total", domain_family="gmail") == before + 1
    assert (
        value("bounceguard_reactivations_total", policy="default", scope="tenant", tenant="acme")
        == react + 1
    )


def test_decision_lag_is_event_time_to_now() -> None:
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    count = value("bounceguard_decision_lag_seconds_count")
    in_hour = value("bounceguard_decision_lag_seconds_bucket", le="3600.0")
    metrics.observe_decision_lag([attempt("x@example.com")], now=now)  # ts 09:00: 1 h behind
    assert value("bounceguard_decision_lag_seconds_count") == count + 1
    assert value("bounceguard_decision_lag_seconds_bucket", le="3600.0") == in_hour + 1


def test_lag_is_end_minus_committed_or_everything_when_never_committed() -> None:
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    assert lag_per_partition({a: 10, b: 7}, {a: 4}, {a: 0, b: 2}) == {a: 6, b: 5}
    assert lag_per_partition({a: 3}, {a: 5}, {}) == {a: 0}


def test_count_planned_feedback_feeds_the_complaint_rate_numerator() -> None:
    from pipeline.core.events import Feedback, FeedbackKind

    labels = {"tenant": "t-fbl", "class": "complaint", "category": "complaint"}
    before = value("bounceguard_tenant_events_total", **labels)
    complaint = Feedback(
        event_id="f1",
        ts=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        recipient="x@example.com",
        kind=FeedbackKind.COMPLAINT,
        tenant="t-fbl",
    )
    metrics.count_planned([complaint], [complaint.classification()])
    assert value("bounceguard_tenant_events_total", **labels) == before + 1


def test_observe_many_exposes_what_observe_per_value_does() -> None:
    """Catches: an off-by-one bucket (a value equal to a bound belongs to that bound's
    bucket), a lost sum, or a count that is not per value."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    values = [-3.0, 0.0, 0.25, 0.2500001, 1.0, 59.9, 60.0, 1e9, 0.25, 7.0]
    expositions = []
    for bulk in (False, True):
        registry = CollectorRegistry()
        hist = Histogram("h", "h", buckets=(0.25, 0.5, 1, 60), registry=registry)
        if bulk:
            metrics.observe_many(hist, values)
        else:
            for v in values:
                hist.observe(v)
        text = generate_latest(registry).decode()
        expositions.append("\n".join(x for x in text.splitlines() if "_created" not in x))
    assert expositions[0] == expositions[1]
    assert 'h_bucket{le="0.25"} 4.0' in expositions[1]
