"""The events a decision becomes: suppressions, reactivations and tenant alerts, each with a
deterministic id (pipeline.core.ids), so a re-emitted one is recognisably the same."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pipeline.core.ids import suppression_event_id
from pipeline.core.models import Action, Scope, SenderAlert, Suppression, format_ts
from pipeline.core.policies import Policy, Rule
from pipeline.core.wire import NO_LIST, expand_entry


def _evidence(entries: Sequence[bytes | str | Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    keep = ("event_id", "ts", "category", "smtp_code", "enhanced_code", "diagnostic")
    out = []
    for raw in entries:
        entry = raw if isinstance(raw, Mapping) else expand_entry(raw)
        out.append({k: entry.get(k) for k in keep})
    return tuple(out)


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
    """Turn one decision of the apply or sweep function ({rule, u, count, threshold, reason,
    ev = compact log entries}) into the suppression event it stands for. The id depends only
    on what was decided and on the trigger, so a re-emitted decision has the same id."""
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
