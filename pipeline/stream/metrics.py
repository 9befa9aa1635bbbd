"""Every Prometheus metric, declared once, plus the few helpers that fill them.

Responsibilities:
- declare each metric with its type, meaning and (for histograms) why its buckets;
- keep label values bounded and free of personal data: never an address, never free text
  (diagnostics), a tenant only through `TENANTS` (first N tenants by name, the rest "other"),
  a receiving domain only as a provider family (`domain_family`);
- small helpers the agents call, so that instrumentation there stays one line each.

docs/observability.md lists every metric with its labels and the panels and alerts using it.
"""

from __future__ import annotations

import re
import threading
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram, Info

from pipeline.core.events import Event
from pipeline.core.models import Action, Attempt, Classification, SenderAlert, Suppression

T = TypeVar("T")
OTHER = "other"

# Label names that could carry an address or free text; tests/unit/test_metrics.py asserts no
# metric of ours uses one.
DENIED_LABELS = frozenset({"address", "recipient", "email", "diagnostic", "detail", "message"})


class TenantCap:
    """Bounded tenant label values: the first `limit` distinct tenants seen keep their name,
    every later one is reported as "other" (so a tenant explosion costs at most `limit` + 1
    series per metric). Names that do not look like an id (an "@", spaces, over 64 chars) are
    "other" too, so a misconfigured shipper putting an address in `tenant` leaks nothing.
    Thread-safe: the web thread and the agent may ask at once."""

    _ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def label(self, tenant: str) -> str:
        """Return the label value for `tenant` (its name, or "other")."""
        if tenant in self._known:
            return tenant
        if not self._ID.fullmatch(tenant):
            return OTHER
        with self._lock:
            if len(self._known) < self.limit:
                self._known.add(tenant)
                return tenant
        return OTHER


# Default cap; the worker sets Settings.metrics_tenant_cap at start (monitor.attach).
TENANTS = TenantCap(50)

# Receiving-domain families for per-domain metrics. Domains are not personal data but are
# unbounded (and a one-person domain nearly is personal), so only the big mailbox providers get
# a name; every other domain counts as "other". Order matters only for readability.
DOMAIN_FAMILIES: dict[str, tuple[str, ...]] = {
    "gmail": ("gmail.com", "googlemail.com"),
    "outlook": ("outlook.", "hotmail.", "live.", "msn.com", "passport.com"),
    "yahoo": ("yahoo.", "ymail.com", "rocketmail.com", "aol.", "aim.com"),
    "icloud": ("icloud.com", "me.com", "mac.com"),
    "gmx": ("gmx.", "web.de"),
    "mailru": ("mail.ru", "inbox.ru", "list.ru", "bk.ru"),
    "yandex": ("yandex.", "ya.ru"),
    "comcast": ("comcast.net",),
    "orange": ("orange.fr", "wanadoo.fr"),
}


def domain_family(address: str) -> str:
    """Return the provider family of `address`'s domain ("gmail", ..., or "other")."""
    domain = address.rpartition("@")[2].lower()
    for family, prefixes in DOMAIN_FAMILIES.items():
        if any(domain.startswith(p) for p in prefixes):
            return family
    return OTHER


# Info: one series bounceguard_worker_info{version, app_id} = 1; set at start (monitor.attach).
WORKER_INFO = Info("bounceguard_worker", "bounceguard worker version and faust app id")

