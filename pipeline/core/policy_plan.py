"""The pure half of the policy engine: what the Redis scripts are told, and what their answers
mean.

Responsibilities:
- `rule_ops`: the rules an event of one class and category feeds, as the small JSON the
  `record_attempt.lua` script executes (numbers converted to milliseconds of event time);
- `event_arg`: the event itself as that script reads it (time, send key, bounce-log entry);
- `suppression_from_decision` / `reactivation` / `sender_alert`: the events a decision becomes,
  with deterministic ids.

The split keeps every number in the preset data and every state change in Lua: Python decides
which rules apply (static, cacheable), Lua decides whether they trip (needs the state).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline.core.events import Engagement, Feedback
from pipeline.core.ids import suppression_event_id
from pipeline.core.models import (
    Action,
    Attempt,
    BounceClass,
    Category,
    Classification,
    Scope,
    SenderAlert,
    Suppression,
    format_ts,
)
from pipeline.core.policies import DAY_MS, HOUR_MS, Policy, Rule, RuleKind

DIAGNOSTIC_LOG_CHARS = 500
"""Server message characters kept per bounce-log entry (real replies are shorter)."""
NO_LIST = "-"
"""List key of an event without a list_id under a list-scoped policy."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(ts: datetime) -> int:
    """Event time as integer milliseconds since the epoch (what the scripts compare).

    Integer arithmetic on the timedelta: `int(ts.timestamp() * 1000)` goes through a float
    and turns .123 s into 122 ms for some timestamps."""
    return (ts - _EPOCH) // _MS


def from_ms(ms: int | float) -> datetime:
    """Inverse of to_ms, as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def send_key(event: Attempt | Feedback | Engagement) -> str:
    """What "one send" is: the campaign, else the MTA's message id, else the event itself.

    The MTA's retries of one message share the message id, so they count as one send."""
    message_id = event.message_id if isinstance(event, Attempt) else None
    return event.campaign_id or message_id or event.event_id


def _op(rule: Rule, unit: int) -> dict[str, Any] | None:
    base: dict[str, Any] = {"id": rule.id, "u": unit, "t": rule.threshold, "cap": rule.max_tracked}
    if rule.kind is RuleKind.IMMEDIATE:
        return {**base, "k": "imm"}
    if rule.kind is RuleKind.CONSECUTIVE:
        engaged = rule.engaged_threshold or rule.threshold
        window = int(rule.engaged_days * DAY_MS)
        return {**base, "k": "con", "te": engaged, "ew": window, "re": rule.reset_on_engagement}
    if rule.kind is RuleKind.CONFIRMATIONS:
        return {**base, "k": "cnf", "sp": int(rule.span_hours * HOUR_MS)}
    if rule.kind is RuleKind.RETRY_WINDOW:
        window = int(rule.window_hours * HOUR_MS)
        return {**base, "k": "rw", "w": window, "pc": rule.per_campaign}
    return None  # count_threshold runs in the sweep, tenant_rate on the tenant's key


@functools.lru_cache(maxsize=4096)
def rule_ops(policy: Policy, bounce_class: BounceClass, category: Category) -> bytes:
    """The JSON array of rule operations an event of this class and category feeds under
    `policy`, in rule order; `u` is the 1-based index of the rule's scope in
    `policy.scopes()`. Cached: a policy has a few dozen distinct answers."""
    scopes = policy.scopes()
    ops = []
    for rule in policy.rules:
        unit = scopes.index(policy.scope_of(rule)) + 1
        if rule.matches(bounce_class, category):
            op = _op(rule, unit)
            if op is not None:
                ops.append(op)
        elif rule.kind is RuleKind.CONSECUTIVE and bounce_class in rule.break_classes:
            # A send that ends without a matching event breaks the run (benchmark: a
            # campaign with only a soft bounce is not a "hard bounce" campaign).
            ops.append({"id": rule.id, "u": unit, "cap": rule.max_tracked, "k": "brk"})
    return orjson.dumps(ops)


def log_entry(event: Attempt | Feedback, verdict: Classification) -> dict[str, Any]:
    """The bounce-log record of one event (also the evidence of the suppressions it trips)."""
    entry: dict[str, Any] = {
        "event_id": event.event_id,
        "ts": format_ts(event.ts),
        "tenant": event.tenant,
        "list_id": event.list_id,
        "campaign_id": event.campaign_id,
        "category": verdict.category.value,
        "class": verdict.bounce_class.value,
    }
    if isinstance(event, Attempt):
        entry.update(
            outcome=event.outcome.value,
            smtp_code=event.smtp_code,
            enhanced_code=event.enhanced_code,
            diagnostic=event.diagnostic[:DIAGNOSTIC_LOG_CHARS],
            remote_mta=event.remote_mta,
        )
    return entry