# Counter: events read from a topic, before decoding (topic names are a fixed, configured set).
EVENTS_CONSUMED = Counter("bounceguard_events_consumed_total", "Events read from Kafka", ["topic"])
# Counter: attempts decoded, by MTA outcome (4 values), class (8) and category (24): all closed
# enums, and only the combinations the classifier produces appear (a few dozen in practice).
ATTEMPTS = Counter(
    "bounceguard_attempts_total",
    "Attempts decoded and counted, by outcome, class and category",
    ["outcome", "class", "category"],
)
# Counter: per-tenant events by class and category: attempts (classified) and, from the
# feedback agent, complaints and unsubscribes. Tenant through TENANTS (capped). Drives the
# complaint-rate and per-tenant panels.
TENANT_EVENTS = Counter(
    "bounceguard_tenant_events_total",
    "Attempts and feedback events per tenant (capped), by class and category",
    ["tenant", "class", "category"],
)
# Counter: dead letters sent, by source topic and reason (errors.Reason values).
DEAD_LETTERS = Counter(
    "bounceguard_dead_letters_total", "Inputs sent to a dead-letter topic", ["topic", "reason"]
)
# Counter: "suppressed" events emitted, by policy, rule, reason (category), scope and tenant
# (capped).
SUPPRESSIONS = Counter(
    "bounceguard_suppressions_total",
    "Suppression events emitted",
    ["policy", "rule", "reason", "scope", "tenant"],
)
# Counter: "reactivated" events emitted (an address added back), by policy, scope and tenant.
REACTIVATIONS = Counter(
    "bounceguard_reactivations_total",
    "Reactivation events emitted",
    ["policy", "scope", "tenant"],
)
# Counter: "suppressed" events by receiving-domain family (see DOMAIN_FAMILIES); a burst in
# one family is the provider-outage signature the bsd seed warns about.
DOMAIN_SUPPRESSIONS = Counter(
    "bounceguard_domain_suppressions_total",
    "Suppression events by receiving-domain family",
    ["domain_family"],
)
# Counter: sender.alerts events (tenant-level, e.g. complaint rate over its limit), by rule
# and tenant (capped).
SENDER_ALERTS = Counter(
    "bounceguard_sender_alerts_total", "Tenant alerts emitted on sender.alerts", ["rule", "tenant"]
)
# Counter: batches retried after a transient Redis or Kafka error (the batch was not acked).
RETRIES = Counter("bounceguard_batch_retries_total", "Batches retried after a transient error")
# Histogram: events per batch; buckets follow take_events' sizes (1 .. batch_size=500).
BATCH_SIZE = Histogram(
    "bounceguard_batch_size",
    "Events per processed batch",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
# Histogram: seconds of one Redis round trip for a batch (Store.apply: one pipeline of
# Lua calls), per try. Loopback Redis answers a 1-event batch in ~0.3 ms and a 500-event batch
# in tens of ms; the top buckets catch a Redis that is swapping or far away.
REDIS_SECONDS = Histogram(
    "bounceguard_redis_batch_seconds",
    "Redis round trip of one batch (counting scripts), seconds",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
# Histogram: event time to decision, seconds: wall clock when the batch is decided minus each
# attempt's event time (ts). Live traffic sits in the sub-minute buckets (shipper + Kafka +
# batching); a backlog or a replay lands in the minutes-to-days buckets, so one histogram shows
# both "how fresh are decisions" and "how far behind is this worker". Negative (clock skew)
# observations fall into the first bucket.
DECISION_LAG = Histogram(
    "bounceguard_decision_lag_seconds",
    "Event time to decision, seconds",
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86_400, 7 * 86_400),
)
# Histogram: time per batch from first decode to the last suppression acked (steps 1-3).
BATCH_SECONDS = Histogram(
    "bounceguard_batch_seconds",
    "Processing time of one batch (decode, Redis, emit), seconds",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
# Gauge: messages not yet committed per input partition of this worker's consumer group:
# end offset minus committed offset, sampled by monitor.py on the group leader only (one
# series per partition for the whole group, not one per worker).
CONSUMER_LAG = Gauge(
    "bounceguard_consumer_lag", "Messages behind the end offset", ["topic", "partition"]
)
# Gauge: Redis used_memory (INFO memory), bytes, sampled by monitor.py on the group leader.
REDIS_MEMORY = Gauge("bounceguard_redis_memory_used_bytes", "Redis used_memory, bytes")
# Gauge: Redis maxmemory (0 = no limit), bytes, sampled alongside REDIS_MEMORY.
REDIS_MAXMEMORY = Gauge("bounceguard_redis_maxmemory_bytes", "Redis maxmemory (0 = none), bytes")
# Counter: raw log lines read by the normalize agent, by result: "attempts" (gave at least one
# attempt), "skipped" (well formed, no delivery result) or "dead_letter" (sent to the DLQ).
RAW_LINES = Counter("bounceguard_raw_lines_total", "Raw log lines normalized", ["result"])
# Counter: attempts the normalize agent produced to delivery.attempts.
ATTEMPTS_PRODUCED = Counter(
    "bounceguard_attempts_produced_total", "Attempts produced from raw log lines"
)
# Counter: bounce mails read by the bounce-mail agent (bounce.mail.raw), by result: "attempts"
# (a DSN with a failed or delayed recipient), "skipped" (every recipient delivered, relayed or
# expanded) or "dead_letter" (not a DSN, unattributed, ...: sent to the DLQ).
RAW_MAILS = Counter("bounceguard_raw_mails_total", "Raw bounce mails read", ["result"])
# Counter: attempts the bounce-mail agent produced to delivery.attempts.
MAIL_ATTEMPTS_PRODUCED = Counter(
    "bounceguard_mail_attempts_produced_total", "Attempts produced from bounce mails (DSNs)"
)


def count_planned(events: Sequence[Event], verdicts: Sequence[Classification | None]) -> None:
    """Count a planned batch's attempts by outcome, class and category, and its attempts and
    feedback per (capped) tenant (the complaint-rate panels' numerator and denominator).
    Tallied first, so each label set is incremented once per batch, not once per event."""
    # Keyed by the enum members (str subclasses: hashed as their text) and read as `.value`
    # only per label set: `.value` is a Python-level property, three per event added up.
    attempts: Tally[tuple[Any, Any, Any]] = Tally()
    tenants: Tally[tuple[str, Any, Any]] = Tally()
    for event, verdict in zip(events, verdicts, strict=True):
        if verdict is None:
            continue
        klass, category = verdict.bounce_class, verdict.category
        if type(event) is Attempt:
            attempts[(event.outcome, klass, category)] += 1
        tenants[(event.tenant, klass, category)] += 1
    for (outcome, klass, category), n in attempts.items():
        ATTEMPTS.labels(outcome.value, klass.value, category.value).inc(n)
    for (tenant, klass, category), n in tenants.items():
        TENANT_EVENTS.labels(TENANTS.label(tenant), klass.value, category.value).inc(n)


def count_suppression(event: Suppression) -> None:
    """Count one emitted suppression-change event (suppressed or reactivated)."""
    tenant = TENANTS.label(event.tenant)
    if event.action is Action.REACTIVATED:
        REACTIVATIONS.labels(event.policy, event.scope.value, tenant).inc()
        return
    SUPPRESSIONS.labels(event.policy, event.rule, event.reason, event.scope.value, tenant).inc()
    DOMAIN_SUPPRESSIONS.labels(domain_family(event.address)).inc()


def count_sender_alert(alert: SenderAlert) -> None:
    """Count one emitted sender.alerts event."""
    SENDER_ALERTS.labels(alert.rule, TENANTS.label(alert.tenant)).inc()


def observe_decision_lag(events: Sequence[Event], now: datetime | None = None) -> None:
    """Observe now - ts for each event of a decided batch (`now` defaults to the clock)."""
    now = now or datetime.now(UTC)
    observe_many(DECISION_LAG, [(now - event.ts).total_seconds() for event in events])


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for each of `values`, with one increment per bucket touched.

    Reaches into prometheus_client's Histogram (`_upper_bounds`, `_buckets`, `_sum`, stable
    since 0.4; the version is pinned): observe() per value cost ~1.5 µs per attempt at
    volume, a bucket count per batch almost nothing. Exposition is unchanged (tested)."""
    if not values:
        return
    bounds: list[float] = getattr(histogram, "_upper_bounds")  # noqa: B009
    buckets: list[Any] = getattr(histogram, "_buckets")  # noqa: B009
    for index, n in Tally(bisect_left(bounds, v) for v in values).items():
        buckets[index].inc(n)
    getattr(histogram, "_sum").inc(sum(values))  # noqa: B009


async def timed(histogram: Histogram, step: Awaitable[T]) -> T:
    """Await `step` and observe its duration in `histogram` (also when it raises, so a slow
    failing Redis shows up too)."""
    start = time.perf_counter()
    try:
        return await step
    finally:
        histogram.observe(time.perf_counter() - start)


# ---------------------------------------------------------------- ESP webhooks (issue 11)
# Counter: webhook requests by provider and answer (accepted, unauthorized, too_large,
# kafka_unavailable, subscription, bad_request); the provider list is fixed, no addresses.
WEBHOOK_REQUESTS = Counter(
    "bounceguard_webhook_requests_total", "ESP webhook requests", ["provider", "result"]
)
# Counter: esp.events.raw messages read by the ESP agent, by result (attempts, skipped,
# dead_letter), as RAW_MAILS is for bounce mails.
RAW_ESP_EVENTS = Counter(
    "bounceguard_raw_esp_events_total", "Raw ESP webhook bodies read", ["result"]
)
# Counter: attempts and feedback events the ESP agent produced.
ESP_EVENTS_PRODUCED = Counter(
    "bounceguard_esp_events_produced_total", "Attempts and feedback produced from ESP webhooks"
)


# Gauge: suppressions the provider-outage guard holds now, per provider group (issue 12; a
# group name or a receiving domain, never an address). Only groups that held something get a
# series: every receiving domain is a group, and most never hold anything.
HELD = Gauge(
    "bounceguard_held_suppressions",
    "Suppressions held by the provider-outage guard, per provider group",
    ["group"],
)
# Counter: provider_outage alerts emitted, by phase (start, end) and provider group.
OUTAGE_ALERTS = Counter(
    "bounceguard_provider_outage_alerts_total",
    "provider_outage events emitted on sender.alerts",
    ["phase", "group"],
)
_held_groups: set[str] = set()


def observe_held(held: dict[str, int]) -> None:
    """Set the held gauge from a batch's guard replies (group -> held now)."""
    for group, n in held.items():
        if n > 0 or group in _held_groups:
            _held_groups.add(group)
            HELD.labels(group).set(n)