def event_arg(event: Attempt | Feedback, verdict: Classification, policy: Policy) -> bytes:
    """The event as `record_attempt.lua` reads it (ARGV[1])."""
    return orjson.dumps(
        {
            "id": event.event_id,
            "ts": to_ms(event.ts),
            "cls": verdict.bounce_class.value,
            "cat": verdict.category.value,
            "send": send_key(event),
            "b": policy.counts_as_bounce(verdict.bounce_class, verdict.category),
            "log": log_entry(event, verdict),
        }
    )


def _evidence(entries: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    keep = ("event_id", "ts", "category", "smtp_code", "enhanced_code", "diagnostic")
    return tuple({k: e.get(k) for k in keep} for e in entries)


def _suppression(
    *, action: Action, scope: Scope, list_id: str | None, **fields: Any
) -> Suppression:
    """A Suppression whose list is set only for list scope and whose id derives from what it
    says (action, address, tenant, scope, list, rule, trigger), so a re-emitted one is equal."""
    scoped_list = (list_id or NO_LIST) if scope is Scope.LIST else None
    event_id = suppression_event_id(
        action=action,
        address=fields["address"],
        tenant=fields["tenant"],
        scope=scope,
        list_id=scoped_list,
        rule=fields["rule"],
        trigger=fields["trigger_event_id"],
    )
    return Suppression(event_id=event_id, action=action, scope=scope, list_id=scoped_list, **fields)


def suppression_from_decision(
    policy: Policy,
    decision: Mapping[str, Any],
    *,
    address: str,
    tenant: str,
    list_id: str | None,
    trigger_event_id: str,
    ts: datetime,
) -> Suppression:
    """Turn one decision of a script ({rule, u, count, threshold, reason, ev}) into the
    suppression event it stands for. The id depends only on what was decided and on the
    trigger, so a re-emitted decision has the same id."""
    rule = policy.rule(str(decision["rule"]))
    scope = policy.scopes()[int(decision["u"]) - 1]
    return _suppression(
        action=Action.SUPPRESSED,
        address=address,
        tenant=tenant,
        scope=scope,
        list_id=list_id,
        reason=str(decision["reason"]),
        rule=rule.id,
        count=int(decision["count"]),
        threshold=int(decision["threshold"]),
        policy=policy.name,
        tag=rule.tag,
        trigger_event_id=trigger_event_id,
        ts=ts,
        evidence=_evidence(decision.get("ev") or ()),
    )


def reactivation(
    policy: Policy,
    *,
    address: str,
    tenant: str,
    scope: Scope,
    list_id: str | None,
    request_id: str,
    ts: datetime,
    cleared: Mapping[str, Any],
) -> Suppression:
    """The `reactivated` event of a manual add-back (seed 000: "they can be added back
    manually"); `cleared` is what the reactivate script removed (the old suppression)."""
    return _suppression(
        action=Action.REACTIVATED,
        address=address,
        tenant=tenant,
        scope=scope,
        list_id=list_id,
        reason="manual",
        rule="reactivate",
        count=0,
        threshold=0,
        policy=policy.name,
        tag=None,
        trigger_event_id=request_id,
        ts=ts,
        # The cleared suppression, as the one evidence entry (schema: event_id and ts).
        evidence=(
            {
                "event_id": str(cleared.get("trigger_event_id") or request_id),
                "ts": format_ts(ts),
                "category": cleared.get("reason"),
                "diagnostic": f"reactivated; was suppressed by rule {cleared.get('rule')}",
            },
        ),
    )


def sender_alert(
    policy: Policy, rule: Rule, *, tenant: str, count: int, sent: int, ts: datetime
) -> SenderAlert:
    """A tenant-rate alert; one id per tenant, rule and day of event time."""
    day = format_ts(ts)[:10]
    return SenderAlert(
        event_id=suppression_event_id(
            action="alert",
            address="",
            tenant=tenant,
            scope="tenant",
            list_id=None,
            rule=rule.id,
            trigger=day,
        ),
        tenant=tenant,
        rule=rule.id,
        policy=policy.name,
        count=count,
        sent=sent,
        rate=count / sent if sent else float(count),
        max_rate=rule.max_rate,
        window_days=rule.window_days,
        ts=ts,
    )
